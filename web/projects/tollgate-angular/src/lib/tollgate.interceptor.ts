import { HttpErrorResponse, HttpInterceptorFn, HttpRequest } from '@angular/common/http';
import { inject } from '@angular/core';
import { catchError, from, Observable, of, switchMap, throwError, timer } from 'rxjs';

import { isBound } from './auth-state';
import { ResolvedConfig, TOLLGATE_CONFIG } from './config';
import { DpopKey } from './dpop';
import { Session, SKIP_AUTH } from './session';

/** The longest `Retry-After` waited for before replaying a request once. */
const MAX_RETRY_AFTER_MS = 60_000;

/**
 * Adds the access token to the API's own requests (and those `withAllowedUrls` adds): as
 * `Bearer`, or, for a token bound to this browser's DPoP key, as `DPoP` with a proof. On a 401
 * it refreshes once (concurrent failures wait for that same refresh) and replays the request
 * with the new token; a DPoP nonce challenge is signed again once; on a 429 it waits for
 * `Retry-After` (up to a minute) and replays it once. A refused refresh (403) signs out;
 * network errors and 5xx pass through untouched.
 */
export const tollgateInterceptor: HttpInterceptorFn = (request, next) => {
  const session = inject(Session);
  const config = inject(TOLLGATE_CONFIG);
  const dpop = inject(DpopKey);
  if (request.context.get(SKIP_AUTH) || !isAllowed(request.url, config)) {
    return next(request);
  }
  /** The request with the token, and the nonce its proof carried when the token is bound. */
  const authorised = (token: string | null): Observable<{ sent: HttpRequest<unknown>; nonce?: string }> => {
    if (token === null) {
      return of({ sent: request });
    }
    if (!isBound(token)) {
      return of({ sent: request.clone({ setHeaders: { Authorization: `Bearer ${token}` } }) });
    }
    const url = new URL(request.urlWithParams, document.baseURI).href;
    return from(dpop.proof(request.method, url, token)).pipe(
      switchMap(({ proof, nonce }) =>
        of({ sent: request.clone({ setHeaders: { Authorization: `DPoP ${token}`, DPoP: proof } }), nonce }),
      ),
    );
  };
  // Each kind of replay at most once: a request cannot loop. One handler per attempt: what a
  // replay does wrong is its own handler's business, never this one's again.
  const send = (token: string | null, replayed: Replayed): ReturnType<typeof next> =>
    authorised(token).pipe(
      switchMap(({ sent, nonce }) =>
        next(sent).pipe(
          catchError((error: unknown) => {
            if (!(error instanceof HttpErrorResponse)) {
              return throwError(() => error);
            }
            // A nonce challenge to a bound token's proof: signed again with the new nonce.
            const challenged =
              error.status === 401 &&
              token !== null &&
              isBound(token) &&
              !replayed.nonce &&
              dpop.learn(request.url, error.headers, nonce);
            if (challenged) {
              return send(token, { ...replayed, nonce: true });
            }
            if (error.status === 401 && token !== null && !replayed.refresh) {
              return from(session.refreshAfter(token)).pipe(
                switchMap((fresh) => send(fresh, { ...replayed, refresh: true })),
              );
            }
            const wait = error.status === 429 && !replayed.wait ? retryAfterMs(error) : null;
            if (wait !== null) {
              return timer(wait).pipe(switchMap(() => send(session.accessToken(), { ...replayed, wait: true })));
            }
            return throwError(() => error);
          }),
        ),
      ),
    );
  return send(session.accessToken(), { refresh: false, wait: false, nonce: false });
};

/** Which replays a request has had. */
interface Replayed {
  refresh: boolean;
  wait: boolean;
  nonce: boolean;
}

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

