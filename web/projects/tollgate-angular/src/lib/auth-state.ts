import { computed, Injectable, signal } from '@angular/core';
import { Subject } from 'rxjs';

import { TollgateEvent, TollgateUser } from './models';

interface Tokens {
  accessToken: string | null;
  /** Local clock time (ms) at which the access token expires: skew-free, from `expiresIn`. */
  expiresAt: number;
}

/** The session as signals, and what happened to it. The access token stays in memory. */
@Injectable({ providedIn: 'root' })
export class AuthState {
  readonly user = signal<TollgateUser | null>(null);
  readonly tokens = signal<Tokens>({ accessToken: null, expiresAt: 0 });
  readonly accessToken = computed(() => this.tokens().accessToken);
  readonly expiresAt = computed(() => this.tokens().expiresAt);
  readonly roles = computed(() => rolesOf(this.tokens().accessToken));
  readonly events = new Subject<TollgateEvent>();

  setTokens(accessToken: string, expiresAt: number): void {
    this.tokens.set({ accessToken, expiresAt });
  }

  clear(): void {
    this.user.set(null);
    this.tokens.set({ accessToken: null, expiresAt: 0 });
  }
}

/**
 * The `roles` claim of an access token, read without verifying it: the server checks the token
 * on every request; this only decides what the page shows.
 */
export function rolesOf(accessToken: string | null): readonly string[] {
  const roles = claimsOf(accessToken)?.['roles'];
  return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [];
}

/** Whether an access token is bound to a DPoP key (`cnf.jkt`): it goes out as `DPoP`. */
export function isBound(accessToken: string | null): boolean {
  const cnf = claimsOf(accessToken)?.['cnf'] as { jkt?: unknown } | undefined;
  return typeof cnf?.jkt === 'string';
}

/** The claims of an access token, read without verifying it (the server verifies). */
function claimsOf(accessToken: string | null): Record<string, unknown> | null {
  const payload = accessToken?.split('.')[1];
  if (!payload) {
    return null;
  }
  try {
    const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const json = new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
