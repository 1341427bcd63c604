import { InjectionToken } from '@angular/core';

/** Where the refresh token lives: an HttpOnly cookie (recommended) or localStorage (legacy). */
export type RefreshTransport = 'cookie' | 'localStorage';

export interface AuthConfig {
  /** Origin of the Tollgate API, such as `http://localhost:8000`; empty for this page's origin. */
  apiBase: string;
  transport: RefreshTransport;
  /** Refresh this long before the access token expires (at most a fifth of its lifetime). */
  refreshMarginMs: number;
  /** Refresh ahead of expiry; when off, the first 401 triggers the refresh. */
  refreshAhead: boolean;
}

export const DEFAULT_AUTH_CONFIG: AuthConfig = {
  apiBase: '',
  transport: 'cookie',
  refreshMarginMs: 30_000,
  refreshAhead: true,
};

/**
 * Settings can be overridden per browser without a rebuild, through localStorage keys
 * `tollgate.transport` (`cookie` | `localStorage`), `tollgate.refreshAhead` (`off`) and
 * `tollgate.api` (an origin).
 */
export function authConfigFrom(storage: Pick<Storage, 'getItem'> | undefined): AuthConfig {
  const transport = storage?.getItem('tollgate.transport');
  return {
    ...DEFAULT_AUTH_CONFIG,
    apiBase: storage?.getItem('tollgate.api') ?? DEFAULT_AUTH_CONFIG.apiBase,
    transport: transport === 'localStorage' ? 'localStorage' : 'cookie',
    refreshAhead: storage?.getItem('tollgate.refreshAhead') !== 'off',
  };
}

export const AUTH_CONFIG = new InjectionToken<AuthConfig>('AUTH_CONFIG', {
  providedIn: 'root',
  factory: () => authConfigFrom(globalThis.localStorage),
});
