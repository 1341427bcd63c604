/*
 * tollgate-angular: sign-in, refresh and sign-out against a Tollgate server for Angular 21
 * standalone applications.
 */
export {
  withAllowedUrls,
  withCookieTransport,
  withDpop,
  withIdleTimeout,
  withLocalStorageTransport,
  withLoginRoute,
  withRefreshAhead,
} from './lib/config';
export type { RefreshTransport, TollgateConfig, TollgateFeature } from './lib/config';
export { authGuard, roleGuard } from './lib/guards';
export type {
  SignOutReason,
  TollgateEvent,
  TollgateRegistration,
  TollgateServerSettings,
  TollgateSession,
  TollgateUser,
} from './lib/models';
export { provideTollgate } from './lib/provide-tollgate';
export { SKIP_AUTH } from './lib/session';
export { TollgateAccount } from './lib/tollgate-account';
export { TollgateAuth } from './lib/tollgate-auth';
export { TollgateDevices } from './lib/tollgate-devices';
export { TollgateIdle } from './lib/tollgate-idle';
export { tollgateInterceptor } from './lib/tollgate.interceptor';
