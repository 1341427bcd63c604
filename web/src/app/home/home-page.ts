import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { RouterLink } from '@angular/router';

import { TollgateAuth } from 'tollgate-angular';

@Component({
  selector: 'app-home',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="py-5">
      <h1 class="display-5 fw-semibold">Tollgate</h1>
      <p class="lead col-lg-8">
        Sign-in that stays out of the way: a short-lived access token in memory, a refresh token
        that rotates on every use in an HttpOnly cookie, and a client that refreshes quietly
        before anything expires.
      </p>
      @if (auth.user(); as user) {
        <p>Signed in as <strong>{{ user.username }}</strong>.</p>
        <a class="btn btn-primary" routerLink="/profile">Go to your profile</a>
      } @else {
        <a class="btn btn-primary" routerLink="/login">Sign in</a>
        <p class="text-body-secondary mt-3 small">Demo users: user1, user2, user3 — password "password".</p>
      }
    </section>
  `,
})
export class HomePage {
  protected readonly auth = inject(TollgateAuth);
}
