import { createHash } from 'node:crypto';

import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';

import { Unavailable } from './errors.js';

/** The `typ` header of a proof. */
export const PROOF_TYP = 'dpop+jwt';
/** Longer proofs are refused before any parsing. */
export const MAX_PROOF_LENGTH = 4 * 1024;
const MAX_JTI_LENGTH = 256;
/**
 * Proofs remembered at once (about 95 bytes each, measured: 90 MiB), each until it is stale
 * (about a minute): past about 16,000 proofs a second, sustained, new ones get 503.
 */
const REPLAY_CAPACITY = 1_000_000;

/** The DPoP proof is missing or refused: answer 401 `invalid_dpop_proof`. */
export class ProofRejected extends Error {
  constructor(readonly reason: string) {
    super(`DPoP proof rejected: ${reason}`);
    this.name = 'ProofRejected';
  }
}

export interface DpopOptions {
  /** The algorithms proofs may use (default ES256 and EdDSA, as Tollgate). */
  algorithms?: string[];
  /** How old a proof may be, in seconds (default 60). */
  maxAgeSeconds?: number;
  /**
   * This API's origin as clients call it (`https://api.example.com`), which proofs name in
   * `htu`; needed behind a proxy. Default: the request's own scheme and `Host`.
   */
  origin?: string;
  /** Refuse tokens that are not bound to a key (default: accept them as bearer tokens). */
  required?: boolean;
  /**
   * Where used proofs are remembered: this process by default; a store every instance of the
   * API shares (Redis, a database) so that a proof used at one is a replay at the others.
   * Checkers sharing one must have the same `maxAgeSeconds`.
   */
  replays?: Replays;
}

/** Remembers the proofs already used, so that each is used once. */
export interface Replays {
  /**
   * Whether `key` is used for the first time at `now`, remembering it until `forgetAt`: the
   * second from which the proof is stale (its `iat` plus `maxAgeSeconds`, plus one). Times are
   * Unix seconds, `now` with a fraction. `key` is the base64url SHA-256 of `{jkt}.{jti}`, the
   * hash the Rust crate's `replay_key` gives, so one store can serve both. Telling and
   * remembering must be one atomic step (`SET NX` in Redis, `INSERT … ON CONFLICT` in SQL). A
   * store shared by instances should keep the key longer by as much as their clocks may
   * differ. What it throws answers 503, never 401.
   */
  firstUse(key: string, forgetAt: number, now: number): boolean | Promise<boolean>;
}

/** The request a proof must be for. */
export interface ProofTarget {
  method: string;
  /** The URI the client called, as it sees it. */
  uri: string;
  /** The access token sent with the proof: the proof's `ath` must be its hash. */
  accessToken?: string;
}

/** `ath`: the base64url SHA-256 of an access token (RFC 9449 §4.2). */
export function tokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

/**
 * A URI as `htu` compares it: without query and fragment, scheme and host in lower case, no
 * default port, `/` for an empty path; `null` when it is not an absolute http(s) URI.
 */
export function normalizedUri(uri: string): string | null {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(uri);
  if (match === null) return null;
  const scheme = match[1]!.toLowerCase();
  const defaultPort = scheme === 'http' ? ':80' : scheme === 'https' ? ':443' : null;
  let authority = match[2]!.toLowerCase();
  if (defaultPort === null || authority === '' || authority.includes('@')) return null;
  if (authority.endsWith(defaultPort)) authority = authority.slice(0, -defaultPort.length);
  return `${scheme}://${authority}${match[3] || '/'}`;
}

/**
 * Checks DPoP proofs (RFC 9449 §4.3) as Tollgate does, and remembers each `jti` for the
 * proof's window so that it is used once.
 */
export class DpopChecker {
  readonly origin: string | undefined;
  readonly required: boolean;
  private readonly algorithms: string[];
  private readonly maxAgeSeconds: number;
  /** How far ahead of our clock a proof may be: devices' clocks are often off by seconds. */
  private readonly leewaySeconds = 60;
  private readonly replays: Replays;

  constructor(options: DpopOptions = {}) {
    this.algorithms = options.algorithms ?? ['ES256', 'EdDSA'];
    if (this.algorithms.some((alg) => alg === 'none' || alg.startsWith('HS'))) {
      throw new Error('DPoP algorithms must be asymmetric');
    }
    this.maxAgeSeconds = options.maxAgeSeconds ?? 60;
    // NaN (an unset environment variable through Number()) would lift the age bound.
    if (!Number.isFinite(this.maxAgeSeconds) || this.maxAgeSeconds < 0) {
      throw new Error('DPoP maxAgeSeconds must be a finite number of seconds');
    }
    this.origin = options.origin?.replace(/\/+$/, '');
    this.required = options.required ?? false;
    this.replays = options.replays ?? new ReplayCache();
  }

