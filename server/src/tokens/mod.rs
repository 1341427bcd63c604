//! JWT issue and verification (docs/api.md, "Tokens"). Signing keys live in the store so
//! that every instance and every restart signs and verifies with the same ones.

mod cache;
mod claims;
mod keys;
mod signing;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::SigningConfig;
use crate::store::{Store, StoreError, User};
use cache::{Cached, VerifiedCache};
use keys::{asymmetric_key_set, ensure_current_key, hmac_key_set, KeySet};

pub use claims::{AccessClaims, RefreshClaims, TokenUser, ACCESS_TYP, REFRESH_TYP};
pub use keys::rotate_key;

/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not acceptable; the reason is for logs and metrics only.
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    /// Signed by a key this instance does not hold (yet, or any more).
    #[error("token rejected: unknown key id")]
    UnknownKey,
    /// A token named a key we do not hold, and the store could not be asked for it: "not
    /// now" rather than "no", so that nobody is signed out over an outage.
    #[error("the signing keys could not be reloaded")]
    KeysUnavailable,
    #[error("signing failed")]
    Signing(#[source] Cause),
    #[error("key generation failed")]
    KeyGeneration(#[source] Cause),
    #[error("stored key {kid} is unusable")]
    BadStoredKey {
        kid: String,
        #[source]
        cause: Cause,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The error underneath, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    /// How long a retired key keeps verifying: the longest token lifetime.
    pub longest: Duration,
}

/// At most one reload of the keys per this interval because of an unknown `kid`: a token
/// from a key rotated in elsewhere is verified at once, a stream of made-up kids costs little.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

pub struct Tokens {
    algorithm: Algorithm,
    issuer: String,
    audience: String,
    lifetimes: Lifetimes,
    validation: Validation,
    keys: RwLock<Arc<KeySet>>,
    store: Arc<dyn Store>,
    hmac_secret: Option<Vec<u8>>,
    verified: VerifiedCache,
    /// When the last reload for an unknown `kid` ran, and whether it succeeded. Callers wait
    /// here for a reload in progress, then verify again.
    last_unknown_kid_reload: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// One reload at a time, so that a slower one cannot install an older key set.
    reloading: tokio::sync::Mutex<()>,
}

impl Tokens {
    /// Loads the signing keys, creating the first one if the store has none.
    pub async fn load(
        store: Arc<dyn Store>,
        signing: &SigningConfig,
        issuer: &str,
        audience: &str,
        lifetimes: Lifetimes,
    ) -> Result<Tokens, TokenError> {
        let mut validation = Validation::new(signing.algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let hmac_secret = signing
            .secret
            .as_ref()
            .map(|secret| secret.expose().to_vec());
        let keys = match &hmac_secret {
            Some(secret) => hmac_key_set(secret)?,
            None => {
                ensure_current_key(store.as_ref(), signing.algorithm).await?;
                asymmetric_key_set(store.as_ref(), signing.algorithm, lifetimes.longest).await?
            }
        };
        Ok(Tokens {
            algorithm: signing.algorithm,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetimes,
            validation,
            keys: RwLock::new(Arc::new(keys)),
            store,
            hmac_secret,
            verified: VerifiedCache::new(),
            last_unknown_kid_reload: tokio::sync::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Picks up keys rotated by another instance or by `tollgate keys rotate`.
    pub async fn reload(&self) -> Result<(), TokenError> {
        if self.hmac_secret.is_some() {
            return Ok(());
        }
        let _one_at_a_time = self.reloading.lock().await;
        let keys =
            asymmetric_key_set(self.store.as_ref(), self.algorithm, self.lifetimes.longest).await?;
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_kids = current.same_kids_as(&keys);
        *current = Arc::new(keys);
        if !same_kids {
            // A key that went away must stop verifying the tokens cached under it.
            self.verified.keys_changed();
        }
        Ok(())
    }

    /// Reloads the keys after a token named a `kid` we do not hold, at most once per
    /// `UNKNOWN_KID_RELOAD_INTERVAL`; within it, callers get the last reload's outcome.
    async fn reload_for_unknown_kid(&self) -> Result<(), TokenError> {
        if self.hmac_secret.is_some() {
            return Ok(());
        }
        let mut last = self.last_unknown_kid_reload.lock().await;
        if let Some((at, succeeded)) = *last {
            if at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL {
                return if succeeded {
                    Ok(())
                } else {
                    Err(TokenError::KeysUnavailable)
                };
            }
        }
        let reloaded = self.reload().await;
        *last = Some((Instant::now(), reloaded.is_ok()));
        reloaded.map_err(|error| {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "key reload after an unknown kid failed"
            );
            TokenError::KeysUnavailable
        })
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// An access token for `user` in session `sid`, and its expiry.
    pub fn issue_access(
        &self,
        user: &User,
        sid: Uuid,
        now: OffsetDateTime,
    ) -> Result<(String, OffsetDateTime), TokenError> {
        let expires_at = now + self.lifetimes.access;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.id,
            sid,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            nbf: None,
            jti: Uuid::new_v4(),
            user: TokenUser {
                id: user.id,
                email: user.email.clone(),
                username: user.username.clone(),
            },
        };
        Ok((self.sign(ACCESS_TYP, &claims)?, expires_at))
    }

    /// A refresh token for generation `gen` of session `sid`, valid until `expires_at`.
    pub fn issue_refresh(
        &self,
        user_id: Uuid,
        sid: Uuid,
        gen: i64,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, TokenError> {
        let claims = RefreshClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            sid,
            gen,
            iat: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            nbf: None,
            jti: Uuid::new_v4(),
        };
        self.sign(REFRESH_TYP, &claims)
    }

    fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, TokenError> {
        let keys = self.current();
        let key = keys
            .signing_key(OffsetDateTime::now_utc())
            .ok_or_else(|| TokenError::Signing("no signing key is active".into()))?;
        let mut header = Header::new(self.algorithm);
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        let failed = |e: serde_json::Error| TokenError::Signing(e.into());
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(failed)?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(failed)?));
        let signature = key.signer.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// Verifies an access token; a `kid` not held yet triggers one (rate-limited) key reload.
    pub async fn verify_access(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        match self.verify_access_now(token) {
            Err(TokenError::UnknownKey) => {
                self.reload_for_unknown_kid().await?;
                self.verify_access_now(token)
            }
            other => other,
        }
    }

    /// Verifies an access token with the keys held now, from the cache when it can.
    pub fn verify_access_now(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        match self.verified.get(token, now) {
            Cached::Valid(claims) => return Ok(claims),
            Cached::Expired => return Err(TokenError::Rejected("expired")),
            Cached::Unknown => {}
        }
        let epoch = self.verified.epoch();
        let claims = Arc::new(self.verify::<AccessClaims>(token, ACCESS_TYP)?);
        self.verified.insert(token, claims.clone(), epoch);
        Ok(claims)
    }

    /// Verifies a refresh token; a `kid` not held yet triggers one (rate-limited) key reload.
    pub async fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        match self.verify_refresh_now(token) {
            Err(TokenError::UnknownKey) => {
                self.reload_for_unknown_kid().await?;
                self.verify_refresh_now(token)
            }
            other => other,
        }
    }

    /// Verifies a refresh token with the keys held now.
    pub fn verify_refresh_now(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        self.verify(token, REFRESH_TYP)
    }

    fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Rejected("oversized token"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| TokenError::Rejected("bad header"))?;
        if header.alg != self.algorithm {
            return Err(TokenError::Rejected("unexpected algorithm"));
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(TokenError::Rejected("wrong token type"));
        }
        if header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(TokenError::Rejected("header-supplied key"));
        }
        let kid = header.kid.ok_or(TokenError::Rejected("no key id"))?;
        let keys = self.current();
        let key = keys.verifying_key(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<T>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                TokenError::Rejected(match error.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::ImmatureSignature => "not yet valid",
                    ErrorKind::MissingRequiredClaim(_) => "missing claim",
                    _ => "malformed",
                })
            })
    }

    /// The public keys as a JWK Set: the current one and retired ones still verifying.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks().clone()
    }
}
