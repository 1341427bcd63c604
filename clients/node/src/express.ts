import type { IncomingMessage, ServerResponse } from 'node:http';

import { TokenRejected } from './errors.js';
import { TollgateVerifier, type AccessClaims, type TollgateOptions } from './verifier.js';

const INVALID_TOKEN = 'Bearer error="invalid_token"';

/** A request the middleware let through: `auth` holds the caller's claims. */
export interface AuthenticatedRequest extends IncomingMessage {
  auth: AccessClaims;
}

/** An Express (or plain `node:http`) middleware, with the verifier it uses. */
export interface TollgateMiddleware {
  (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void): void;
  verifier: TollgateVerifier;
}

/** The token of an `Authorization: Bearer <token>` header; `undefined` when there is none. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  if (space < 0) return authorization.toLowerCase() === 'bearer' ? '' : undefined;
  if (authorization.slice(0, space).toLowerCase() !== 'bearer') return undefined;
  return authorization.slice(space + 1);
}

/**
 * Lets through only requests with a valid access token of a session not revoked, with the
 * claims in `request.auth`; answers as Tollgate does otherwise: 401 with an RFC 6750
 * challenge, or 503 while Tollgate has not been reached, as problem+json.
 */
export function tollgate(options: TollgateOptions | TollgateVerifier): TollgateMiddleware {
  const verifier = options instanceof TollgateVerifier ? options : new TollgateVerifier(options);
  const middleware = (
    request: IncomingMessage,
    response: ServerResponse,
    next: (error?: unknown) => void,
  ) => {
    // Several Authorization headers are ambiguous (Node itself would keep only the first).
    if ((request.headersDistinct?.['authorization']?.length ?? 0) > 1) {
      problem(response, 401, 'The access token is invalid or has expired.', INVALID_TOKEN);
      return;
    }
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) {
      problem(response, 401, 'An access token is required.', 'Bearer');
      return;
    }
    verifier
      .verify(token)
      .then(
        (claims) => {
          (request as AuthenticatedRequest).auth = claims;
          next();
        },
        (error: unknown) => {
          if (error instanceof TokenRejected) {
            problem(response, 401, 'The access token is invalid or has expired.', INVALID_TOKEN);
          } else {
            problem(response, 503, 'The service is temporarily unavailable.');
          }
        },
      )
      // What the next handler throws goes to Express's error handling, never unhandled.
      .catch((error: unknown) => next(error));
  };
  return Object.assign(middleware, { verifier });
}

function problem(response: ServerResponse, status: number, detail: string, challenge?: string) {
  response.statusCode = status;
  response.setHeader('Content-Type', 'application/problem+json');
  if (challenge === undefined) {
    response.setHeader('Retry-After', '1');
  } else {
    response.setHeader('WWW-Authenticate', challenge);
  }
  const title = status === 401 ? 'Unauthorized' : 'Service Unavailable';
  response.end(JSON.stringify({ type: 'about:blank', title, status, detail }));
}
