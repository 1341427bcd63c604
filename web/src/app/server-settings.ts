import { Injectable, inject, signal } from '@angular/core';
import { TollgateAccount, TollgateServerSettings } from 'tollgate-angular';

/** What the server offers (sign-up, password reset), read once; both off until known. */
@Injectable({ providedIn: 'root' })
export class ServerSettings {
  private readonly account = inject(TollgateAccount);
  private readonly current = signal<TollgateServerSettings>({ signup: false, passwordReset: false });
  private loading: Promise<void> | null = null;

  readonly settings = this.current.asReadonly();

  /** Loads the settings unless they are loaded or loading; failures leave both off. */
  load(): Promise<void> {
    this.loading ??= this.account.settings().then(
      (settings) => this.current.set(settings),
      () => {
        this.loading = null;
      },
    );
    return this.loading;
  }
}
