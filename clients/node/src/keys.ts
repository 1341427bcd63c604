import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/** How long the keys are kept when the JWKS answer says nothing about caching. */
const DEFAULT_MAX_AGE_MS = 300_000;
/** Bounds on the answer's `max-age`: not refetched more often, never kept longer. */
const MIN_MAX_AGE_MS = 1_000;
const MAX_MAX_AGE_MS = 24 * 3600_000;
/** At most one fetch per second because of an unknown `kid`. */
const UNKNOWN_KID_INTERVAL_MS = 1_000;

/** How long a JWKS answer may be kept, from its `Cache-Control`. */
export function maxAgeMs(cacheControl: string | null): number {
  if (cacheControl === null) return DEFAULT_MAX_AGE_MS;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.includes('no-cache') || directives.includes('no-store')) return MIN_MAX_AGE_MS;
  const maxAge = directives.find((d) => d.startsWith('max-age='));
  const seconds = maxAge === undefined ? NaN : Number(maxAge.slice('max-age='.length));
  if (!Number.isFinite(seconds) || seconds < 0) return DEFAULT_MAX_AGE_MS;
  return Math.min(Math.max(seconds * 1000, MIN_MAX_AGE_MS), MAX_MAX_AGE_MS);
}

/**
 * Tollgate's public keys: fetched from the JWKS, kept as its `Cache-Control` allows, fetched
 * again on an unknown `kid` (at most once a second), and kept while Tollgate is unreachable.
 */
export class RemoteKeys {
  private keySet: JWTVerifyGetKey | null = null;
  private kids = new Set<string>();
  /** Bumped whenever the key ids change: a verification that began before does not cache. */
  generation = 0;
  private refreshAt = 0;
  private lastUnknownKidFetch: { at: number; ok: boolean } | null = null;
  private inFlight: Promise<void> | null = null;

  /** `onChange` runs when the key ids change: tokens verified before are verified again. */
  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
    private readonly onChange: () => void,
  ) {}

  /** Whether the keys are older than their answer allowed (or were never fetched). */
  due(): boolean {
    return Date.now() >= this.refreshAt;
  }

  /** Fetches the keys now; concurrent callers share one fetch. */
  fetch(): Promise<void> {
    this.inFlight ??= this.fetchOnce().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async fetchOnce(): Promise<void> {
    const response = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
    if (!response.ok) throw new Error(`${this.url} answered ${response.status}`);
    const set = (await response.json()) as JSONWebKeySet;
    if (!Array.isArray(set?.keys)) throw new Error(`${this.url} gave no key set`);
    const kids = new Set(set.keys.flatMap((key) => (typeof key.kid === 'string' ? [key.kid] : [])));
    // An answer without a usable key keeps the keys held: it must not make every token fail.
    if (kids.size === 0) throw new Error(`${this.url} gave no key with a kid`);
    const changed = kids.size !== this.kids.size || [...kids].some((kid) => !this.kids.has(kid));
    this.keySet = createLocalJWKSet(set);
    this.kids = kids;
    if (changed) {
      this.generation += 1;
      this.onChange();
    }
    this.refreshAt = Date.now() + maxAgeMs(response.headers.get('cache-control'));
  }

  /**
   * The key set to verify a token signed with `kid`: fetched first when the kid is not held,
   * at most once a second. `null` when no keys could ever be fetched.
   */
  async forKid(kid: string): Promise<JWTVerifyGetKey | null> {
    if (this.kids.has(kid)) return this.keySet;
    const last = this.lastUnknownKidFetch;
    if (last === null || Date.now() - last.at >= UNKNOWN_KID_INTERVAL_MS) {
      const ok = await this.fetch().then(
        () => true,
        () => false,
      );
      this.lastUnknownKidFetch = { at: Date.now(), ok };
    }
    return this.keySet;
  }

  /** Whether the last fetch for an unknown kid failed: a kid not held is "not now". */
  lastFetchFailed(): boolean {
    return this.lastUnknownKidFetch?.ok === false || this.keySet === null;
  }
}
