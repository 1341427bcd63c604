import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter, Router } from '@angular/router';

import { AUTH_CONFIG, AuthConfig, DEFAULT_AUTH_CONFIG } from './auth.config';
import { authInterceptor } from './auth.interceptor';
import { AuthService } from './auth.service';
import { User } from './models';

export const USER: User = {
  id: '6d2f1a64-8a4c-4f0e-9d0e-1c2b3a4d5e6f',
  username: 'user1',
  email: 'user1@example.com',
  first_name: 'Ada',
  last_name: 'Lovelace',
  gender: 'female',
  phone: '+44 20 7946 0101',
  city: 'London',
};

/** A TestBed with the real service and interceptor over Angular's HTTP testing backend. */
export function setUp(config: Partial<AuthConfig> = {}) {
  localStorage.clear();
  TestBed.configureTestingModule({
    providers: [
      provideHttpClient(withInterceptors([authInterceptor])),
      provideHttpClientTesting(),
      provideRouter([{ path: 'login', children: [] }]),
      { provide: AUTH_CONFIG, useValue: { ...DEFAULT_AUTH_CONFIG, refreshAhead: false, ...config } },
    ],
  });
  return {
    auth: TestBed.inject(AuthService),
    backend: TestBed.inject(HttpTestingController),
    router: TestBed.inject(Router),
  };
}

/** Lets promise chains and timers queued so far run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function tokens(accessToken: string, refreshToken?: string) {
  return { accessToken, refreshToken, expiresIn: 900, tokenType: 'Bearer' };
}

export async function signIn(
  auth: AuthService,
  backend: HttpTestingController,
  accessToken = 'access-1',
  refreshToken?: string,
): Promise<void> {
  const done = auth.login('user1', 'password');
  backend.expectOne('/api/login').flush({ user: USER, ...tokens(accessToken, refreshToken) });
  await done;
}
