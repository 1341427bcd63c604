import { ChangeDetectionStrategy, Component, inject, output, signal } from '@angular/core';
import { FormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { TollgateAccount } from 'tollgate-angular';

import { problemMessage } from '../problems';

/** The profile's password form: the current password first, as a re-authentication. */
@Component({
  selector: 'app-change-password',
  imports: [ReactiveFormsModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h2 class="h5">Change password</h2>
    <form class="col-md-8 col-lg-6" [formGroup]="form" (ngSubmit)="submit()" novalidate>
      <div class="mb-2">
        <label class="form-label" for="current-password">Current password</label>
        <input id="current-password" class="form-control" type="password" formControlName="current"
          autocomplete="current-password" />
      </div>
      <div class="mb-2">
        <label class="form-label" for="new-password">New password</label>
        <input id="new-password" class="form-control" type="password" formControlName="next"
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
      @if (changed()) {
        <div class="alert alert-success" role="status">Password changed. Your other devices are signed out.</div>
      }
      <button class="btn btn-outline-primary" type="submit" [disabled]="form.invalid || busy()">Change password</button>
    </form>
  `,
})
export class ChangePassword {
  private readonly account = inject(TollgateAccount);

  /** Emitted after a change (other sessions were revoked). */
  readonly passwordChanged = output<void>();

  protected readonly form = inject(FormBuilder).nonNullable.group({
    current: ['', Validators.required],
    next: ['', [Validators.required, Validators.minLength(8)]],
    repeat: ['', Validators.required],
  });
  protected readonly busy = signal(false);
  protected readonly changed = signal(false);
  protected readonly error = signal<string | null>(null);

  protected async submit(): Promise<void> {
    const { current, next, repeat } = this.form.getRawValue();
    this.changed.set(false);
    if (next !== repeat) {
      this.error.set('The two new passwords differ.');
      return;
    }
    this.busy.set(true);
    this.error.set(null);
    try {
      await this.account.changePassword(current, next);
      this.form.reset();
      this.changed.set(true);
      this.passwordChanged.emit();
    } catch (error) {
      this.error.set(problemMessage(error, 'The password could not be changed. Please try again.'));
    } finally {
      this.busy.set(false);
    }
  }
}
