import { inject, Injectable } from '@angular/core';

import { TOLLGATE_CONFIG } from './config';

const KEYS = {
  accessToken: 'tollgate.accessToken',
  refreshToken: 'tollgate.refreshToken',
  expiresAt: 'tollgate.expiresAt',
  /** A hint (no secret) that a cookie session may exist, to skip a pointless refresh. */
  signedIn: 'tollgate.signedIn',
  device: 'tollgate.device',
} as const;

export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
}

/**
 * What outlives a page load: with the localStorage transport the tokens, with either a hint
 * that a session may exist, and this browser's device id.
 */
@Injectable({ providedIn: 'root' })
export class TokenStorage {
  private readonly transport = inject(TOLLGATE_CONFIG).transport;

  /** The tokens kept by the localStorage transport; `null` with the cookie or when none. */
  tokens(): StoredTokens | null {
    if (this.transport !== 'localStorage') {
      return null;
    }
    const accessToken = localStorage.getItem(KEYS.accessToken);
    const refreshToken = localStorage.getItem(KEYS.refreshToken);
    const expiresAt = Number(localStorage.getItem(KEYS.expiresAt));
    return accessToken && refreshToken ? { accessToken, refreshToken, expiresAt } : null;
  }

  /** Whether a session may exist: worth a refresh after a page load. */
  mayBeSignedIn(): boolean {
    return localStorage.getItem(KEYS.signedIn) !== null;
  }

  save(accessToken: string, expiresAt: number, refreshToken: string | undefined): void {
    localStorage.setItem(KEYS.signedIn, '1');
    if (this.transport === 'localStorage') {
      localStorage.setItem(KEYS.accessToken, accessToken);
      localStorage.setItem(KEYS.expiresAt, String(expiresAt));
      if (refreshToken) {
        localStorage.setItem(KEYS.refreshToken, refreshToken);
      }
    }
  }

  clear(): void {
    for (const key of [KEYS.accessToken, KEYS.refreshToken, KEYS.expiresAt, KEYS.signedIn]) {
      localStorage.removeItem(key);
    }
  }

  /** Whether a storage event means another tab stored new tokens. */
  isTokenChange(event: StorageEvent): boolean {
    return this.transport === 'localStorage' && event.key === KEYS.accessToken;
  }

  /** A stable random id for this browser, sent so that the server can bind sessions to it. */
  device(): string {
    let device = localStorage.getItem(KEYS.device);
    if (!device) {
      device = crypto.randomUUID();
      localStorage.setItem(KEYS.device, device);
    }
    return device;
  }
}
