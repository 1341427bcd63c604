import { InjectionToken } from '@angular/core';

/** Where the refresh token lives: an HttpOnly cookie (recommended) or localStorage. */
export type RefreshTransport = 'cookie' | 'localStorage';

/** What `provideTollgate` needs. */
export interface TollgateConfig {
  /** The Tollgate server's origin, such as `https://auth.example.com`; `''` for this page's. */
  apiUrl: string;
}

/** Every setting, after the features have applied theirs. */
export interface ResolvedConfig {
  apiUrl: string;
  transport: RefreshTransport;
  /** Refresh this long before the access token expires; `null`: on the first 401 only. */
  refreshAheadMs: number | null;
  /** Requests that get the access token besides the API's own (its origin, under `/api/`). */
  allowedUrls: readonly (string | RegExp)[];
  /** Sign out after this much inactivity in every tab, warning this long before. */
  idle: { idleMs: number; warningMs: number } | null;
  /** Where signed-out users are sent. */
  loginRoute: string;
  /** Bind the session to this browser's DPoP key. */
  dpop: boolean;
}

export const TOLLGATE_CONFIG = new InjectionToken<ResolvedConfig>('TOLLGATE_CONFIG');

/** A `with…()` setting for `provideTollgate`; what it holds is internal. */
export interface TollgateFeature {
  readonly ɵapply: (config: ResolvedConfig) => ResolvedConfig;
}

export function resolveConfig(config: TollgateConfig, features: readonly TollgateFeature[]): ResolvedConfig {
  const defaults: ResolvedConfig = {
    apiUrl: config.apiUrl.replace(/\/+$/, ''),
    transport: 'cookie',
    refreshAheadMs: null,
    allowedUrls: [],
    idle: null,
    loginRoute: '/login',
    dpop: false,
  };
  return features.reduce((resolved, feature) => feature.ɵapply(resolved), defaults);
}

/** The refresh token in an HttpOnly cookie, out of reach of scripts (the default). */
export function withCookieTransport(): TollgateFeature {
  return { ɵapply: (config) => ({ ...config, transport: 'cookie' }) };
}

/**
 * The refresh token in localStorage, for APIs on another site that cannot set cookies for
 * this one. Any script on the page can read it: prefer the cookie.
 */
export function withLocalStorageTransport(): TollgateFeature {
  return { ɵapply: (config) => ({ ...config, transport: 'localStorage' }) };
}

/**
 * Refreshes ahead of expiry (by `marginMs`, at most a fifth of the token's lifetime), when a
 * hidden tab is shown again and when the browser comes back online, so that requests rarely
 * meet a 401.
 */
export function withRefreshAhead(options: { marginMs?: number } = {}): TollgateFeature {
  const margin = options.marginMs ?? 30_000;
  return { ɵapply: (config) => ({ ...config, refreshAheadMs: margin }) };
}

/**
 * More requests that get the access token, besides the API's own (its origin, paths under
 * `/api/`): absolute URLs they start with (`https://api.example.com/v1/`), or regular
 * expressions over the whole URL, anchored with `^` (an unanchored one could match a URL
 * elsewhere that merely contains it).
 */
export function withAllowedUrls(urls: readonly (string | RegExp)[]): TollgateFeature {
  const allowed = urls.map((url) => {
    if (typeof url === 'string') {
      // Normalised, so that `https://api.example.com` becomes `…com/` and cannot match
      // `https://api.example.com.evil.example`.
      const parsed = URL.canParse(url) ? new URL(url) : null;
      if (parsed === null || !['http:', 'https:'].includes(parsed.protocol)) {
        throw new Error(`withAllowedUrls: ${url} is not an absolute http(s) URL`);
      }
      return parsed.href;
    }
    if (!url.source.startsWith('^') || url.global || url.sticky) {
      throw new Error(`withAllowedUrls: ${url} must start with ^ and have no g or y flag`);
    }
    return url;
  });
  return { ɵapply: (config) => ({ ...config, allowedUrls: [...config.allowedUrls, ...allowed] }) };
}

/**
 * Signs out after `idle` ms without activity in any tab, with a warning `warning` ms before
 * (`TollgateIdle.warning()`), which the user can dismiss by staying.
 */
export function withIdleTimeout(options: { idle: number; warning: number }): TollgateFeature {
  if (!(options.idle > 0 && options.warning >= 0 && options.warning < options.idle)) {
    throw new Error('withIdleTimeout: idle must be positive and warning shorter than idle');
  }
  return {
    ɵapply: (config) => ({ ...config, idle: { idleMs: options.idle, warningMs: options.warning } }),
  };
}

/**
 * DPoP (RFC 9449): the session is bound to a key this browser keeps and cannot give away (a
 * non-extractable ES256 key in IndexedDB, one per browser profile). Sign-in, refresh and every
 * request that gets the access token carry a proof signed with it, so stolen tokens are useless
 * elsewhere. A server nonce challenge is answered by signing again, once.
 */
export function withDpop(): TollgateFeature {
  return { ɵapply: (config) => ({ ...config, dpop: true }) };
}

/** Where signed-out users are sent (default `/login`). */
export function withLoginRoute(path: string): TollgateFeature {
  return { ɵapply: (config) => ({ ...config, loginRoute: path }) };
}
