import {
  TollgateFeature,
  withCookieTransport,
  withIdleTimeout,
  withLocalStorageTransport,
  withRefreshAhead,
} from 'tollgate-angular';

/**
 * The demo's Tollgate features. They can be changed per browser without a rebuild through
 * localStorage keys (the end-to-end tests use them): `tollgate.api` (the API's origin),
 * `tollgate.transport` (`cookie` | `localStorage`), `tollgate.refreshAhead` (`off`) and
 * `tollgate.idleSeconds` (sign out after that much inactivity; 30 minutes by default).
 */
export function demoSettings(storage: Pick<Storage, 'getItem'> | undefined): {
  apiUrl: string;
  features: TollgateFeature[];
} {
  const idleSeconds = Number(storage?.getItem('tollgate.idleSeconds')) || 30 * 60;
  const features = [
    storage?.getItem('tollgate.transport') === 'localStorage' ? withLocalStorageTransport() : withCookieTransport(),
    withIdleTimeout({ idle: idleSeconds * 1000, warning: Math.min(60, idleSeconds / 2) * 1000 }),
  ];
  if (storage?.getItem('tollgate.refreshAhead') !== 'off') {
    features.push(withRefreshAhead());
  }
  return { apiUrl: storage?.getItem('tollgate.api') ?? '', features };
}
