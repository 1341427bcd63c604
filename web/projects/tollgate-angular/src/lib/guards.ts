import { inject } from '@angular/core';
import { CanActivateFn, Router } from '@angular/router';

import { TOLLGATE_CONFIG } from './config';
import { TollgateAuth } from './tollgate-auth';

/** Lets signed-in users through; sends others to the login route, remembering where they wanted to go. */
export const authGuard: CanActivateFn = (_route, state) => {
  if (inject(TollgateAuth).signedIn()) {
    return true;
  }
  return inject(Router).createUrlTree([inject(TOLLGATE_CONFIG).loginRoute], {
    queryParams: { returnUrl: state.url },
  });
};

/** Lets through signed-in users holding `role`; others go where `authGuard` sends them, or home. */
export function roleGuard(role: string): CanActivateFn {
  return (route, state) => {
    const auth = inject(TollgateAuth);
    if (!auth.signedIn()) {
      return authGuard(route, state);
    }
    return auth.hasRole(role) ? true : inject(Router).createUrlTree(['/']);
  };
}
