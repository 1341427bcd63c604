/** The token is not acceptable: answer 401. `reason` is for logs only. */
export class TokenRejected extends Error {
  constructor(readonly reason: string) {
    super(`token rejected: ${reason}`);
    this.name = 'TokenRejected';
  }
}

/**
 * Tollgate could not be reached for keys or revocations: answer 503 ("not now" rather than
 * "no"), so that nobody is signed out over an outage.
 */
export class Unavailable extends Error {
  constructor(readonly reason: string) {
    super(`unavailable: ${reason}`);
    this.name = 'Unavailable';
  }
}
