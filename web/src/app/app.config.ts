import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { ApplicationConfig, provideBrowserGlobalErrorListeners } from '@angular/core';
import { provideRouter, withComponentInputBinding } from '@angular/router';
import { provideTollgate, tollgateInterceptor } from 'tollgate-angular';

import { routes } from './app.routes';
import { demoSettings, tollgateFeatures } from './demo-settings';

const settings = demoSettings(globalThis.localStorage);

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideRouter(routes, withComponentInputBinding()),
    provideHttpClient(withInterceptors([tollgateInterceptor])),
    provideTollgate({ apiUrl: settings.apiUrl }, ...tollgateFeatures(settings)),
  ],
};
