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
  /** Which requests get the access token; `null`: the API's origin, paths under `/api/`. */
  allowedUrls: readonly (string | RegExp)[] | null;
  /** Sign out after this much inactivity in every tab, warning this long before. */
  idle: { idleMs: number; warningMs: number } | null;
  /** Where signed-out users are sent. */
  loginRoute: string;
}

export const TOLLGATE_CONFIG = new InjectionToken<ResolvedConfig>('TOLLGATE_CONFIG');

/** A `with…()` setting for `provideTollgate`. */
export interface TollgateFeature {
  readonly apply: (config: ResolvedConfig) => ResolvedConfig;
}

export function resolveConfig(config: TollgateConfig, features: readonly TollgateFeature[]): ResolvedConfig {
  const defaults: ResolvedConfig = {
    apiUrl: config.apiUrl.replace(/\/+$/, ''),
    transport: 'cookie',
    refreshAheadMs: null,
    allowedUrls: null,
    idle: null,
    loginRoute: '/login',
  };
  return features.reduce((resolved, feature) => feature.apply(resolved), defaults);
}

/** The refresh token in an HttpOnly cookie, out of reach of scripts (the default). */
export function withCookieTransport(): TollgateFeature {
  return { apply: (config) => ({ ...config, transport: 'cookie' }) };
}

/**
 * The refresh token in localStorage, for APIs on another site that cannot set cookies for
 * this one. Any script on the page can read it: prefer the cookie.
 */
export function withLocalStorageTransport(): TollgateFeature {
  return { apply: (config) => ({ ...config, transport: 'localStorage' }) };
}

/**
 * Refreshes ahead of expiry (by `marginMs`, at most a fifth of the token's lifetime), when a
 * hidden tab is shown again and when the browser comes back online, so that requests rarely
 * meet a 401.
 */
export function withRefreshAhead(options: { marginMs?: number } = {}): TollgateFeature {
  const margin = options.marginMs ?? 30_000;
  return { apply: (config) => ({ ...config, refreshAheadMs: margin }) };
}

/**
 * Which requests get the access token: URLs starting with one of the strings, or matching one
 * of the expressions. Default: the API's origin, paths under `/api/`.
 */
export function withAllowedUrls(urls: readonly (string | RegExp)[]): TollgateFeature {
  return { apply: (config) => ({ ...config, allowedUrls: [...urls] }) };
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
    apply: (config) => ({ ...config, idle: { idleMs: options.idle, warningMs: options.warning } }),
  };
}

/** Where signed-out users are sent (default `/login`). */
export function withLoginRoute(path: string): TollgateFeature {
  return { apply: (config) => ({ ...config, loginRoute: path }) };
}
