import { HttpErrorResponse, HttpInterceptorFn, HttpRequest } from '@angular/common/http';
import { inject } from '@angular/core';
import { catchError, from, switchMap, throwError, timer } from 'rxjs';

import { ResolvedConfig, TOLLGATE_CONFIG } from './config';
import { Session, SKIP_AUTH } from './session';

/** The longest `Retry-After` waited for before replaying a request once. */
const MAX_RETRY_AFTER_MS = 60_000;

/**
 * Adds the access token to the API's own requests (and those `withAllowedUrls` adds). On a 401
 * it refreshes once (concurrent failures wait for that same refresh) and replays the request
 * with the new token; on a 429 it waits for `Retry-After` (up to a minute) and replays it once.
 * A refused refresh (403) signs out; network errors and 5xx pass through untouched.
 */
export const tollgateInterceptor: HttpInterceptorFn = (request, next) => {
  const session = inject(Session);
  const config = inject(TOLLGATE_CONFIG);
  if (request.context.get(SKIP_AUTH) || !isAllowed(request.url, config)) {
    return next(request);
  }
  // Each kind of replay at most once: a request cannot loop.
  const send = (bearer: string | null, refreshed: boolean, waited: boolean): ReturnType<typeof next> =>
    next(withBearer(request, bearer)).pipe(
      catchError((error: unknown) => {
        if (!(error instanceof HttpErrorResponse)) {
          return throwError(() => error);
        }
        if (error.status === 401 && bearer !== null && !refreshed) {
          return from(session.refreshAfter(bearer)).pipe(switchMap((fresh) => send(fresh, true, waited)));
        }
        const wait = error.status === 429 && !waited ? retryAfterMs(error) : null;
        if (wait !== null) {
          return timer(wait).pipe(switchMap(() => send(session.accessToken(), refreshed, true)));
        }
        return throwError(() => error);
      }),
    );
  return send(session.accessToken(), false, false);
};

/** Whether `url` gets the access token: the API's origin under `/api/`, or an allowed URL. */
export function isAllowed(url: string, config: Pick<ResolvedConfig, 'apiUrl' | 'allowedUrls'>): boolean {
  const target = new URL(url, document.baseURI);
  const api = new URL(config.apiUrl || document.baseURI, document.baseURI);
  if (target.origin === api.origin && target.pathname.startsWith('/api/')) {
    return true;
  }
  return config.allowedUrls.some((allowed) =>
    typeof allowed === 'string' ? target.href.startsWith(allowed) : allowed.test(target.href),
  );
}

/** `Retry-After` in ms (seconds or an HTTP date), if present and at most a minute. */
function retryAfterMs(error: HttpErrorResponse): number | null {
  const header = error.headers?.get('Retry-After');
  if (!header) {
    return null;
  }
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return ms >= 0 && ms <= MAX_RETRY_AFTER_MS ? ms : null;
}

function withBearer<T>(request: HttpRequest<T>, token: string | null): HttpRequest<T> {
  return token ? request.clone({ setHeaders: { Authorization: `Bearer ${token}` } }) : request;
}
