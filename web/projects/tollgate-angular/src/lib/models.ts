/** The JSON shapes of the Tollgate API that the library reads. */

/**
 * The signed-in user, as `GET /api/current-user` and sign-in return it: the fields every
 * Tollgate user has (the server sends more, which an app may read with its own type).
 */
export interface TollgateUser {
  id: string;
  username: string;
  email: string;
  /** As stored now; the access token's `roles` claim may be older (see `TollgateAuth.roles`). */
  roles?: readonly string[];
}

/** What `POST /api/register` takes besides the device details the library adds. */
export interface TollgateRegistration {
  username: string;
  password: string;
  email: string;
  first_name?: string;
  last_name?: string;
  gender?: string;
  phone?: string;
  city?: string;
}

/** Which account features the server offers (`GET /api/settings`). */
export interface TollgateServerSettings {
  /** Anyone may sign up. */
  signup: boolean;
  /** Password reset mails can be sent. */
  passwordReset: boolean;
}

/** One signed-in device (`GET /api/sessions`). */
export interface TollgateSession {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
  current: boolean;
}

export interface TokenResponse {
  accessToken: string;
  /** Absent with the cookie transport. */
  refreshToken?: string;
  expiresIn: number;
  tokenType: string;
}

export interface LoginResponse extends TokenResponse {
  user: TollgateUser;
}

/** Why the user was signed out. */
export type SignOutReason =
  /** They signed out on this device (here or in another tab). */
  | 'logout'
  /** They signed out of every device. */
  | 'everywhere'
  /** The server refused the session (revoked, expired, reused refresh token). */
  | 'refused'
  /** No activity for the idle timeout. */
  | 'idle';

/** What happened to the session. */
export type TollgateEvent =
  | { type: 'signed-in'; user: TollgateUser }
  | { type: 'refreshed'; expiresAt: number }
  | { type: 'signed-out'; reason: SignOutReason };
