//! The key lifecycle against the store: the first key, rotation, and the set of keys in
//! force at a given time (which signs, which still verify, what the JWKS publishes).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::json;
use time::OffsetDateTime;
use tollgate_verify::Keys;

use super::signing::{alg_name, generate_key, Signer};
use super::{Cause, TokenError};
use crate::store::Store;

/// The keys in force: those that sign, each from its activation until its retirement (one
/// takes over exactly when the one before retires), and every still-valid one
/// to verify with (a key rotated in is published before it activates).
pub(super) struct KeySet {
    /// Latest activation first; a token is signed by the first one already active.
    signing: Vec<SigningKey>,
    verifying: Keys,
    jwks: serde_json::Value,
}

pub(super) struct SigningKey {
    pub(super) kid: String,
    activates_at: OffsetDateTime,
    /// When a later rotation took over; a key retired before it activated never signs.
    retired_at: Option<OffsetDateTime>,
    pub(super) signer: Signer,
}

impl KeySet {
    /// The keys that verify: the current one and retired ones whose tokens may be alive.
    pub(super) fn verifying(&self) -> &Keys {
        &self.verifying
    }

    /// The public keys as a JWK Set.
    pub(super) fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub(super) fn signing_key(&self, now: OffsetDateTime) -> Option<&SigningKey> {
        self.signing
            .iter()
            .find(|key| key.activates_at <= now && key.retired_at.is_none_or(|at| at > now))
    }
}

pub(super) fn hmac_key_set(secret: &[u8]) -> Result<KeySet, TokenError> {
    // The kid names the secret without revealing it, so a changed secret reads as unknown key.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
    let kid = format!("hs256-{}", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8]));
    let verifying = DecodingKey::from_secret(secret).map_err(|e| TokenError::BadStoredKey {
        kid: kid.clone(),
        cause: e.into(),
    })?;
    Ok(KeySet {
        verifying: {
            let mut keys = Keys::new();
            keys.insert(kid.clone(), verifying);
            keys
        },
        signing: vec![SigningKey {
            kid,
            activates_at: OffsetDateTime::UNIX_EPOCH,
            retired_at: None,
            signer: Signer::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                secret,
            ))),
        }],
        jwks: json!({ "keys": [] }),
    })
}

pub(super) async fn ensure_current_key(
    store: &dyn Store,
    algorithm: Algorithm,
) -> Result<(), TokenError> {
    let alg = alg_name(algorithm);
    if store
        .keys(alg)
        .await?
        .iter()
        .any(|key| key.retired_at.is_none())
    {
        return Ok(());
    }
    let key = generate_key(algorithm, OffsetDateTime::now_utc()).await?;
    // Instances racing here all insert; the unique index keeps exactly one.
    store.insert_key_if_none(&key).await?;
    Ok(())
}

/// Publishes a new key that starts signing after `activate_after`, when it also retires the
/// current one; the retired key keeps verifying until its tokens expire. Returns the new kid
/// and its activation time.
pub async fn rotate_key(
    store: &dyn Store,
    algorithm: Algorithm,
    activate_after: Duration,
) -> Result<(String, OffsetDateTime), TokenError> {
    let now = OffsetDateTime::now_utc();
    let mut key = generate_key(algorithm, now).await?;
    key.activates_at = now + activate_after;
    store.rotate_key(&key).await?;
    Ok((key.kid, key.activates_at))
}

pub(super) async fn asymmetric_key_set(
    store: &dyn Store,
    algorithm: Algorithm,
    longest_lifetime: Duration,
) -> Result<KeySet, TokenError> {
    let now = OffsetDateTime::now_utc();
    let mut signing = Vec::new();
    let mut verifying = Keys::new();
    let mut public_keys = Vec::new();
    // Latest activation first (the store's order).
    for key in store.keys(alg_name(algorithm)).await? {
        let still_verifying = match key.retired_at {
            None => true,
            Some(retired_at) => retired_at + longest_lifetime > now,
        };
        if !still_verifying {
            continue;
        }
        let bad = |cause: Cause| TokenError::BadStoredKey {
            kid: key.kid.clone(),
            cause,
        };
        let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|e| bad(e.into()))?;
        verifying.insert(
            key.kid.clone(),
            DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.into()))?,
        );
        public_keys.push(serde_json::to_value(&jwk).map_err(|e| bad(e.into()))?);
        // The current key, and any rotated in to follow it, can sign; retired ones cannot.
        if key.retired_at.is_none_or(|retired_at| retired_at > now) {
            signing.push(SigningKey {
                signer: Signer::from_der(algorithm, &key.private_der).map_err(bad)?,
                kid: key.kid,
                activates_at: key.activates_at,
                retired_at: key.retired_at,
            });
        }
    }
    let key_set = KeySet {
        signing,
        verifying,
        jwks: json!({ "keys": public_keys }),
    };
    if key_set.signing_key(now).is_none() {
        return Err(TokenError::BadStoredKey {
            kid: "-".into(),
            cause: format!("no current {} key in the store", alg_name(algorithm)).into(),
        });
    }
    Ok(key_set)
}
