import { TestBed } from '@angular/core/testing';
import { ActivatedRouteSnapshot, RouterStateSnapshot, UrlTree } from '@angular/router';

import { withLoginRoute } from './config';
import { authGuard, roleGuard } from './guards';
import { setUp, signIn, tokenWithClaims } from '../testing/setup';

function activate(guard: typeof authGuard, url: string) {
  return TestBed.runInInjectionContext(() => guard({} as ActivatedRouteSnapshot, { url } as RouterStateSnapshot));
}

describe('authGuard', () => {
  it('sends a signed-out visitor to the login route with the wanted URL', () => {
    const { router } = setUp([withLoginRoute('/sign-in')]);
    const result = activate(authGuard, '/profile?tab=devices');
    expect(result).toBeInstanceOf(UrlTree);
    expect(router.serializeUrl(result as UrlTree)).toBe('/sign-in?returnUrl=%2Fprofile%3Ftab%3Ddevices');
  });

  it('lets a signed-in user through', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    expect(activate(authGuard, '/profile')).toBe(true);
  });
});

describe('roleGuard', () => {
  it('lets through only users whose token carries the role', async () => {
    const { auth, backend, router } = setUp();
    await signIn(auth, backend, tokenWithClaims({ roles: ['auditor'] }));
    expect(activate(roleGuard('auditor'), '/audit')).toBe(true);
    const refused = activate(roleGuard('admin'), '/admin');
    expect(router.serializeUrl(refused as UrlTree)).toBe('/');
  });

  it('sends signed-out visitors to sign in first', () => {
    const { router } = setUp();
    const result = activate(roleGuard('admin'), '/admin');
    expect(router.serializeUrl(result as UrlTree)).toBe('/login?returnUrl=%2Fadmin');
  });
});
