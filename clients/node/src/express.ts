import type { IncomingMessage, ServerResponse } from 'node:http';

import type { TLSSocket } from 'node:tls';

import { ProofRejected } from './dpop.js';
import { TokenRejected } from './errors.js';
import { TollgateVerifier, type AccessClaims, type TollgateOptions } from './verifier.js';

const INVALID_TOKEN = 'Bearer error="invalid_token"';
const INVALID_DPOP_TOKEN = 'DPoP error="invalid_token"';
const INVALID_PROOF = 'DPoP error="invalid_dpop_proof"';

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
  const presented = accessToken(authorization);
  return presented?.scheme === 'Bearer' ? presented.token : undefined;
}

/**
 * The token of an `Authorization: Bearer <token>` or `Authorization: DPoP <token>` header, and
 * which; `undefined` when there is none.
 */
export function accessToken(
  authorization: string | undefined,
): { scheme: 'Bearer' | 'DPoP'; token: string } | undefined {
  if (authorization === undefined) return undefined;
  const space = authorization.indexOf(' ');
  const name = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
  const scheme = name === 'bearer' ? 'Bearer' : name === 'dpop' ? 'DPoP' : undefined;
  if (scheme === undefined) return undefined;
  return { scheme, token: space < 0 ? '' : authorization.slice(space + 1) };
}

/** The URI a proof's `htu` names for this request: the configured origin, else our own. */
function proofUri(request: IncomingMessage, origin: string | undefined): string {
  const path = (request as { originalUrl?: string }).originalUrl ?? request.url ?? '/';
  if (origin !== undefined) return `${origin}${path}`;
  const scheme = (request.socket as TLSSocket).encrypted ? 'https' : 'http';
  return `${scheme}://${request.headers.host ?? ''}${path}`;
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
    const presented = accessToken(request.headers.authorization);
    if (presented === undefined) {
      problem(response, 401, 'An access token is required.', 'Bearer');
      return;
    }
    authenticate(verifier, request, presented)
      .then(
        (claims) => {
          (request as AuthenticatedRequest).auth = claims;
          next();
        },
        (error: unknown) => {
          if (error instanceof ProofRejected) {
            problem(response, 401, 'The DPoP proof is missing or invalid.', INVALID_PROOF);
          } else if (error instanceof TokenRejected) {
            const challenge = presented.scheme === 'DPoP' || error.reason.startsWith('DPoP')
              ? INVALID_DPOP_TOKEN
              : INVALID_TOKEN;
            problem(response, 401, 'The access token is invalid or has expired.', challenge);
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

/**
 * The claims of the presented token: a bearer token as it is, a token bound to a key only as
 * `DPoP` with a proof by that key.
 */
async function authenticate(
  verifier: TollgateVerifier,
  request: IncomingMessage,
  presented: { scheme: 'Bearer' | 'DPoP'; token: string },
): Promise<AccessClaims> {
  const claims = await verifier.verify(presented.token);
  const dpop = verifier.dpop;
  const jkt = claims.cnf?.jkt;
  if (jkt === undefined) {
    if (presented.scheme === 'DPoP' || dpop.required) {
      throw new TokenRejected('DPoP: a token bound to no key where one must be');
    }
    return claims;
  }
  if (presented.scheme !== 'DPoP') {
    throw new TokenRejected('DPoP: a token bound to a key, without its proof');
  }
  const proofs = request.headersDistinct?.['dpop'] ?? [];
  if (proofs.length !== 1) throw new ProofRejected(proofs.length === 0 ? 'no proof' : 'several proofs');
  const target = {
    method: request.method ?? '',
    uri: proofUri(request, dpop.origin),
    accessToken: presented.token,
  };
  if ((await dpop.check(proofs[0]!, target)) !== jkt) {
    throw new ProofRejected('proof by another key');
  }
  return claims;
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
