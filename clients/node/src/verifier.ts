import { decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';

import { DpopChecker, type DpopOptions } from './dpop.js';
import { TokenRejected, Unavailable } from './errors.js';
import { RemoteKeys } from './keys.js';
import { RevocationFeed } from './revocations.js';

/** The `typ` header of an access token (RFC 9068). */
export const ACCESS_TYP = 'at+jwt';
/** Longer tokens are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8 * 1024;
/** The most clock difference a verifier may allow for. */
export const MAX_LEEWAY_SECONDS = 5;
/** Tokens remembered at most: a client sends the same token many times. */
const CACHE_ENTRIES = 4096;
/** How long past a token lifetime a revocation is kept: clocks differ a little. */
const CLOCK_MARGIN_MS = 60_000;

/** The claims of a verified access token. */
export interface AccessClaims {
  iss: string;
  aud: string;
  /** The user's id. */
  sub: string;
  /** The session (device); revoking it ends the token. */
  sid: string;
  iat: number;
  exp: number;
  jti: string;
  user: { id: string; email: string; username: string };
  /** The user's roles, when the server issues them (empty otherwise). */
  roles: string[];
  /** The DPoP key the token is bound to: it is accepted only with a proof by that key. */
  cnf?: { jkt: string };
}

export interface TollgateOptions {
  /** Tollgate's base URL, e.g. `https://auth.example.com`. */
  url: string;
  /** `TOLLGATE_ISSUER` (default `tollgate`). */
  issuer?: string;
  /** `TOLLGATE_AUDIENCE` (default `tollgate-api`). */
  audience?: string;
  /** `TOLLGATE_JWT_ALG` (default `EdDSA`). HS256 publishes no keys and is not supported here. */
  algorithm?: 'EdDSA' | 'ES256' | 'RS256';
  /** Allowance for clock differences on `exp` and `nbf`, at most 5 (default 0). */
  leewaySeconds?: number;
  /** How often the revocation feed is read (default 1000). */
  pollMs?: number;
  /**
   * The longest `TOLLGATE_ACCESS_TTL` to expect: revocations are kept this long (and as long as
   * the longest-lived token seen). Default one day, Tollgate's maximum, so that no setting of
   * the server outlives them; set it to the server's (15 min by default) to hold fewer.
   */
  accessLifetimeMs?: number;
  /**
   * Answer 503 while the feed was last read longer ago than this. Default: none, tokens keep
   * working while Tollgate is unreachable (the staleness is reported). Tokens are always
   * refused until the feed has been read once.
   */
  maxRevocationStalenessMs?: number;
  /** Timeout of each request to Tollgate (default 5000). */
  timeoutMs?: number;
  /** Where warnings go (default `console`). */
  logger?: Pick<Console, 'warn' | 'info'>;
  /** How DPoP proofs of bound tokens are checked (default: as Tollgate checks them). */
  dpop?: DpopOptions;
}

const rejected = (reason: string) => new TokenRejected(reason);

/**
 * Verifies Tollgate's access tokens exactly as Tollgate does, and refuses those of sessions
 * revoked within the last access lifetime. Keys and revocations are fetched in the
 * background; nothing is fetched before the constructor returns, so an API starts while
 * Tollgate is down and verifies once it is back.
 */
export class TollgateVerifier {
  private readonly keys: RemoteKeys;
  private readonly feed: RevocationFeed;
  private readonly verified = new Map<string, AccessClaims>();
  private readonly options: Required<Omit<TollgateOptions, 'maxRevocationStalenessMs' | 'dpop'>> &
    Pick<TollgateOptions, 'maxRevocationStalenessMs'>;
  /** Checks the proofs of tokens bound to a key, remembering used ones in `dpop.replays`. */
  readonly dpop: DpopChecker;
  private longestLifetimeMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private reportedStale = false;
  private following: Promise<void> | null = null;

  constructor(options: TollgateOptions) {
    const base = options.url.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(base)) throw new Error('url must start with http:// or https://');
    const algorithm = options.algorithm ?? 'EdDSA';
    if (!['EdDSA', 'ES256', 'RS256'].includes(algorithm)) {
      throw new Error('algorithm must be EdDSA, ES256 or RS256 (HS256 publishes no keys)');
    }
    const pollMs = options.pollMs ?? 1000;
    if (!(pollMs >= 10)) throw new Error('pollMs must be at least 10');
    const leeway = options.leewaySeconds ?? 0;
    if (!(leeway >= 0 && leeway <= MAX_LEEWAY_SECONDS)) {
      throw new Error(`leewaySeconds must be between 0 and ${MAX_LEEWAY_SECONDS}`);
    }
    this.options = {
      url: base,
      issuer: options.issuer ?? 'tollgate',
      audience: options.audience ?? 'tollgate-api',
      algorithm,
      leewaySeconds: leeway,
      pollMs,
      accessLifetimeMs: options.accessLifetimeMs ?? 24 * 3600_000,
      maxRevocationStalenessMs: options.maxRevocationStalenessMs,
      timeoutMs: options.timeoutMs ?? 5000,
      logger: options.logger ?? console,
    };
    this.dpop = new DpopChecker(options.dpop);
    this.keys = new RemoteKeys(`${base}/.well-known/jwks.json`, this.options.timeoutMs, () =>
      this.verified.clear(),
    );
    this.feed = new RevocationFeed(`${base}/api/revocations`, this.options.timeoutMs);
    this.timer = setInterval(() => void this.follow(), this.options.pollMs);
    // A verifier alone does not keep the process alive.
    this.timer.unref();
    void this.follow();
  }

  /** Milliseconds since every revocation had been read; `null` before the first time. */
  revocationStaleness(): number | null {
    return this.feed.staleness();
  }

  /** The number of revoked sessions held. */
  revokedSessions(): number {
    return this.feed.size;
  }

  /** Stops following Tollgate. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round of keeping keys and revocations current; rounds never overlap. */
  follow(): Promise<void> {
    this.following ??= this.followOnce().finally(() => {
      this.following = null;
    });
    return this.following;
  }

  private async followOnce(): Promise<void> {
    if (this.keys.due()) await this.keys.fetch().catch(() => undefined);
    await this.feed.catchUp().catch(() => undefined);
    const keepFor =
      Math.max(this.options.accessLifetimeMs, this.longestLifetimeMs) + CLOCK_MARGIN_MS;
    this.feed.prune(Date.now() - keepFor);
    const staleness = this.feed.staleness();
    const stale = staleness === null || staleness > Math.max(5 * this.options.pollMs, 5000);
    if (stale && !this.reportedStale) {
      this.options.logger.warn(
        `tollgate-verify: the revocation feed at ${this.options.url} cannot be read: ` +
          'tokens of sessions revoked meanwhile are not refused',
      );
    } else if (!stale && this.reportedStale) {
      this.options.logger.info(`tollgate-verify: the revocation feed is read again`);
    }
    this.reportedStale = stale;
  }

  /**
   * The claims of `token` if it is a valid access token of a session not revoked. Throws
   * `TokenRejected` (answer 401) or `Unavailable` (answer 503). A token bound to a DPoP key
   * (`cnf.jkt`) is returned like any other: it must not be accepted without a proof by that
   * key, which the `tollgate()` middleware checks.
   */
  async verify(token: string): Promise<AccessClaims> {
    const claims = this.verified.get(token) ?? (await this.verifySignature(token));
    if (claims.exp + this.options.leewaySeconds <= Date.now() / 1000) {
      this.verified.delete(token);
      throw rejected('expired');
    }
    if (this.feed.has(claims.sid)) throw rejected('session revoked');
    const staleness = this.feed.staleness();
    const max = this.options.maxRevocationStalenessMs;
    if (staleness === null || (max !== undefined && staleness > max)) {
      throw new Unavailable('the revocation feed has not been read recently enough');
    }
    return claims;
  }

  private async verifySignature(token: string): Promise<AccessClaims> {
    const { algorithm, issuer, audience, leewaySeconds } = this.options;
    if (token.length > MAX_TOKEN_LENGTH) throw rejected('oversized token');
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw rejected('unreadable header');
    }
    if (header.alg !== algorithm) throw rejected('unexpected algorithm');
    if (header.typ !== ACCESS_TYP) throw rejected('wrong token type');
    if ('jwk' in header || 'jku' in header || 'x5u' in header || 'x5c' in header) {
      throw rejected('header-supplied key');
    }
    if (typeof header.kid !== 'string') throw rejected('no key id');
    const keySet = await this.keys.forKid(header.kid);
    // Read before verifying: keys that change meanwhile leave this token uncached.
    const generation = this.keys.generation;
    if (keySet === null) throw new Unavailable('the signing keys could not be fetched');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        algorithms: [algorithm],
        issuer,
        audience,
        typ: ACCESS_TYP,
        clockTolerance: leewaySeconds,
        requiredClaims: ['exp', 'iss', 'aud', 'sub'],
      }));
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'malformed';
      if (code === 'ERR_JWKS_NO_MATCHING_KEY') {
        if (this.keys.lastFetchFailed()) {
          throw new Unavailable('the signing keys could not be fetched');
        }
        throw rejected('unknown key id');
      }
      throw rejected(code);
    }
    const claims = accessClaims(payload);
    this.longestLifetimeMs = Math.max(this.longestLifetimeMs, (claims.exp - claims.iat) * 1000);
    if (generation !== this.keys.generation) return claims;
    if (this.verified.size >= CACHE_ENTRIES) {
      // The oldest entry: a Map iterates in insertion order.
      const oldest = this.verified.keys().next();
      if (!oldest.done) this.verified.delete(oldest.value);
    }
    this.verified.set(token, claims);
    return claims;
  }
}

