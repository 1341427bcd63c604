import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { FormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { TollgateAccount } from 'tollgate-angular';

import { problemMessage } from '../problems';
import { ServerSettings } from '../server-settings';

@Component({
  selector: 'app-forgot-password',
  imports: [ReactiveFormsModule, RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="row justify-content-center py-5">
      <div class="col-sm-9 col-md-6 col-lg-4">
        <h1 class="h3 mb-4">Forgot your password?</h1>
        @if (!server.settings().passwordReset) {
          <div class="alert alert-secondary" role="status">
            This server cannot send mail. Ask an administrator to set a new password.
          </div>
        } @else if (sent()) {
          <div class="alert alert-success" role="status">
            If an account uses this address, a link to choose a new password is on its way. It works for one hour.
          </div>
        } @else {
          <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
            <div class="mb-3">
              <label class="form-label" for="email">Email</label>
              <input id="email" class="form-control" type="email" formControlName="email" autocomplete="email" />
            </div>
            @if (error(); as message) {
              <div class="alert alert-danger" role="alert">{{ message }}</div>
            }
            <button class="btn btn-primary w-100" type="submit" [disabled]="form.invalid || busy()">Send a link</button>
          </form>
        }
        <p class="mt-3 small"><a routerLink="/login">Back to sign in</a></p>
      </div>
    </section>
  `,
})
export class ForgotPasswordPage implements OnInit {
  private readonly account = inject(TollgateAccount);
  protected readonly server = inject(ServerSettings);

  protected readonly form = inject(FormBuilder).nonNullable.group({
    email: ['', [Validators.required, Validators.email]],
  });
  protected readonly busy = signal(false);
  protected readonly sent = signal(false);
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
    try {
      await this.account.requestPasswordReset(this.form.getRawValue().email);
      this.sent.set(true);
    } catch (error) {
      this.error.set(problemMessage(error, 'The link could not be sent. Please try again.'));
    } finally {
      this.busy.set(false);
    }
  }
}
