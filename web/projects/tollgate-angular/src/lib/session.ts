import { HttpClient, HttpContext, HttpContextToken, HttpErrorResponse, HttpHeaders } from '@angular/common/http';
import { DestroyRef, inject, Injectable } from '@angular/core';
import { Router } from '@angular/router';
import { firstValueFrom } from 'rxjs';

import { AuthState } from './auth-state';
import { TOLLGATE_CONFIG } from './config';
import { DpopKey } from './dpop';
import { LoginResponse, SignOutReason, TokenResponse, TollgateRegistration, TollgateUser } from './models';
import { RefreshScheduler } from './refresh-scheduler';
import { TabMessage, TabSync } from './tab-sync';
import { TokenStorage } from './token-storage';

/** Marks requests the interceptor leaves alone (sign-in, refresh, sign-out; and yours). */
export const SKIP_AUTH = new HttpContextToken<boolean>(() => false);

/**
 * The session's lifecycle (internal; `TollgateAuth` is its public face): sign-in, restore,
 * refresh, sign-out. Refreshes run one at a time in a tab and across tabs; sign-in and sign-out
 * reach every tab.
 */
@Injectable({ providedIn: 'root' })
export class Session {
  private readonly http = inject(HttpClient);
  private readonly router = inject(Router);
  private readonly config = inject(TOLLGATE_CONFIG);
  private readonly state = inject(AuthState);
  private readonly storage = inject(TokenStorage);
  private readonly tabs = inject(TabSync);
  private readonly scheduler = inject(RefreshScheduler);
  private readonly dpop = inject(DpopKey);
  private refreshing: Promise<string> | null = null;

  constructor() {
    const stopListening = this.tabs.listen((message) => this.onTabMessage(message));
    this.scheduler.start(() => void this.refreshAfter(this.state.accessToken()).catch(() => undefined));
    const onStorage = (event: StorageEvent) => {
      if (this.storage.isTokenChange(event)) {
        this.adoptStoredTokens();
      }
    };
    window.addEventListener('storage', onStorage);
    inject(DestroyRef).onDestroy(() => {
      stopListening();
      window.removeEventListener('storage', onStorage);
    });
  }

  private signedIn(): boolean {
    return this.state.user() !== null;
  }

  url(path: string): string {
    return `${this.config.apiUrl}${path}`;
  }

  login(username: string, password: string): Promise<void> {
    return this.signInAt('/api/login', { username, password });
  }

  /** Creates the account and signs in with it. */
  register(details: TollgateRegistration): Promise<void> {
    return this.signInAt('/api/register', details);
  }

  private async signInAt(path: string, credentials: object): Promise<void> {
    const body = {
      ...credentials,
      fingerprint: this.storage.device(),
      useCookie: this.config.transport === 'cookie',
    };
    const response = await this.postWithProof<LoginResponse>(this.url(path), body);
    this.state.user.set(response.user);
    this.accept(response);
    this.tabs.post({ type: 'login' });
    this.state.events.next({ type: 'signed-in', user: response.user });
  }

  /**
   * Signs this device out here and in every other tab at once, then on the server. Rejects if
   * the server could not be told (the session then ends when its refresh token expires).
   */
  async logout(reason: SignOutReason = 'logout'): Promise<void> {
    const refreshToken = this.storage.tokens()?.refreshToken;
    this.signOut(reason, true);
    await firstValueFrom(
      this.http.post<void>(this.url('/api/logout'), refreshToken ? { refreshToken } : {}, authEndpoint()),
    );
  }

  /** Revokes every session of the user, this one included. */
  async signOutEverywhere(): Promise<void> {
    await firstValueFrom(this.http.delete<void>(this.url('/api/sessions')));
    this.signOut('everywhere', true);
  }

  /** Restores the session after a page load. Never throws: at worst the user is signed out. */
  async restore(): Promise<void> {
    const stored = this.storage.tokens();
    if (stored) {
      this.state.setTokens(stored.accessToken, stored.expiresAt);
    } else if (!this.storage.mayBeSignedIn()) {
      return;
    }
    try {
      if (!stored || stored.expiresAt <= Date.now()) {
        await this.refresh();
      }
      const user = await firstValueFrom(this.http.get<TollgateUser>(this.url('/api/current-user')));
      this.state.user.set(user);
      this.scheduler.schedule();
      this.state.events.next({ type: 'signed-in', user });
    } catch {
      // A refused refresh has signed out already; after an outage the stored session is kept
      // for the next load.
      this.scheduler.stop();
      this.state.clear();
    }
  }

