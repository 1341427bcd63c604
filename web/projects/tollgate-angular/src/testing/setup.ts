import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { Provider } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import { provideRouter, Router } from '@angular/router';

import { resolveConfig, TOLLGATE_CONFIG, TollgateFeature } from '../lib/config';
import { TollgateUser } from '../lib/models';
import { Session } from '../lib/session';
import { TollgateAuth } from '../lib/tollgate-auth';
import { tollgateInterceptor } from '../lib/tollgate.interceptor';

export const USER: TollgateUser = {
  id: '6d2f1a64-8a4c-4f0e-9d0e-1c2b3a4d5e6f',
  username: 'user1',
  email: 'user1@example.com',
};

/**
 * A TestBed with the real services and interceptor over Angular's HTTP testing backend, with
 * `features` applied. `keepStorage` leaves what the test stored in localStorage.
 */
export function setUp(
  features: TollgateFeature[] = [],
  { keepStorage = false, providers = [] as Provider[] } = {},
) {
  if (!keepStorage) {
    localStorage.clear();
  }
  TestBed.configureTestingModule({
    providers: [
      provideHttpClient(withInterceptors([tollgateInterceptor])),
      provideHttpClientTesting(),
      provideRouter([{ path: 'login', children: [] }]),
      { provide: TOLLGATE_CONFIG, useValue: resolveConfig({ apiUrl: '' }, features) },
      ...providers,
    ],
  });
  return {
    auth: TestBed.inject(TollgateAuth),
    backend: TestBed.inject(HttpTestingController),
    router: TestBed.inject(Router),
  };
}

/** The internal session service, for what the public `TollgateAuth` does not offer. */
export function session(): Session {
  return TestBed.inject(Session);
}

/** Lets promise chains and timers queued so far run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function tokens(accessToken: string, refreshToken?: string, expiresIn = 900) {
  return { accessToken, refreshToken, expiresIn, tokenType: 'Bearer' };
}

/** An unsigned JWT-shaped token with these claims (the client never verifies tokens). */
export function tokenWithClaims(claims: object): string {
  const part = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${part({ alg: 'EdDSA', typ: 'at+jwt' })}.${part(claims)}.signature`;
}

export async function signIn(
  auth: TollgateAuth,
  backend: HttpTestingController,
  accessToken = 'access-1',
  refreshToken?: string,
): Promise<void> {
  const done = auth.login('user1', 'password');
  backend.expectOne('/api/login').flush({ user: USER, ...tokens(accessToken, refreshToken) });
  await done;
}
