import { Location } from '@angular/common';
import { ChangeDetectionStrategy, Component, inject, input, OnInit, signal } from '@angular/core';
import { FormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { TollgateAccount } from 'tollgate-angular';

import { problemMessage } from '../problems';

@Component({
  selector: 'app-reset-password',
  imports: [ReactiveFormsModule, RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="row justify-content-center py-5">
      <div class="col-sm-9 col-md-6 col-lg-4">
        <h1 class="h3 mb-4">Choose a new password</h1>
        @if (done()) {
          <div class="alert alert-success" role="status">
            Your password is changed and every device is signed out.
            <a routerLink="/login">Sign in</a> with the new one.
          </div>
        } @else if (!resetToken()) {
          <div class="alert alert-warning" role="alert">
            This page needs the link from the mail. <a routerLink="/forgot-password">Ask for a new one.</a>
          </div>
        } @else {
          <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
            <div class="mb-3">
              <label class="form-label" for="new-password">New password</label>
              <input id="new-password" class="form-control" type="password" formControlName="password"
                autocomplete="new-password" />
            </div>
            <div class="mb-3">
              <label class="form-label" for="repeat-password">Repeat the new password</label>
              <input id="repeat-password" class="form-control" type="password" formControlName="repeat"
                autocomplete="new-password" />
            </div>
            @if (error(); as message) {
              <div class="alert alert-danger" role="alert">{{ message }}</div>
            }
            <button class="btn btn-primary w-100" type="submit" [disabled]="form.invalid || busy()">Set password</button>
          </form>
        }
      </div>
    </section>
  `,
})
export class ResetPasswordPage implements OnInit {
  private readonly account = inject(TollgateAccount);
  private readonly location = inject(Location);

  /** From the link in the mail (`?token=…`). */
  readonly token = input<string>();
  /** The token, kept here once it is off the address bar (history, screenshots, shared screens). */
  protected readonly resetToken = signal<string | undefined>(undefined);

  protected readonly form = inject(FormBuilder).nonNullable.group({
    password: ['', [Validators.required, Validators.minLength(8)]],
    repeat: ['', Validators.required],
  });
  protected readonly busy = signal(false);
  protected readonly done = signal(false);
  protected readonly error = signal<string | null>(null);

  ngOnInit(): void {
    this.resetToken.set(this.token());
    if (this.token()) {
      this.location.replaceState('/reset-password');
    }
  }

  protected async submit(): Promise<void> {
    const { password, repeat } = this.form.getRawValue();
    if (password !== repeat) {
      this.error.set('The two passwords differ.');
      return;
    }
    this.busy.set(true);
    this.error.set(null);
    try {
      await this.account.resetPassword(this.resetToken() ?? '', password);
      this.done.set(true);
    } catch (error) {
      this.error.set(problemMessage(error, 'The password could not be set. Please try again.'));
    } finally {
      this.busy.set(false);
    }
  }
}
