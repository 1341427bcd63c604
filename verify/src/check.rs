//! The checks every token passes, in one place: Tollgate's own routes and resource servers
//! run exactly these.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The most clock difference a verifier may allow for: the issuer's clock and ours should agree.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);

/// Why a token was refused. For logs and metrics: tell the client only that it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("oversized token")]
    Oversized,
    #[error("unreadable header")]
    BadHeader,
    #[error("unexpected algorithm")]
    WrongAlgorithm,
    #[error("wrong token type")]
    WrongType,
    #[error("header-supplied key")]
    HeaderKey,
    #[error("no key id")]
    NoKeyId,
    #[error("unknown key id")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("missing claim")]
    MissingClaim,
    #[error("malformed")]
    Malformed,
    #[error("session revoked")]
    Revoked,
    #[error("a token bound to a key, without its DPoP proof")]
    BoundToKey,
    #[error("a token bound to no key where one must be")]
    Unbound,
}

/// What a token must say to be accepted: one algorithm, one issuer, one audience.
#[derive(Debug, Clone)]
pub struct Policy {
    algorithm: Algorithm,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
#[error("a leeway of {0:?} is more than the 5 s allowed")]
pub struct LeewayTooLong(pub Duration);

impl Policy {
    /// Tokens signed with `algorithm` for `audience` by `issuer`, with no leeway.
    pub fn new(algorithm: Algorithm, issuer: &str, audience: &str) -> Policy {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Policy {
            algorithm,
            validation,
        }
    }

    /// Allows for clocks that differ by up to `leeway` (at most 5 s) on `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Policy, LeewayTooLong> {
        if leeway > MAX_LEEWAY {
            return Err(LeewayTooLong(leeway));
        }
        // Whole seconds, rounded up: a fraction would otherwise be no leeway at all.
        self.validation.leeway = leeway.as_secs() + u64::from(leeway.subsec_nanos() > 0);
        Ok(self)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn leeway_secs(&self) -> u64 {
        self.validation.leeway
    }
}

/// The keys a verifier holds, by key id.
#[derive(Clone, Default)]
pub struct Keys {
    by_kid: HashMap<String, DecodingKey>,
}

/// A key set that gave no usable key.
#[derive(Debug, thiserror::Error)]
#[error("the key set holds no usable {algorithm:?} key ({skipped} skipped)")]
pub struct NoUsableKey {
    pub algorithm: Algorithm,
    pub skipped: usize,
}

impl Keys {
    pub fn new() -> Keys {
        Keys::default()
    }

    /// The keys of a JWK Set that can verify `algorithm`: others (another `alg`, no `kid`, a
    /// key that does not parse) are skipped, so that one odd key does not stop the rest.
    pub fn from_jwks(set: &JwkSet, algorithm: Algorithm) -> Result<Keys, NoUsableKey> {
        let mut keys = Keys::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            let fits = jwk
                .common
                .key_algorithm
                .is_none_or(|alg| alg.to_string() == format!("{algorithm:?}"));
            match (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                (Some(kid), Ok(key)) if fits => keys.insert(kid.clone(), key),
                _ => skipped += 1,
            }
        }
        if keys.by_kid.is_empty() {
            return Err(NoUsableKey { algorithm, skipped });
        }
        Ok(keys)
    }

    /// Adds `key` under `kid`.
    pub fn insert(&mut self, kid: String, key: DecodingKey) {
        self.by_kid.insert(kid, key);
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.by_kid.get(kid)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    /// Whether both hold the same key ids.
    pub fn same_kids_as(&self, other: &Keys) -> bool {
        self.by_kid.len() == other.by_kid.len()
            && other.by_kid.keys().all(|kid| self.by_kid.contains_key(kid))
    }
}

/// Checks `token` against `policy` with `keys`, expecting the `typ` header `typ`, and returns
/// its claims. This is every check: a caller adds only revocation.
pub fn check<T: DeserializeOwned>(
    token: &str,
    typ: &str,
    policy: &Policy,
    keys: &Keys,
) -> Result<T, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::Oversized);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::BadHeader)?;
    if header.alg != policy.algorithm {
        return Err(Rejection::WrongAlgorithm);
    }
    if header.typ.as_deref() != Some(typ) {
        return Err(Rejection::WrongType);
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(Rejection::HeaderKey);
    }
    let kid = header.kid.ok_or(Rejection::NoKeyId)?;
    let key = keys.get(&kid).ok_or(Rejection::UnknownKey)?;
    jsonwebtoken::decode::<T>(token, key, &policy.validation)
        .map(|data| data.claims)
        .map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => Rejection::Expired,
                ErrorKind::InvalidSignature => Rejection::BadSignature,
                ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
                ErrorKind::InvalidAudience => Rejection::WrongAudience,
                ErrorKind::ImmatureSignature => Rejection::NotYetValid,
                ErrorKind::MissingRequiredClaim(_) => Rejection::MissingClaim,
                _ => Rejection::Malformed,
            }
        })
}
