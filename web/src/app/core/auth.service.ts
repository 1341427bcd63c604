import {
  HttpClient,
  HttpContext,
  HttpContextToken,
  HttpErrorResponse,
} from '@angular/common/http';
import { computed, DestroyRef, inject, Injectable, signal } from '@angular/core';
import { Router } from '@angular/router';
import { firstValueFrom } from 'rxjs';

import { AUTH_CONFIG } from './auth.config';
import { LoginResponse, TokenResponse, User } from './models';

/** Marks requests the auth interceptor must leave alone: sign-in, refresh, sign-out. */
export const SKIP_AUTH = new HttpContextToken<boolean>(() => false);

const KEYS = {
  accessToken: 'tollgate.accessToken',
  refreshToken: 'tollgate.refreshToken',
  expiresAt: 'tollgate.expiresAt',
  /** A hint (no secret) that a cookie session may exist, to skip a pointless refresh. */
  signedIn: 'tollgate.signedIn',
  device: 'tollgate.device',
} as const;

const LOCK_NAME = 'tollgate-refresh';
const CHANNEL_NAME = 'tollgate-auth';

type AuthMessage = { type: 'login' } | { type: 'logout' };

interface AuthState {
  user: User | null;
  accessToken: string | null;
  /** Local clock time (ms) at which the access token expires: skew-free, from `expiresIn`. */
  expiresAt: number;
}

const SIGNED_OUT: AuthState = { user: null, accessToken: null, expiresAt: 0 };

/**
 * The signed-in user and their tokens. The access token stays in memory; the refresh token
 * is an HttpOnly cookie (default) or, with the localStorage transport, stored with the access
 * token. Refreshes run one at a time per tab and, with Web Locks, across tabs; sign-in and
 * sign-out reach the other tabs through a BroadcastChannel.
 */
@Injectable({ providedIn: 'root' })
export class AuthService {
  private readonly http = inject(HttpClient);
  private readonly router = inject(Router);
  private readonly config = inject(AUTH_CONFIG);

  private readonly state = signal<AuthState>(SIGNED_OUT);
  readonly user = computed(() => this.state().user);
  readonly accessToken = computed(() => this.state().accessToken);
  readonly isAuthenticated = computed(() => this.state().user !== null);

  private refreshing: Promise<string> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly channel =
    typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel(CHANNEL_NAME);

  constructor() {
    const onMessage = (event: MessageEvent<AuthMessage>) => this.onBroadcast(event.data);
    const onVisible = () => this.refreshIfDue();
    const onStorage = (event: StorageEvent) => this.adoptStoredTokens(event);
    this.channel?.addEventListener('message', onMessage);
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('storage', onStorage);
    inject(DestroyRef).onDestroy(() => {
      clearTimeout(this.refreshTimer);
      this.channel?.close();
      document.removeEventListener('visibilitychange', onVisible);
      window.removeEventListener('storage', onStorage);
    });
  }

  /** True for requests to the API's own origin, the only ones that get the bearer token. */
  isApiRequest(url: string): boolean {
    const target = new URL(url, document.baseURI);
    const api = new URL(this.config.apiBase || document.baseURI, document.baseURI);
    return target.origin === api.origin && target.pathname.startsWith('/api/');
  }

  url(path: string): string {
    return `${this.config.apiBase}${path}`;
  }

  async login(username: string, password: string): Promise<void> {
    const body = {
      username,
      password,
      fingerprint: this.fingerprint(),
      useCookie: this.config.transport === 'cookie',
    };
    const response = await firstValueFrom(
      this.http.post<LoginResponse>(this.url('/api/login'), body, authEndpoint()),
    );
    this.accept(response, response.user);
    this.channel?.postMessage({ type: 'login' } satisfies AuthMessage);
  }

  /** Restores the session after a page load. Never throws: at worst the user is signed out. */
  async restore(): Promise<void> {
    const stored = this.config.transport === 'localStorage' ? this.stored() : null;
    if (stored) {
      this.state.set({ user: null, accessToken: stored.accessToken, expiresAt: stored.expiresAt });
    } else if (localStorage.getItem(KEYS.signedIn) === null) {
      return;
    }
    try {
      if (!stored || stored.expiresAt <= Date.now()) {
        await this.refresh();
      }
      const user = await firstValueFrom(this.http.get<User>(this.url('/api/current-user')));
      this.state.update((state) => ({ ...state, user }));
      this.scheduleRefresh();
    } catch {
      // A refused refresh has cleared everything already; after an outage the stored
      // session is kept for the next load.
      clearTimeout(this.refreshTimer);
      this.state.set(SIGNED_OUT);
    }
  }

  /**
   * A fresh access token after `failedToken` was refused. Concurrent callers share one
   * refresh; a caller whose token was already replaced gets the new one at once.
   */
  refreshAccessToken(failedToken: string | null): Promise<string> {
    const current = this.state().accessToken;
    if (current !== null && current !== failedToken) {
      return Promise.resolve(current);
    }
    return this.refresh();
  }

