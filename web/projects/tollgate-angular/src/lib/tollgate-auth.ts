import { computed, inject, Injectable } from '@angular/core';
import { Observable } from 'rxjs';

import { AuthState } from './auth-state';
import { TollgateEvent, TollgateRegistration } from './models';
import { Session } from './session';

/**
 * The session as the app sees it: who is signed in (signals), what happened (`events`), and
 * signing in and out.
 */
@Injectable({ providedIn: 'root' })
export class TollgateAuth {
  private readonly state = inject(AuthState);
  private readonly session = inject(Session);

  /** The signed-in user, or `null`. */
  readonly user = this.state.user.asReadonly();
  readonly signedIn = computed(() => this.state.user() !== null);
  /** The roles of the access token (its `roles` claim), for what the page shows. */
  readonly roles = this.state.roles;
  /** When the access token expires (local clock, ms since the epoch); 0 when signed out. */
  readonly expiresAt = this.state.expiresAt;
  /** Signed in (or restored on load), refreshed, signed out and why. */
  readonly events: Observable<TollgateEvent> = this.state.events.asObservable();

  /** Whether the user holds `role`. */
  hasRole(role: string): boolean {
    return this.state.roles().includes(role);
  }

  /** The API's URL for `path` (such as `/api/job-list`). */
  url(path: string): string {
    return this.session.url(path);
  }

  /** Signs in; rejects with the server's `HttpErrorResponse` (400 wrong password, 429, …). */
  login(username: string, password: string): Promise<void> {
    return this.session.login(username, password);
  }

  /**
   * Creates an account and signs in with it; rejects with the server's `HttpErrorResponse`
   * (403 sign-up closed, 409 username taken, 400 with the reason for a weak password).
   */
  register(details: TollgateRegistration): Promise<void> {
    return this.session.register(details);
  }

  /**
   * Signs this device out, here and in every other tab at once, then on the server; rejects if
   * the server could not be told.
   */
  logout(): Promise<void> {
    return this.session.logout('logout');
  }

  /** Revokes every session of the user, this one included. */
  signOutEverywhere(): Promise<void> {
    return this.session.signOutEverywhere();
  }
}
