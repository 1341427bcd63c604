import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { FormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { Router, RouterLink } from '@angular/router';
import { TollgateAuth } from 'tollgate-angular';

import { problemMessage } from '../problems';
import { ServerSettings } from '../server-settings';

@Component({
  selector: 'app-signup',
  imports: [ReactiveFormsModule, RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="row justify-content-center py-5">
      <div class="col-sm-10 col-md-7 col-lg-5">
        <h1 class="h3 mb-4">Create an account</h1>
        @if (!server.settings().signup) {
          <div class="alert alert-secondary" role="status">
            Sign-up is closed on this server. Ask an administrator for an account.
          </div>
        } @else {
          <form [formGroup]="form" (ngSubmit)="submit()" novalidate>
            <div class="mb-3">
              <label class="form-label" for="username">Username</label>
              <input id="username" class="form-control" formControlName="username" autocomplete="username" />
            </div>
            <div class="mb-3">
              <label class="form-label" for="email">Email</label>
              <input id="email" class="form-control" type="email" formControlName="email" autocomplete="email" />
            </div>
            <div class="row">
              <div class="col mb-3">
                <label class="form-label" for="first_name">First name</label>
                <input id="first_name" class="form-control" formControlName="first_name" autocomplete="given-name" />
              </div>
              <div class="col mb-3">
                <label class="form-label" for="last_name">Last name</label>
                <input id="last_name" class="form-control" formControlName="last_name" autocomplete="family-name" />
              </div>
            </div>
            <div class="mb-3">
              <label class="form-label" for="password">Password</label>
              <input
                id="password"
                class="form-control"
                type="password"
                formControlName="password"
                autocomplete="new-password"
                aria-describedby="password-help"
              />
              <div id="password-help" class="form-text">
                At least 8 characters. A few words you will remember beat symbols; very common passwords are refused.
              </div>
            </div>
            @if (error(); as message) {
              <div class="alert alert-danger" role="alert">{{ message }}</div>
            }
            <button class="btn btn-primary w-100" type="submit" [disabled]="form.invalid || busy()">Create account</button>
          </form>
        }
        <p class="mt-3 small">Already have an account? <a routerLink="/login">Sign in</a></p>
      </div>
    </section>
  `,
})
export class SignupPage implements OnInit {
  private readonly auth = inject(TollgateAuth);
  private readonly router = inject(Router);
  protected readonly server = inject(ServerSettings);

  protected readonly form = inject(FormBuilder).nonNullable.group({
    username: ['', Validators.required],
    email: ['', [Validators.required, Validators.email]],
    first_name: [''],
    last_name: [''],
    password: ['', [Validators.required, Validators.minLength(8)]],
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
    try {
      await this.auth.register(this.form.getRawValue());
      await this.router.navigateByUrl('/profile');
    } catch (error) {
      this.error.set(problemMessage(error, 'The account could not be created. Please try again.'));
    } finally {
      this.busy.set(false);
    }
  }
}
