/** The JSON shapes of the Tollgate API (docs/api.md, "Records"). */

export interface User {
  id: string;
  username: string;
  email: string;
  first_name: string;
  last_name: string;
  gender: string;
  phone: string;
  city: string;
}

export interface Job {
  id: string;
  user_id: string;
  company_name: string;
  title: string;
  first_date: string;
  last_date: string;
  skills: string;
  department: string;
  ein: string;
}

export interface Session {
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
  tokenType: 'Bearer';
}

export interface LoginResponse extends TokenResponse {
  user: User;
}

/** RFC 9457 problem details, the body of every API error. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}
