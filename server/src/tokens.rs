//! JWT issue and verification (DESIGN §3). Signing keys live in the store so that every
//! instance and every restart signs and verifies with the same ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::SigningConfig;
use crate::store::{Store, StoreError, StoredKey, User};

pub const ACCESS_TYP: &str = "at+jwt";
pub const REFRESH_TYP: &str = "rt+jwt";
/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Access tokens remembered as verified: a client sends the same token many times, and a
/// signature check costs far more than a lookup.
const VERIFIED_CACHE_ENTRIES: usize = 4096;

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
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    #[error("stored key {kid} is unusable: {reason}")]
    BadStoredKey { kid: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Never issued; typed so that a malformed one is refused rather than ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Uuid,
    pub user: TokenUser,
}

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

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access: Duration,
    /// How long a retired key keeps verifying: the longest token lifetime.
    pub longest: Duration,
}

/// The keys in force: those that sign, each from its activation until its retirement (one
/// takes over exactly when the one before retires), and every still-valid one
/// to verify with (a key rotated in is published before it activates).
struct KeySet {
    /// Latest activation first; a token is signed by the first one already active.
    signing: Vec<SigningKey>,
    verifying: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

struct SigningKey {
    kid: String,
    activates_at: OffsetDateTime,
    /// When a later rotation took over; a key retired before it activated never signs.
    retired_at: Option<OffsetDateTime>,
    signer: Signer,
}

impl KeySet {
    fn signing_key(&self, now: OffsetDateTime) -> Option<&SigningKey> {
        self.signing
            .iter()
            .find(|key| key.activates_at <= now && key.retired_at.is_none_or(|at| at > now))
    }
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
    /// Keyed by the exact token; an entry is only used while its `exp` is in the future and
    /// the key set it was verified with is still the one in force.
    verified: quick_cache::sync::Cache<String, (Arc<AccessClaims>, u64)>,
    /// Bumped whenever the set of verifying keys changes, which invalidates `verified`.
    key_epoch: AtomicU64,
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
            verified: quick_cache::sync::Cache::new(VERIFIED_CACHE_ENTRIES),
            key_epoch: AtomicU64::new(0),
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
        let same_kids = current.verifying.len() == keys.verifying.len()
            && keys
                .verifying
                .keys()
                .all(|kid| current.verifying.contains_key(kid));
        *current = Arc::new(keys);
        if !same_kids {
            // A key that went away must stop verifying the tokens cached under it.
            self.key_epoch.fetch_add(1, Ordering::AcqRel);
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
            tracing::warn!(%error, "key reload after an unknown kid failed");
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
            .ok_or_else(|| TokenError::Signing("no signing key".into()))?;
        let mut header = Header::new(self.algorithm);
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        let failed = |e: serde_json::Error| TokenError::Signing(e.to_string());
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
        let epoch = self.key_epoch.load(Ordering::Acquire);
        if let Some((claims, verified_in)) = self.verified.get(token) {
            if verified_in == epoch {
                if claims.exp > now {
                    return Ok(claims);
                }
                self.verified.remove(token);
                return Err(TokenError::Rejected("expired"));
            }
            self.verified.remove(token);
        }
        let claims = Arc::new(self.verify::<AccessClaims>(token, ACCESS_TYP)?);
        self.verified
            .insert(token.to_owned(), (claims.clone(), epoch));
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
        let key = keys.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
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
        self.current().jwks.clone()
    }
}

fn alg_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

fn hmac_key_set(secret: &[u8]) -> Result<KeySet, TokenError> {
    // The kid names the secret without revealing it, so a changed secret reads as unknown key.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
    let kid = format!("hs256-{}", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8]));
    let verifying = DecodingKey::from_secret(secret).map_err(|e| TokenError::BadStoredKey {
        kid: kid.clone(),
        reason: e.to_string(),
    })?;
    Ok(KeySet {
        verifying: HashMap::from([(kid.clone(), verifying)]),
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

async fn ensure_current_key(store: &dyn Store, algorithm: Algorithm) -> Result<(), TokenError> {
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

async fn asymmetric_key_set(
    store: &dyn Store,
    algorithm: Algorithm,
    longest_lifetime: Duration,
) -> Result<KeySet, TokenError> {
    let now = OffsetDateTime::now_utc();
    let mut signing = Vec::new();
    let mut verifying = HashMap::new();
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
        let bad = |reason: String| TokenError::BadStoredKey {
            kid: key.kid.clone(),
            reason,
        };
        let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|e| bad(e.to_string()))?;
        verifying.insert(
            key.kid.clone(),
            DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?,
        );
        public_keys.push(serde_json::to_value(&jwk).map_err(|e| bad(e.to_string()))?);
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
            reason: format!("no current {} key in the store", alg_name(algorithm)),
        });
    }
    Ok(key_set)
}

