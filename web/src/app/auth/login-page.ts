import { ChangeDetectionStrategy, Component, inject, input, OnInit, signal } from '@angular/core';
import { FormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { Router, RouterLink } from '@angular/router';

import { TollgateAuth } from 'tollgate-angular';

import { problemMessage } from '../problems';
import { ServerSettings } from '../server-settings';

@Component({
  selector: 'app-login',
  imports: [ReactiveFormsModule, RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="row justify-content-center py-5">
      <div class="col-sm-9 col-md-6 col-lg-4">
        <h1 class="h3 mb-4">Sign in</h1>
        <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
          <div class="mb-3">
            <label class="form-label" for="username">Username</label>
            <input id="username" class="form-control" formControlName="username" autocomplete="username" />
          </div>
          <div class="mb-3">
            <label class="form-label" for="password">Password</label>
            <input
              id="password"
              class="form-control"
              type="password"
              formControlName="password"
              autocomplete="current-password"
            />
          </div>
          @if (error(); as message) {
            <div class="alert alert-danger" role="alert">{{ message }}</div>
          }
          <button class="btn btn-primary w-100" type="submit" [disabled]="form.invalid || busy()">
            @if (busy()) {
              <span class="spinner-border spinner-border-sm me-2" aria-hidden="true"></span>
            }
            Sign in
          </button>
        </form>
        <p class="mt-3 small d-flex flex-wrap gap-3">
          @if (server.settings().passwordReset) {
            <a routerLink="/forgot-password">Forgot your password?</a>
          }
          @if (server.settings().signup) {
            <a routerLink="/signup">Create an account</a>
          }
        </p>
      </div>
    </section>
  `,
})
export class LoginPage implements OnInit {
  private readonly auth = inject(TollgateAuth);
  private readonly router = inject(Router);
  protected readonly server = inject(ServerSettings);

  /** Where to go after signing in (a query parameter set by the guard). */
  readonly returnUrl = input<string>();

  protected readonly form = inject(FormBuilder).nonNullable.group({
    username: ['', Validators.required],
    password: ['', Validators.required],
  });
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  ngOnInit(): void {
    void this.server.load();
  }

  protected async submit(): Promise<void> {
    if (this.form.invalid) {
      return;
    }
    this.busy.set(true);
    this.error.set(null);
    const { username, password } = this.form.getRawValue();
    try {
      await this.auth.login(username, password);
      await this.router.navigateByUrl(safeReturnUrl(this.returnUrl()));
    } catch (error) {
      this.error.set(problemMessage(error, 'Sign-in failed. Please try again.'));
    } finally {
      this.busy.set(false);
    }
  }
}

/** Only paths on this site, never `//elsewhere` or a full URL. */
function safeReturnUrl(url: string | undefined): string {
  return url && url.startsWith('/') && !url.startsWith('//') ? url : '/profile';
}
