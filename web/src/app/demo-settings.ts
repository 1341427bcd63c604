import {
  TollgateFeature,
  withCookieTransport,
  withDpop,
  withIdleTimeout,
  withLocalStorageTransport,
  withRefreshAhead,
} from 'tollgate-angular';

/** How the demo uses Tollgate. */
export interface DemoSettings {
  /** The API's origin; empty for this page's. */
  apiUrl: string;
  transport: 'cookie' | 'localStorage';
  refreshAhead: boolean;
  /** Sign out after this many seconds without activity. */
  idleSeconds: number;
  /** Bind the session to this browser's DPoP key. */
  dpop: boolean;
}

/**
 * The demo's settings. They can be changed per browser without a rebuild through localStorage
 * keys (the end-to-end tests use them): `tollgate.api` (the API's origin), `tollgate.transport`
 * (`cookie` | `localStorage`), `tollgate.refreshAhead` (`off`), `tollgate.idleSeconds`
 * (30 minutes by default) and `tollgate.dpop` (`off`).
 */
export function demoSettings(storage: Pick<Storage, 'getItem'> | undefined): DemoSettings {
  return {
    apiUrl: storage?.getItem('tollgate.api') ?? '',
    transport: storage?.getItem('tollgate.transport') === 'localStorage' ? 'localStorage' : 'cookie',
    refreshAhead: storage?.getItem('tollgate.refreshAhead') !== 'off',
    idleSeconds: Number(storage?.getItem('tollgate.idleSeconds')) || 30 * 60,
    dpop: storage?.getItem('tollgate.dpop') !== 'off',
  };
}

/** The library's features for these settings: warned a minute (at most half the time) before. */
export function tollgateFeatures(settings: DemoSettings): TollgateFeature[] {
  const warningSeconds = Math.min(60, settings.idleSeconds / 2);
  return [
    settings.transport === 'localStorage' ? withLocalStorageTransport() : withCookieTransport(),
    withIdleTimeout({ idle: settings.idleSeconds * 1000, warning: warningSeconds * 1000 }),
    ...(settings.refreshAhead ? [withRefreshAhead()] : []),
    ...(settings.dpop ? [withDpop()] : []),
  ];
}
