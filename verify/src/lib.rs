//! Verify Tollgate's access tokens in your own API, exactly as Tollgate
//! verifies them, and refuse those of revoked sessions within seconds.
//!
//! - [`check`]: every check a token passes: one algorithm, `typ: at+jwt`, a known `kid`, no
//!   key in the header (`jwk`, `jku`, `x5u`, `x5c`), the signature, `iss`, `aud`, `exp` and
//!   `nbf` with a leeway of at most 5 s, at most 8 KiB.
//! - [`Verifier`]: holds the keys, remembers tokens it verified (a signature costs far more
//!   than a lookup), refuses tokens of [`RevokedSessions`], and fetches keys from a
//!   [`KeySource`] when a token names a `kid` it does not hold (at most once a second).
//! - [`remote`] (feature `remote`): a verifier fed over HTTP from Tollgate's
//!   `/.well-known/jwks.json` (cached as its `Cache-Control` says) and its revocation feed
//!   (`/api/revocations`, read every second). While Tollgate is unreachable it keeps verifying
//!   with the keys it has and reports how stale its revocations are
//!   ([`Verifier::revocations_staleness`], the `tollgate_verify_revocations_staleness_seconds`
//!   gauge, a warning in the log).
//! - [`axum`] (feature `axum`): the [`Authenticated`](axum::Authenticated) extractor and the
//!   [`RequireAccessToken`](axum::RequireAccessToken) layer, answering 401 (RFC 6750) or 503
//!   as problem+json.
//!
//! # Example: a protected route
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::routing::get;
//! use axum::{Json, Router};
//! use tollgate_verify::axum::Authenticated;
//! use tollgate_verify::{remote, RemoteConfig, Verifier};
//!
//! async fn me(Authenticated(claims): Authenticated) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "user": claims.user.username, "admin": claims.has_role("admin") }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier: Arc<Verifier> = remote(RemoteConfig::new("http://localhost:8000"))?;
//!     let app = Router::new().route("/me", get(me)).with_state(verifier);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! Revocation is fail-open by default once the feed has been read: while Tollgate is down,
//! tokens keep working until they expire (at most the access lifetime). Set
//! [`RemoteConfig::max_revocation_staleness`] to answer 503 instead.

#[cfg(feature = "axum")]
pub mod axum;
mod cache;
mod check;
mod claims;
pub mod dpop;
#[cfg(feature = "remote")]
mod remote;
mod revoked;
mod verifier;

/// The most revocations one page of the feed (`GET /api/revocations`) holds: a full page means
/// more follow at once.
pub const FEED_PAGE: usize = 1000;

pub use check::{
    check, Keys, LeewayTooLong, NoUsableKey, Policy, Rejection, MAX_LEEWAY, MAX_TOKEN_LEN,
};
pub use claims::{AccessClaims, Confirmation, TokenUser, ACCESS_TYP};
pub use jsonwebtoken::{jwk, Algorithm, DecodingKey};
#[cfg(feature = "remote")]
pub use remote::{remote, RemoteConfig, RemoteError};
pub use revoked::RevokedSessions;
pub use verifier::{BoxFuture, Cause, KeySource, Verifier, VerifyError};