/** The typed claims, or a rejection when the token does not have their shape. */
function accessClaims(payload: JWTPayload): AccessClaims {
  const p = payload as Record<string, unknown>;
  const user = p['user'] as Record<string, unknown> | undefined;
  const roles = p['roles'] ?? [];
  const strings = [p['iss'], p['aud'], p['sub'], p['sid'], p['jti']];
  const valid =
    strings.every((value) => typeof value === 'string') &&
    typeof p['iat'] === 'number' &&
    typeof p['exp'] === 'number' &&
    typeof user === 'object' &&
    user !== null &&
    ['id', 'email', 'username'].every((field) => typeof user[field] === 'string') &&
    Array.isArray(roles) &&
    roles.every((role) => typeof role === 'string');
  const cnf = p['cnf'] as Record<string, unknown> | undefined;
  const validCnf =
    cnf === undefined || (typeof cnf === 'object' && cnf !== null && typeof cnf['jkt'] === 'string');
  if (!valid || !validCnf) throw rejected('malformed claims');
  return {
    iss: p['iss'] as string,
    aud: p['aud'] as string,
    sub: p['sub'] as string,
    sid: p['sid'] as string,
    iat: p['iat'] as number,
    exp: p['exp'] as number,
    jti: p['jti'] as string,
    user: {
      id: user!['id'] as string,
      email: user!['email'] as string,
      username: user!['username'] as string,
    },
    roles: roles as string[],
    ...(cnf === undefined ? {} : { cnf: { jkt: cnf['jkt'] as string } }),
  };
}
