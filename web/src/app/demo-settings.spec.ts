import { TollgateFeature } from 'tollgate-angular';

import { demoSettings } from './demo-settings';

function storage(entries: Record<string, string>): Pick<Storage, 'getItem'> {
  return { getItem: (key) => entries[key] ?? null };
}

/** What the features set, applied to an empty configuration. */
function applied(features: TollgateFeature[]) {
  const empty = { apiUrl: '', transport: 'cookie', refreshAheadMs: null, allowedUrls: null, idle: null, loginRoute: '/login' } as const;
  return features.reduce((config, feature) => feature.apply(config), { ...empty } as Parameters<TollgateFeature['apply']>[0]);
}

describe('demoSettings', () => {
  it('defaults to this origin, the cookie, refresh ahead and a 30-minute idle timeout', () => {
    const settings = demoSettings(storage({}));
    expect(settings.apiUrl).toBe('');
    expect(applied(settings.features)).toMatchObject({
      transport: 'cookie',
      refreshAheadMs: 30_000,
      idle: { idleMs: 1_800_000, warningMs: 60_000 },
    });
  });

  it('follows the overrides a browser sets', () => {
    const settings = demoSettings(
      storage({
        'tollgate.api': 'http://localhost:8000',
        'tollgate.refreshAhead': 'off',
        'tollgate.transport': 'localStorage',
        'tollgate.idleSeconds': '6',
      }),
    );
    expect(settings.apiUrl).toBe('http://localhost:8000');
    expect(applied(settings.features)).toMatchObject({
      transport: 'localStorage',
      refreshAheadMs: null,
      idle: { idleMs: 6_000, warningMs: 3_000 },
    });
  });
});
