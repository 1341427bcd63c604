import { EnvironmentProviders, inject, makeEnvironmentProviders, provideAppInitializer } from '@angular/core';

import { resolveConfig, TOLLGATE_CONFIG, TollgateConfig, TollgateFeature } from './config';
import { Session } from './session';
import { TollgateIdle } from './tollgate-idle';

/**
 * Tollgate in an Angular application: `provideTollgate({ apiUrl }, ...features)` beside
 * `provideHttpClient(withInterceptors([tollgateInterceptor]))`. The session is restored before
 * the first route renders.
 */
export function provideTollgate(config: TollgateConfig, ...features: TollgateFeature[]): EnvironmentProviders {
  return makeEnvironmentProviders([
    { provide: TOLLGATE_CONFIG, useValue: resolveConfig(config, features) },
    provideAppInitializer(async () => {
      const idle = inject(TollgateIdle);
      await inject(Session).restore();
      idle.start();
    }),
  ]);
}
