//! What Tollgate's access tokens say.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `typ` header of an access token (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";

/// The user an access token was issued to, as it was at sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
}

/// The claims of a verified access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The issuer: the Tollgate server's configured `TOLLGATE_ISSUER`.
    pub iss: String,
    /// The audience: `TOLLGATE_AUDIENCE`.
    pub aud: String,
    /// The user's id.
    pub sub: Uuid,
    /// The session (device) the token belongs to; revoking it ends the token.
    pub sid: Uuid,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expires at, in Unix seconds.
    pub exp: i64,
    /// Never issued by Tollgate; typed so that a malformed one is refused rather than ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Uuid,
    pub user: TokenUser,
    /// The user's roles (Tollgate always sends the claim; absent counts as none).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The key the token is bound to (DPoP): it is accepted only with a proof by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 7800 confirmation: the SHA-256 thumbprint of the key a token is bound to (RFC 9449).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    /// The thumbprint of the key the token is bound to, if it is.
    pub fn bound_key(&self) -> Option<&str> {
        self.cnf.as_ref().map(|cnf| cnf.jkt.as_str())
    }

    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}