  /**
   * A fresh access token after `failedToken` was refused. Concurrent callers share one
   * refresh; a caller whose token was already replaced gets the new one at once.
   */
  refreshAfter(failedToken: string | null): Promise<string> {
    const current = this.state.accessToken();
    if (current !== null && current !== failedToken) {
      return Promise.resolve(current);
    }
    return this.refresh();
  }

  accessToken(): string | null {
    return this.state.accessToken();
  }

  /** One refresh at a time in this tab (single flight) and across tabs (Web Locks). */
  private refresh(): Promise<string> {
    const tokenBefore = this.state.accessToken();
    this.refreshing ??= this.tabs
      .exclusive(() => this.callRefresh(tokenBefore))
      .finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async callRefresh(tokenBefore: string | null): Promise<string> {
    const stored = this.storage.tokens();
    // Another tab may have refreshed while this one waited for the lock.
    if (stored && stored.accessToken !== tokenBefore && stored.expiresAt > Date.now()) {
      this.useTokens(stored.accessToken, stored.expiresAt);
      return stored.accessToken;
    }
    const body = { refreshToken: stored?.refreshToken, fingerprint: this.storage.device() };
    try {
      const response = await this.postWithProof<TokenResponse>(this.url('/api/refresh-token'), body);
      this.accept(response);
      this.state.events.next({ type: 'refreshed', expiresAt: this.state.expiresAt() });
      return response.accessToken;
    } catch (error) {
      // Only a refused refresh ends the session; outages and network errors do not.
      if (error instanceof HttpErrorResponse && error.status === 403) {
        this.signOut('refused', true);
      }
      throw error;
    }
  }

  /**
   * A sign-in or refresh call, with a DPoP proof when the session is to be bound; a nonce
   * challenge (400 with `DPoP-Nonce`) is answered by signing again, once.
   */
  private async postWithProof<T>(url: string, body: object, retried = false): Promise<T> {
    const options = authEndpoint();
    // Without a key this browser keeps, the session stays unbound: a lost key would sign out.
    if (!this.config.dpop || !(await this.dpop.usable())) {
      return firstValueFrom(this.http.post<T>(url, body, options));
    }
    const signed = await this.dpop.proof('POST', url);
    const headers = new HttpHeaders({ DPoP: signed.proof });
    try {
      const response = await firstValueFrom(this.http.post<T>(url, body, { ...options, headers, observe: 'response' }));
      this.dpop.learn(url, response.headers);
      return response.body as T;
    } catch (error) {
      // A nonce challenge: signed again, once, with a nonce the refused proof did not carry.
      const challenged =
        error instanceof HttpErrorResponse && error.status === 400 && this.dpop.learn(url, error.headers, signed.nonce);
      if (challenged && !retried) {
        return this.postWithProof<T>(url, body, true);
      }
      throw error;
    }
  }

  private accept(response: TokenResponse): void {
    const expiresAt = Date.now() + response.expiresIn * 1000;
    this.state.setTokens(response.accessToken, expiresAt);
    this.storage.save(response.accessToken, expiresAt, response.refreshToken);
    this.scheduler.schedule();
  }

  private signOut(reason: SignOutReason, broadcast: boolean): void {
    const wasSignedIn = this.state.accessToken() !== null;
    this.scheduler.stop();
    this.state.clear();
    this.storage.clear();
    if (broadcast) {
      this.tabs.post({ type: 'logout', reason });
    }
    if (wasSignedIn || broadcast) {
      this.state.events.next({ type: 'signed-out', reason });
      void this.router.navigateByUrl(this.config.loginRoute);
    }
  }

  private onTabMessage(message: TabMessage): void {
    if (message.type === 'logout') {
      this.signOut(message.reason, false);
    } else if (message.type === 'login' && !this.signedIn()) {
      void this.restore();
    }
  }

  /** With the localStorage transport, tokens another tab refreshed replace ours. */
  private adoptStoredTokens(): void {
    const stored = this.storage.tokens();
    if (stored && this.signedIn()) {
      this.useTokens(stored.accessToken, stored.expiresAt);
    }
  }

  private useTokens(accessToken: string, expiresAt: number): void {
    this.state.setTokens(accessToken, expiresAt);
    this.scheduler.schedule();
  }
}

/** Options for sign-in, refresh and sign-out calls: no bearer token, cookies included. */
export function authEndpoint() {
  return { context: new HttpContext().set(SKIP_AUTH, true), withCredentials: true };
}
