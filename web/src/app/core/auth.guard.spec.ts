import { TestBed } from '@angular/core/testing';
import { ActivatedRouteSnapshot, RouterStateSnapshot, UrlTree } from '@angular/router';

import { authGuard } from './auth.guard';
import { setUp, signIn } from './testing';

function activate(url: string) {
  return TestBed.runInInjectionContext(() =>
    authGuard({} as ActivatedRouteSnapshot, { url } as RouterStateSnapshot),
  );
}

describe('authGuard', () => {
  it('sends a signed-out visitor to /login with the wanted URL', () => {
    const { router } = setUp();
    const result = activate('/profile?tab=devices');
    expect(result).toBeInstanceOf(UrlTree);
    expect(router.serializeUrl(result as UrlTree)).toBe('/login?returnUrl=%2Fprofile%3Ftab%3Ddevices');
  });

  it('lets a signed-in user through', async () => {
    const { auth, backend } = setUp();
    await signIn(auth, backend);
    expect(activate('/profile')).toBe(true);
  });
});
