//! What refresh tokens say (docs/api.md, "Tokens"); access tokens' claims are
//! `tollgate_verify`'s.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `typ` header of a refresh token: never accepted where an access token is expected.
pub const REFRESH_TYP: &str = "rt+jwt";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub gen: i64,
    pub iat: i64,
    pub exp: i64,
    /// Never issued; typed so that a malformed one is refused rather than ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Uuid,
}