  /** The thumbprint of the key of a valid proof for `target`; throws `ProofRejected`. */
  async check(proof: string, target: ProofTarget, now = Date.now() / 1000): Promise<string> {
    if (proof.length > MAX_PROOF_LENGTH) throw new ProofRejected('oversized proof');
    let header;
    try {
      header = decodeProtectedHeader(proof);
    } catch {
      throw new ProofRejected('malformed proof');
    }
    if (header.typ !== PROOF_TYP) throw new ProofRejected('wrong proof type');
    if (typeof header.alg !== 'string' || !this.algorithms.includes(header.alg)) {
      throw new ProofRejected('algorithm not allowed');
    }
    const jwk = header.jwk as JWK | undefined;
    if (typeof jwk !== 'object' || jwk === null) throw new ProofRejected('no public key');
    let payload: Record<string, unknown>;
    try {
      // EmbeddedJWK refuses a key with private members (`d`, `k`…): only a public key signs.
      // A proof that carries `exp` or `nbf` is held to them, with the leeway `iat` has.
      ({ payload } = await jwtVerify(proof, EmbeddedJWK, {
        algorithms: this.algorithms,
        typ: PROOF_TYP,
        currentDate: new Date(now * 1000),
        clockTolerance: this.leewaySeconds,
      }));
    } catch {
      throw new ProofRejected('bad proof key, signature or claims');
    }
    const { jti, htm, htu, iat, ath } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
      throw new ProofRejected('malformed jti');
    }
    if (htm !== target.method) throw new ProofRejected('wrong method (htm)');
    const expected = normalizedUri(target.uri);
    if (typeof htu !== 'string' || normalizedUri(htu) === null || normalizedUri(htu) !== expected) {
      throw new ProofRejected('wrong URI (htu)');
    }
    if (!Number.isInteger(iat) || (iat as number) < now - this.maxAgeSeconds || (iat as number) > now + this.leewaySeconds) {
      throw new ProofRejected('stale iat');
    }
    if (target.accessToken !== undefined && ath !== tokenHash(target.accessToken)) {
      throw new ProofRejected('wrong access token hash (ath)');
    }
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    // A jti is only unique for its key; hashed, so that what is stored has one size.
    const key = createHash('sha256').update(`${jkt}.${jti}`).digest('base64url');
    // Remembered until the proof is stale: from then on its age refuses it.
    const forgetAt = (iat as number) + this.maxAgeSeconds + 1;
    if (!(await this.replays.firstUse(key, forgetAt, now))) {
      throw new ProofRejected('proof replayed (jti)');
    }
    return jkt;
  }
}

/** The proofs used within their window, in this process; when full, new ones get 503. */
export class ReplayCache implements Replays {
  private readonly keys = new Set<string>();
  /**
   * The same keys by the second they are forgotten at: proofs dated up to a minute ahead make
   * those times differ from the order of arrival.
   */
  private readonly bySecond = new Map<number, string[]>();
  /**
   * The latest `now` seen: every key due by then is forgotten. A check whose clock was read
   * earlier may come after it, and a key due by then cannot be told from a forgotten one.
   */
  private forgottenUntil = -Infinity;
  /** The earliest second a bucket is due at: until then, there is nothing to look at. */
  private nextDue = Infinity;

  constructor(private readonly capacity = REPLAY_CAPACITY) {}

  /** How many proofs are remembered. */
  get size(): number {
    return this.keys.size;
  }

  /**
   * Whether `key` is new, remembering it until `forgetAt`. False also for a key due by the
   * latest `now` seen (it may have been forgotten). Times are Unix seconds.
   */
  firstUse(key: string, forgetAt: number, now: number): boolean {
    if (!Number.isFinite(forgetAt) || !Number.isFinite(now)) {
      throw new TypeError('replay times must be finite numbers of seconds');
    }
    this.forget(now);
    if (forgetAt <= this.forgottenUntil || this.keys.has(key)) return false;
    if (this.keys.size >= this.capacity) {
      throw new Unavailable('too many DPoP proofs in the window to remember another');
    }
    this.keys.add(key);
    // Bucketed by the next whole second: kept up to a second longer, never less.
    const second = Math.ceil(forgetAt);
    const bucket = this.bySecond.get(second);
    if (bucket === undefined) this.bySecond.set(second, [key]);
    else bucket.push(key);
    this.nextDue = Math.min(this.nextDue, second);
    return true;
  }

  /** Forgets every key due by `now`, or by a later `now` seen before. */
  private forget(now: number): void {
    this.forgottenUntil = Math.max(this.forgottenUntil, now);
    if (this.forgottenUntil < this.nextDue) return;
    this.nextDue = Infinity;
    for (const [second, keys] of this.bySecond) {
      if (second > this.forgottenUntil) {
        this.nextDue = Math.min(this.nextDue, second);
        continue;
      }
      for (const key of keys) this.keys.delete(key);
      this.bySecond.delete(second);
    }
  }
}