/// A fresh key pair; RSA generation takes a while, so it runs off the async runtime.
async fn generate_key(algorithm: Algorithm, now: OffsetDateTime) -> Result<StoredKey, TokenError> {
    tokio::task::spawn_blocking(move || generate_key_blocking(algorithm, now))
        .await
        .map_err(|e| TokenError::KeyGeneration(e.to_string()))?
}

fn generate_key_blocking(
    algorithm: Algorithm,
    now: OffsetDateTime,
) -> Result<StoredKey, TokenError> {
    let failed = |e: &dyn std::fmt::Display| TokenError::KeyGeneration(e.to_string());
    let kid = Uuid::new_v4().simple().to_string();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let rng = SystemRandom::new();
    let (private_der, public) = match algorithm {
        Algorithm::EdDSA => {
            let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| failed(&e))?;
            let pair =
                signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| failed(&e))?;
            let x = b64(pair.public_key().as_ref());
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
            )
        }
        Algorithm::ES256 => {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 =
                signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| failed(&e))?;
            let pair =
                signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).map_err(|e| failed(&e))?;
            // Uncompressed point: 0x04 || x || y.
            let point = pair.public_key().as_ref();
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y }),
            )
        }
        Algorithm::RS256 => {
            use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|e| failed(&e))?;
            let pkcs8: Pkcs8V1Der = pair.as_der().map_err(|e| failed(&e))?;
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            (
                pkcs8.as_ref().to_vec(),
                json!({ "kty": "RSA", "n": n, "e": e }),
            )
        }
        other => {
            return Err(TokenError::KeyGeneration(format!(
                "{other:?} keys are not generated"
            )))
        }
    };
    let mut jwk = public;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg_name(algorithm));
    jwk["use"] = json!("sig");
    Ok(StoredKey {
        kid,
        alg: alg_name(algorithm).to_owned(),
        private_der,
        public_jwk: jwk.to_string(),
        created_at: now,
        activates_at: now,
        retired_at: None,
    })
}

/// A signing key parsed once. (`jsonwebtoken` parses the DER on every signature, which for
/// Ed25519 and ECDSA costs more than the signature itself.)
enum Signer {
    Ed25519(signature::Ed25519KeyPair),
    Ecdsa(signature::EcdsaKeyPair),
    Rsa(signature::RsaKeyPair),
    /// Boxed: aws-lc's HMAC key holds its precomputed state inline (over a kilobyte).
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

impl Signer {
    fn from_der(algorithm: Algorithm, der: &[u8]) -> Result<Signer, String> {
        match algorithm {
            Algorithm::EdDSA => signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Signer::Ed25519)
                .map_err(|e| e.to_string()),
            Algorithm::ES256 => signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )
            .map(Signer::Ecdsa)
            .map_err(|e| e.to_string()),
            // PKCS#8 since keys are generated with aws-lc-rs; PKCS#1 from before.
            Algorithm::RS256 => signature::RsaKeyPair::from_pkcs8(der)
                .or_else(|_| signature::RsaKeyPair::from_der(der))
                .map(Signer::Rsa)
                .map_err(|e| e.to_string()),
            other => Err(format!("{other:?} keys are not stored")),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let failed = |e: aws_lc_rs::error::Unspecified| TokenError::Signing(e.to_string());
        let rng = SystemRandom::new();
        Ok(match self {
            Signer::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Signer::Ecdsa(key) => key.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public_key().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                signature
            }
            Signer::Hmac(key) => aws_lc_rs::hmac::sign(key, message).as_ref().to_vec(),
        })
    }
}