  /** One refresh at a time in this tab (single flight) and across tabs (Web Locks). */
  refresh(): Promise<string> {
    this.refreshing ??= this.refreshHoldingLock().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /** Signs this device out on the server, then here and in every other tab. */
  async logout(): Promise<void> {
    const refreshToken = this.config.transport === 'localStorage' ? this.stored()?.refreshToken : undefined;
    try {
      await firstValueFrom(
        this.http.post<void>(this.url('/api/logout'), refreshToken ? { refreshToken } : {}, authEndpoint()),
      );
    } finally {
      this.signOutLocally(true);
    }
  }

  /** Revokes every session of the user, this one included. */
  async signOutEverywhere(): Promise<void> {
    await firstValueFrom(this.http.delete<void>(this.url('/api/sessions')));
    this.signOutLocally(true);
  }

  private async refreshHoldingLock(): Promise<string> {
    const tokenBefore = this.state().accessToken;
    const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
    return locks
      ? locks.request(LOCK_NAME, () => this.callRefresh(tokenBefore))
      : this.callRefresh(tokenBefore);
  }

  private async callRefresh(tokenBefore: string | null): Promise<string> {
    const stored = this.config.transport === 'localStorage' ? this.stored() : null;
    // Another tab may have refreshed while this one waited for the lock.
    if (stored && stored.accessToken !== tokenBefore && stored.expiresAt > Date.now()) {
      this.useTokens(stored.accessToken, stored.expiresAt);
      return stored.accessToken;
    }
    const body = { refreshToken: stored?.refreshToken, fingerprint: this.fingerprint() };
    try {
      const response = await firstValueFrom(
        this.http.post<TokenResponse>(this.url('/api/refresh-token'), body, authEndpoint()),
      );
      this.accept(response);
      return response.accessToken;
    } catch (error) {
      // Only a refused refresh ends the session; outages and network errors do not.
      if (error instanceof HttpErrorResponse && error.status === 403) {
        this.signOutLocally(true);
      }
      throw error;
    }
  }

  private accept(response: TokenResponse, user?: User): void {
    const expiresAt = Date.now() + response.expiresIn * 1000;
    this.state.update((state) => ({
      user: user ?? state.user,
      accessToken: response.accessToken,
      expiresAt,
    }));
    localStorage.setItem(KEYS.signedIn, '1');
    if (this.config.transport === 'localStorage') {
      localStorage.setItem(KEYS.accessToken, response.accessToken);
      localStorage.setItem(KEYS.expiresAt, String(expiresAt));
      if (response.refreshToken) {
        localStorage.setItem(KEYS.refreshToken, response.refreshToken);
      }
    }
    this.scheduleRefresh();
  }

  /** How long before expiry to refresh: the configured margin, at most a fifth of the lifetime. */
  private margin(): number {
    const remaining = this.state().expiresAt - Date.now();
    return Math.min(this.config.refreshMarginMs, Math.max(remaining, 0) / 5);
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.config.refreshAhead || this.state().accessToken === null) {
      return;
    }
    const due = this.state().expiresAt - this.margin() - Date.now();
    this.refreshTimer = setTimeout(() => this.refreshIfDue(), Math.max(due, 0));
  }

  /** Refreshes a visible tab whose token is about to expire; hidden tabs wait until shown. */
  private refreshIfDue(): void {
    const { accessToken, expiresAt } = this.state();
    if (!this.config.refreshAhead || accessToken === null || document.visibilityState !== 'visible') {
      return;
    }
    if (expiresAt - Date.now() <= this.config.refreshMarginMs) {
      this.refreshAccessToken(accessToken).catch(() => undefined);
    } else {
      this.scheduleRefresh();
    }
  }

  private signOutLocally(broadcast: boolean): void {
    const wasSignedIn = this.state().accessToken !== null;
    this.clear();
    if (broadcast) {
      this.channel?.postMessage({ type: 'logout' } satisfies AuthMessage);
    }
    if (wasSignedIn || broadcast) {
      void this.router.navigate(['/login']);
    }
  }

  private clear(): void {
    clearTimeout(this.refreshTimer);
    this.state.set(SIGNED_OUT);
    for (const key of [KEYS.accessToken, KEYS.refreshToken, KEYS.expiresAt, KEYS.signedIn]) {
      localStorage.removeItem(key);
    }
  }

  private onBroadcast(message: AuthMessage): void {
    if (message.type === 'logout') {
      this.signOutLocally(false);
    } else if (message.type === 'login' && !this.isAuthenticated()) {
      void this.restore();
    }
  }

  /** With the localStorage transport, tokens another tab refreshed replace ours. */
  private adoptStoredTokens(event: StorageEvent): void {
    if (this.config.transport !== 'localStorage' || event.key !== KEYS.accessToken) {
      return;
    }
    const stored = this.stored();
    if (stored && this.state().user !== null) {
      this.useTokens(stored.accessToken, stored.expiresAt);
    }
  }

  private useTokens(accessToken: string, expiresAt: number): void {
    this.state.update((state) => ({ ...state, accessToken, expiresAt }));
    this.scheduleRefresh();
  }

  private stored(): { accessToken: string; refreshToken: string; expiresAt: number } | null {
    const accessToken = localStorage.getItem(KEYS.accessToken);
    const refreshToken = localStorage.getItem(KEYS.refreshToken);
    const expiresAt = Number(localStorage.getItem(KEYS.expiresAt));
    return accessToken && refreshToken ? { accessToken, refreshToken, expiresAt } : null;
  }

  /** A stable random id for this browser, sent so the server can bind sessions to it. */
  private fingerprint(): string {
    let device = localStorage.getItem(KEYS.device);
    if (!device) {
      device = crypto.randomUUID();
      localStorage.setItem(KEYS.device, device);
    }
    return device;
  }
}

/** Options for sign-in, refresh and sign-out calls: no bearer token, cookies included. */
function authEndpoint() {
  return { context: new HttpContext().set(SKIP_AUTH, true), withCredentials: true };
}
