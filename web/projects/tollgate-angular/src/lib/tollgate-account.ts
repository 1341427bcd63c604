import { HttpClient } from '@angular/common/http';
import { inject, Injectable } from '@angular/core';
import { firstValueFrom } from 'rxjs';

import { TollgateServerSettings } from './models';
import { authEndpoint, Session } from './session';

/**
 * The account's own pages: what the server offers, password change, and password reset by
 * mail. Each call rejects with the server's `HttpErrorResponse`, whose problem `detail` says
 * why (a weak password, a wrong current password, a used reset link).
 */
@Injectable({ providedIn: 'root' })
export class TollgateAccount {
  private readonly http = inject(HttpClient);
  private readonly session = inject(Session);

  /** Whether sign-up and password reset are offered. */
  settings(): Promise<TollgateServerSettings> {
    return firstValueFrom(this.http.get<TollgateServerSettings>(this.session.url('/api/settings'), authEndpoint()));
  }

  /** Changes the signed-in user's password; every other session of theirs is signed out. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    await firstValueFrom(this.http.post<void>(this.session.url('/api/password'), { currentPassword, newPassword }));
  }

  /** Asks for a reset mail; resolves the same whether or not the address is known. */
  async requestPasswordReset(email: string): Promise<void> {
    await firstValueFrom(this.http.post<void>(this.session.url('/api/password-reset'), { email }, authEndpoint()));
  }

  /** Sets a new password with the token of a reset link; every session is signed out. */
  async resetPassword(token: string, newPassword: string): Promise<void> {
    await firstValueFrom(
      this.http.post<void>(this.session.url('/api/password-reset/confirm'), { token, newPassword }, authEndpoint()),
    );
  }
}
