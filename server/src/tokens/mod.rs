//! JWT issue and verification (docs/api.md, "Tokens"). Signing keys live in the store so
//! that every instance and every restart signs and verifies with the same ones.

mod claims;
mod dpop;
mod keys;
mod signing;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use time::OffsetDateTime;
use tollgate_verify::dpop::Dpop;
use tollgate_verify::{BoxFuture, KeySource, Keys, Policy, Rejection, Verifier, VerifyError};
use uuid::Uuid;

use crate::config::SigningConfig;
use crate::store::{Store, StoreError, User};
use keys::{asymmetric_key_set, ensure_current_key, hmac_key_set, KeySet};

pub use claims::{RefreshClaims, REFRESH_TYP};
pub use dpop::dpop;
pub use keys::rotate_key;
pub use tollgate_verify::{AccessClaims, Confirmation, TokenUser, ACCESS_TYP};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not acceptable; the reason is for logs and metrics only.
    #[error("token rejected: {0}")]
    Rejected(Rejection),
    /// A token named a key we do not hold, and the store could not be asked for it: "not
    /// now" rather than "no", so that nobody is signed out over an outage.
    #[error("the signing keys could not be reloaded")]
    KeysUnavailable,
    #[error("key reload failed")]
    Reload(#[source] Cause),
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

impl From<VerifyError> for TokenError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Rejected(rejection) => TokenError::Rejected(rejection),
            // Revocations are not required of this verifier: only the keys can be missing.
            VerifyError::KeysUnavailable | VerifyError::RevocationsStale => {
                TokenError::KeysUnavailable
            }
            // Not reached: these calls check no proof.
            VerifyError::ReplaysUnavailable(_) => TokenError::KeysUnavailable,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    /// How long a retired key keeps verifying: the longest token lifetime.
    pub longest: Duration,
}

/// Issues tokens with the keys in force, and verifies them through `tollgate_verify`: the
/// same checks, cache and revocations a resource server runs.
pub struct Tokens {
    algorithm: Algorithm,
    issuer: String,
    audience: String,
    lifetimes: Lifetimes,
    keys: Arc<RwLock<Arc<KeySet>>>,
    verifier: Verifier,
}

/// The verifier's key source: the store, which also gives the keys that sign.
struct StoreKeys {
    store: Arc<dyn Store>,
    algorithm: Algorithm,
    longest: Duration,
    keys: Arc<RwLock<Arc<KeySet>>>,
}

impl KeySource for StoreKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<Keys, Cause>> {
        Box::pin(async move {
            let keys = asymmetric_key_set(self.store.as_ref(), self.algorithm, self.longest)
                .await
                .map_err(Cause::from)?;
            let verifying = keys.verifying().clone();
            *self
                .keys
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
            Ok(verifying)
        })
    }
}

impl Tokens {
    /// Loads the signing keys, creating the first one if the store has none; bound tokens are
    /// accepted with proofs checked by `dpop`.
    pub async fn load(
        store: Arc<dyn Store>,
        signing: &SigningConfig,
        issuer: &str,
        audience: &str,
        lifetimes: Lifetimes,
        dpop: Dpop,
    ) -> Result<Tokens, TokenError> {
        // No leeway: the issuer is the verifier.
        let policy = Policy::new(signing.algorithm, issuer, audience);
        let (keys, source) = match &signing.secret {
            Some(secret) => (hmac_key_set(secret.expose())?, None),
            None => {
                ensure_current_key(store.as_ref(), signing.algorithm).await?;
                let keys = asymmetric_key_set(store.as_ref(), signing.algorithm, lifetimes.longest)
                    .await?;
                (keys, Some(store))
            }
        };
        let verifier = Verifier::new(policy, keys.verifying().clone()).with_dpop(dpop);
        let keys = Arc::new(RwLock::new(Arc::new(keys)));
        let verifier = match source {
            Some(store) => verifier.with_key_source(StoreKeys {
                store,
                algorithm: signing.algorithm,
                longest: lifetimes.longest,
                keys: keys.clone(),
            }),
            None => verifier,
        };
        Ok(Tokens {
            algorithm: signing.algorithm,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetimes,
            keys,
            verifier,
        })
    }

    /// The verifier of access tokens, with the revoked sessions it refuses.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Picks up keys rotated by another instance or by `tollgate keys rotate`.
    pub async fn reload(&self) -> Result<(), TokenError> {
        self.verifier
            .reload_keys()
            .await
            .map_err(TokenError::Reload)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// An access token for `user` in session `sid`, bound to the DPoP key `jkt` if given, and
    /// its expiry: the access lifetime, but never past `session_ends` (a token must not
    /// outlive its session: revoking a user's sessions only reaches the live ones).
    pub fn issue_access(
        &self,
        user: &User,
        sid: Uuid,
        jkt: Option<&str>,
        now: OffsetDateTime,
        session_ends: OffsetDateTime,
    ) -> Result<(String, OffsetDateTime), TokenError> {
        let expires_at = (now + self.lifetimes.access).min(session_ends);
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
            roles: user.roles.clone(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
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

    /// Verifies an access token and refuses it if its session was revoked; a `kid` not held
    /// yet triggers one (rate-limited) key reload.
    pub async fn verify_access(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        Ok(self.verifier.verify_access(token).await?)
    }

    /// `verify_access` with the keys held now, from the cache when it can.
    pub fn verify_access_now(&self, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        Ok(self.verifier.verify_access_now(token)?)
    }

    /// Verifies a refresh token; a `kid` not held yet triggers one (rate-limited) key reload.
    pub async fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        Ok(self.verifier.verify(token, REFRESH_TYP).await?)
    }

    /// Verifies a refresh token with the keys held now.
    pub fn verify_refresh_now(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        Ok(self.verifier.verify_now(token, REFRESH_TYP)?)
    }

    /// The public keys as a JWK Set: the current one and retired ones still verifying.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks().clone()
    }
}
