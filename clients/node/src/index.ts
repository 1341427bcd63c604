export {
  DpopChecker,
  normalizedUri,
  ProofRejected,
  ReplayCache,
  tokenHash,
  type DpopOptions,
  type ProofTarget,
  type Replays,
} from './dpop.js';
export { TokenRejected, Unavailable } from './errors.js';
export { accessToken, bearerToken, tollgate, type AuthenticatedRequest, type TollgateMiddleware } from './express.js';
export {
  ACCESS_TYP,
  MAX_LEEWAY_SECONDS,
  MAX_TOKEN_LENGTH,
  TollgateVerifier,
  type AccessClaims,
  type TollgateOptions,
} from './verifier.js';
