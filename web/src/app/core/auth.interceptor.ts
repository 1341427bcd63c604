import { HttpErrorResponse, HttpInterceptorFn, HttpRequest } from '@angular/common/http';
import { inject } from '@angular/core';
import { catchError, from, switchMap, throwError } from 'rxjs';

import { AuthService, SKIP_AUTH } from './auth.service';

/**
 * Adds the bearer token to the API's own requests. On a 401 it refreshes once — concurrent
 * failures wait for that same refresh — and replays the request with the new token. A refused
 * refresh (403) signs out inside `AuthService`; other failures pass through untouched.
 */
export const authInterceptor: HttpInterceptorFn = (request, next) => {
  const auth = inject(AuthService);
  if (request.context.get(SKIP_AUTH) || !auth.isApiRequest(request.url)) {
    return next(request);
  }
  const token = auth.accessToken();
  return next(withBearer(request, token)).pipe(
    catchError((error: unknown) => {
      const expired = error instanceof HttpErrorResponse && error.status === 401 && token !== null;
      if (!expired) {
        return throwError(() => error);
      }
      return from(auth.refreshAccessToken(token)).pipe(
        switchMap((fresh) => next(withBearer(request, fresh))),
      );
    }),
  );
};

function withBearer<T>(request: HttpRequest<T>, token: string | null): HttpRequest<T> {
  return token ? request.clone({ setHeaders: { Authorization: `Bearer ${token}` } }) : request;
}
