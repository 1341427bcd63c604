//! DPoP (RFC 9449): proofs that the caller holds the private key a session is bound to.
//!
//! [`check_proof`] runs every check of RFC 9449 §4.3 that needs no memory: the header (`typ:
//! dpop+jwt`, an allowed asymmetric `alg`, a public `jwk` and never a private one), the
//! signature, `htm`, `htu`, `iat` within a small window, and `ath` when an access token comes
//! with the proof. [`Dpop`] adds what needs memory: a `jti` seen before within the window is a
//! replay ([`Replays`]; [`ReplayCache`] remembers them in one process), and server nonces
//! ([`Nonces`]) when they are asked for.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::{constant_time, digest, hmac, rand};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::verifier::{BoxFuture, Cause};

/// The `typ` header of a proof.
pub const PROOF_TYP: &str = "dpop+jwt";
/// Longer proofs are refused before any parsing (an RSA 4096 key makes one of about 2 KiB).
pub const MAX_PROOF_LEN: usize = 4 * 1024;
/// The longest `jti` accepted (the replay caches keep a hash of it, whatever its length).
const MAX_JTI_LEN: usize = 256;
/// Members that only a private or symmetric key has: a proof carrying one is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused. For logs and metrics; the client is told `invalid_dpop_proof`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRejection {
    #[error("no DPoP proof")]
    Missing,
    #[error("more than one DPoP header")]
    Several,
    #[error("oversized proof")]
    Oversized,
    #[error("malformed proof")]
    Malformed,
    #[error("wrong proof type")]
    WrongType,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("no public key in the proof")]
    NoKey,
    #[error("a private key in the proof")]
    PrivateKey,
    #[error("bad proof signature")]
    BadSignature,
    #[error("wrong method (htm)")]
    WrongMethod,
    #[error("wrong URI (htu)")]
    WrongUri,
    #[error("proof too old or from the future (iat)")]
    Stale,
    #[error("wrong access token hash (ath)")]
    WrongTokenHash,
    #[error("proof by another key")]
    WrongKey,
    #[error("proof replayed (jti)")]
    Replayed,
    #[error("server nonce missing or stale")]
    Nonce,
}

/// What a proof must satisfy besides its request.
#[derive(Debug, Clone)]
pub struct DpopPolicy {
    algorithms: Vec<Algorithm>,
    /// How old a proof's `iat` may be.
    max_age: Duration,
    /// How far ahead of our clock a proof's `iat` may be: devices' clocks are often off by
    /// seconds, and a sign-in refused for it would be a sign-in that worked without DPoP. An
    /// `exp` or `nbf` the proof carries gets the same leeway.
    leeway: Duration,
}

impl Default for DpopPolicy {
    /// ES256 and EdDSA; proofs at most 60 s old and 60 s ahead of our clock.
    fn default() -> Self {
        DpopPolicy {
            algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(60),
        }
    }
}

/// An algorithm a proof may not use: symmetric ones (anyone who can check could forge).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an asymmetric algorithm")]
pub struct SymmetricAlgorithm(pub Algorithm);

impl DpopPolicy {
    /// Proofs signed with one of `algorithms`, which must all be asymmetric.
    pub fn with_algorithms(
        mut self,
        algorithms: &[Algorithm],
    ) -> Result<DpopPolicy, SymmetricAlgorithm> {
        if let Some(&symmetric) = algorithms
            .iter()
            .find(|alg| matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(SymmetricAlgorithm(symmetric));
        }
        self.algorithms = algorithms.to_vec();
        Ok(self)
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The first second at which a proof made at `iat` is refused as stale, so its `jti` need
    /// not be remembered any more.
    fn stale_from(&self, iat: i64) -> i64 {
        iat.saturating_add(secs(self.max_age)).saturating_add(1)
    }
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// `GET`, `POST`…
    pub method: &'a str,
    /// The URI the client called, as it sees it: `https://api.example.com/api/job-list`.
    pub uri: &'a str,
    /// The access token sent with the proof, whose hash the proof's `ath` must be.
    pub access_token: Option<&'a str>,
}

/// A proof that passed [`check_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The JWK SHA-256 thumbprint of the proof's key (RFC 7638), base64url.
    pub jkt: String,
    pub jti: String,
    /// When the proof was made, in Unix seconds.
    pub iat: i64,
    /// The server nonce the proof carries.
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    /// Neither is asked for, but a proof that carries them is held to them, as JOSE libraries
    /// do: a proof its maker says has expired is not accepted.
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
}

/// Checks a proof for `target` at `now` (Unix seconds). Replays and nonces are the caller's.
pub fn check_proof(
    proof: &str,
    target: &ProofTarget<'_>,
    policy: &DpopPolicy,
    now: i64,
) -> Result<Proof, ProofRejection> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofRejection::Oversized);
    }
    let encoded_header = proof.split('.').next().unwrap_or_default();
    let header: Header = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(ProofRejection::Malformed)?;
    if header.typ.as_deref() != Some(PROOF_TYP) {
        return Err(ProofRejection::WrongType);
    }
    let algorithm = header
        .alg
        .and_then(|alg| alg.parse::<Algorithm>().ok())
        .filter(|alg| policy.algorithms.contains(alg))
        .ok_or(ProofRejection::Algorithm)?;
    let jwk = header.jwk.ok_or(ProofRejection::NoKey)?;
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| jwk.contains_key(*member))
    {
        return Err(ProofRejection::PrivateKey);
    }
    let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(jwk))
        .map_err(|_| ProofRejection::NoKey)?;
    if !key_fits(&jwk, algorithm) {
        return Err(ProofRejection::NoKey);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofRejection::NoKey)?;
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => ProofRejection::BadSignature,
            _ => ProofRejection::Malformed,
        })?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofRejection::Malformed);
    }
    if claims.htm != target.method {
        return Err(ProofRejection::WrongMethod);
    }
    match normalized_uri(&claims.htu) {
        Some(htu) if Some(&htu) == normalized_uri(target.uri).as_ref() => {}
        _ => return Err(ProofRejection::WrongUri),
    }
    let oldest = now.saturating_sub(secs(policy.max_age));
    let newest = now.saturating_add(secs(policy.leeway));
    if claims.iat < oldest || claims.iat > newest {
        return Err(ProofRejection::Stale);
    }
    let leeway = secs(policy.leeway) as f64;
    if claims.exp.is_some_and(|exp| exp <= now as f64 - leeway)
        || claims.nbf.is_some_and(|nbf| nbf > now as f64 + leeway)
    {
        return Err(ProofRejection::Stale);
    }
    if let Some(token) = target.access_token {
        if claims.ath.as_deref() != Some(token_hash(token).as_str()) {
            return Err(ProofRejection::WrongTokenHash);
        }
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| ProofRejection::NoKey)?;
    Ok(Proof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// The key type an algorithm signs with: ES256 on P-256, EdDSA on Ed25519, RSA for RS*/PS*.
fn key_fits(jwk: &Jwk, algorithm: Algorithm) -> bool {
    match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `ath`: the base64url SHA-256 of the access token (RFC 9449 §4.2).
pub fn token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// A URI as `htu` compares it (RFC 9449 §4.3, RFC 3986 §6.2.2-3): without query and fragment,
/// scheme and host in lower case, no default port, `/` for an empty path. `None` when it is not
/// an absolute `http` or `https` URI.
pub fn normalized_uri(uri: &str) -> Option<String> {
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

/// The `jti`s of the proofs accepted within the window, in this process: a second use is a
/// replay. Each is forgotten once its time has passed, so memory follows the rate of proofs over
/// the last minute or two; when that many are live, new proofs are refused rather than some
/// forgotten.
pub struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// The first half of each replay key: 128 bits keep collisions out of reach, and one would
    /// refuse a proof, never accept one.
    keys: HashSet<[u8; 16]>,
    /// The same keys by the second they are forgotten at: proofs dated up to a minute ahead
    /// make those times differ from the order of arrival.
    by_time: BTreeMap<i64, Vec<[u8; 16]>>,
    /// The latest `now` seen: every key due by then is forgotten. A request whose clock was
    /// read earlier may come after it, and a key due by then cannot be told from a forgotten
    /// one. A clock set back by more than a minute therefore has proofs refused until it
    /// catches up (or the process restarts): refusing is the only safe answer.
    forgotten_until: i64,
}

/// The replay cache is full of proofs still in their window: answer 503, try again shortly.
#[derive(Debug, thiserror::Error)]
#[error("too many DPoP proofs in the window to remember another")]
pub struct ReplayCacheFull;

impl ReplayCache {
    /// Remembers at most `capacity` keys at once.
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity,
            seen: Mutex::new(Seen {
                forgotten_until: i64::MIN,
                ..Seen::default()
            }),
        }
    }

    /// Whether `key` is used for the first time at `now`; remembers it until `forget_at`. False
    /// also for a key due by the latest `now` seen (it may have been forgotten).
    pub fn first_use_at(
        &self,
        key: [u8; 32],
        forget_at: i64,
        now: i64,
    ) -> Result<bool, ReplayCacheFull> {
        let mut half = [0; 16];
        half.copy_from_slice(&key[..16]);
        let key = half;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = &mut *seen;
        seen.forgotten_until = seen.forgotten_until.max(now);
        while let Some(entry) = seen.by_time.first_entry() {
            if *entry.key() > seen.forgotten_until {
                break;
            }
            for expired in entry.remove() {
                seen.keys.remove(&expired);
            }
        }
        if forget_at <= seen.forgotten_until || seen.keys.contains(&key) {
            return Ok(false);
        }
        if seen.keys.len() >= self.capacity {
            return Err(ReplayCacheFull);
        }
        seen.keys.insert(key);
        seen.by_time.entry(forget_at).or_default().push(key);
        Ok(true)
    }

    /// How many proofs are remembered.
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One key per (key, `jti`): a `jti` is only unique for its key. The SHA-256 of
/// `{jkt}.{jti}`, so that the stored size does not depend on what the client sent (the Node.js
/// package passes the same hash, in base64url, so one store can serve both).
pub fn replay_key(proof: &Proof) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(proof.jkt.as_bytes());
    context.update(b".");
    context.update(proof.jti.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// Where the `jti`s of accepted proofs are remembered: one process ([`ReplayCache`]), or a
/// store shared by every instance.
pub trait Replays: Send + Sync {
    /// Whether `key` (a [`replay_key`]) is used for the first time at `now`, remembering it
    /// until `forget_at`: the second from which the proof is stale (its `iat` plus the
    /// policy's `max_age`, plus one), in Unix seconds. Telling and remembering must be one
    /// atomic step (`SET NX` in Redis, `INSERT … ON CONFLICT` in SQL). A store shared by
    /// instances should keep the key longer by as much as their clocks may differ: an
    /// instance whose clock is behind accepts the proof for that much longer.
    fn first_use(
        &self,
        key: [u8; 32],
        forget_at: i64,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, Cause>>;
}

impl std::fmt::Debug for dyn Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replays")
    }
}

impl Replays for ReplayCache {
    fn first_use(
        &self,
        key: [u8; 32],
        forget_at: i64,
        now: i64,
    ) -> BoxFuture<'_, Result<bool, Cause>> {
        let first = self.first_use_at(key, forget_at, now).map_err(Cause::from);
        Box::pin(std::future::ready(first))
    }
}

/// Server nonces (RFC 9449 §8): a proof must carry one given out within the last two periods.
/// They need no memory: a nonce is its period and a MAC of it, so instances sharing the secret
/// accept each other's.
pub struct Nonces {
    key: hmac::Key,
    period: i64,
}

impl Nonces {
    /// Nonces under `secret` (at least 32 bytes), each given out for `period`.
    pub fn new(secret: &[u8], period: Duration) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period: secs(period).max(1),
        }
    }

    /// Nonces under a secret of this process only.
    pub fn random(period: Duration) -> Nonces {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).expect("the system's random source");
        Nonces::new(&secret, period)
    }

    fn nonce_for(&self, slot: i64) -> String {
        let tag = hmac::sign(&self.key, &slot.to_be_bytes());
        let mut bytes = slot.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The nonce to give out at `now` (Unix seconds).
    pub fn current(&self, now: i64) -> String {
        self.nonce_for(now.div_euclid(self.period))
    }

    /// Whether `nonce` was given out in this period or the one before.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some(slot) = bytes.get(..8).and_then(|slot| slot.try_into().ok()) else {
            return false;
        };
        let slot = i64::from_be_bytes(slot);
        let current = now.div_euclid(self.period);
        (slot == current || slot == current - 1)
            && constant_time::verify_slices_are_equal(
                self.nonce_for(slot).as_bytes(),
                nonce.as_bytes(),
            )
            .is_ok()
    }
}

/// Why a proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// A bad proof: 401 `invalid_dpop_proof` (403 on a refresh).
    #[error("DPoP proof refused: {0}")]
    Rejected(#[from] ProofRejection),
    /// A proof without the current server nonce: the client retries with this one.
    #[error("a DPoP nonce is required")]
    UseNonce(String),
    /// Replays could not be checked: 503, try again.
    #[error("DPoP replays could not be checked")]
    Unavailable(#[source] Cause),
}

/// DPoP for a verifier or a server: the proof policy, replays, and optional nonces.
pub struct Dpop {
    policy: DpopPolicy,
    replays: Arc<dyn Replays>,
    nonces: Option<Nonces>,
    required: bool,
    origin: Option<String>,
}

/// Proofs remembered by one process at once: about 50 to 65 bytes each (measured at 757,595
/// keys; the per-second lists grow by doubling), so at most about 50 to 65 MiB. Each is remembered for about a minute (until it is stale), so this is reached by more
/// than about 16,000 proofs a second, sustained (half that if all are dated a minute ahead):
/// then new ones get 503.
const REPLAY_CACHE_CAPACITY: usize = 1_000_000;

impl Dpop {
    /// Proofs by `policy`, replays remembered in this process, no nonces; bound tokens need a
    /// proof and unbound ones do not.
    pub fn new(policy: DpopPolicy) -> Dpop {
        let replays = Arc::new(ReplayCache::new(REPLAY_CACHE_CAPACITY));
        Dpop {
            policy,
            replays,
            nonces: None,
            required: false,
            origin: None,
        }
    }

    /// The scheme, host and port clients call this API at (`https://api.example.com`), as
    /// proofs name it in `htu`; needed behind a proxy. Without it, the request's own.
    pub fn with_origin(mut self, origin: &str) -> Dpop {
        self.origin = Some(origin.trim_end_matches('/').to_owned());
        self
    }

    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Remembers replays in `replays` (a store every instance shares).
    pub fn with_replays(mut self, replays: Arc<dyn Replays>) -> Dpop {
        self.replays = replays;
        self
    }

    /// Asks for server nonces.
    pub fn with_nonces(mut self, nonces: Nonces) -> Dpop {
        self.nonces = Some(nonces);
        self
    }

    /// Refuses tokens that are not bound to a key.
    pub fn requiring_bound_tokens(mut self) -> Dpop {
        self.required = true;
        self
    }

    pub fn policy(&self) -> &DpopPolicy {
        &self.policy
    }

    /// Whether unbound tokens are refused.
    pub fn requires_bound_tokens(&self) -> bool {
        self.required
    }

    /// The nonce to send in `DPoP-Nonce`, when nonces are asked for.
    pub fn nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.current(now))
    }

    /// The nonce to challenge `proof` with before anything else is checked: `Some` when nonces
    /// are asked for and the proof's claims can be read but carry no nonce accepted at `now`.
    /// The claims are read without checking the signature, so this costs no more than a hash;
    /// anyone can get a nonce, so answering early gives nothing away. A proof whose claims
    /// cannot be read is left to [`Dpop::check`] to refuse.
    pub fn nonce_challenge(&self, proof: &str, now: i64) -> Option<String> {
        #[derive(Deserialize)]
        struct NonceClaim {
            nonce: Option<String>,
        }
        let nonces = self.nonces.as_ref()?;
        if proof.len() > MAX_PROOF_LEN {
            return None;
        }
        let claims: NonceClaim = proof
            .split('.')
            .nth(1)
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .and_then(|json| serde_json::from_slice(&json).ok())?;
        match claims.nonce {
            Some(nonce) if nonces.accepts(&nonce, now) => None,
            _ => Some(nonces.current(now)),
        }
    }

    /// Checks `proof` for `target`: every check of [`check_proof`], then the nonce, then that
    /// its `jti` was not used before by the same key.
    pub async fn check(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
        now: i64,
    ) -> Result<Proof, DpopError> {
        let proof = check_proof(proof, target, &self.policy, now)?;
        if let Some(nonces) = &self.nonces {
            if !proof
                .nonce
                .as_deref()
                .is_some_and(|nonce| nonces.accepts(nonce, now))
            {
                return Err(DpopError::UseNonce(nonces.current(now)));
            }
        }
        let forget_at = self.policy.stale_from(proof.iat);
        match self
            .replays
            .first_use(replay_key(&proof), forget_at, now)
            .await
        {
            Ok(true) => Ok(proof),
            Ok(false) => Err(ProofRejection::Replayed.into()),
            Err(cause) => Err(DpopError::Unavailable(cause)),
        }
    }

    /// The challenge's `algs` parameter: the algorithms proofs may use.
    pub fn algs(&self) -> String {
        self.policy
            .algorithms
            .iter()
            .map(|alg| format!("{alg:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A client's ES256 key that signs proofs, for this crate's tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_key {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::PROOF_TYP;

    pub fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    pub struct Key(EcdsaKeyPair);

    impl Key {
        pub fn new() -> Key {
            Key(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
        }

        pub fn jwk(&self) -> Value {
            let point = self.0.public_key().as_ref();
            json!({ "crv": "P-256", "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]) })
        }

        pub fn header(&self) -> Value {
            json!({ "typ": PROOF_TYP, "alg": "ES256", "jwk": self.jwk() })
        }

        pub fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!("{}.{}", b64(header), b64(claims));
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let signature = self.0.sign(&rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::test_key::{b64, Key};
    use super::*;

    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://api.example.com/api/job-list";

    fn claims() -> Value {
        json!({ "jti": "one", "htm": "GET", "htu": URL, "iat": NOW, "ath": token_hash("token") })
    }

    fn check(proof: &str) -> Result<Proof, ProofRejection> {
        let target = ProofTarget {
            method: "GET",
            uri: URL,
            access_token: Some("token"),
        };
        check_proof(proof, &target, &DpopPolicy::default(), NOW)
    }

    #[test]
    fn each_proof_check_refuses_with_its_own_reason() {
        let key = Key::new();
        let with = |change: &dyn Fn(&mut Value, &mut Value)| {
            let (mut header, mut claims) = (key.header(), claims());
            change(&mut header, &mut claims);
            key.sign(&header, &claims)
        };
        let good = check(&with(&|_, _| {})).unwrap();
        assert_eq!(good.jti, "one");
        let jwk: Jwk = serde_json::from_value(key.jwk()).unwrap();
        assert_eq!(good.jkt, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());

        let other = Key::new();
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_jwk = json!({ "crv": "Ed25519", "kty": "OKP",
            "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()) });
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({ "typ": PROOF_TYP, "alg": "none", "jwk": key.jwk() })),
            b64(&claims())
        );
        let mut tampered = with(&|_, _| {}).into_bytes();
        let middle = tampered.len() - 20;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let cases: Vec<(&str, String, ProofRejection)> = vec![
            (
                "too long",
                "a".repeat(MAX_PROOF_LEN + 1),
                ProofRejection::Oversized,
            ),
            ("not a JWT", "not a proof".into(), ProofRejection::Malformed),
            (
                "typ",
                with(&|h, _| h["typ"] = "JWT".into()),
                ProofRejection::WrongType,
            ),
            ("alg none", unsigned, ProofRejection::Algorithm),
            (
                "HS256",
                with(&|h, _| h["alg"] = "HS256".into()),
                ProofRejection::Algorithm,
            ),
            (
                "ES384, not allowed",
                with(&|h, _| h["alg"] = "ES384".into()),
                ProofRejection::Algorithm,
            ),
            (
                "no jwk",
                with(&|h, _| {
                    h.as_object_mut().unwrap().remove("jwk");
                }),
                ProofRejection::NoKey,
            ),
            (
                "private member",
                with(&|h, _| h["jwk"]["d"] = "c2VjcmV0".into()),
                ProofRejection::PrivateKey,
            ),
            (
                "symmetric key",
                with(&|h, _| h["jwk"] = json!({ "kty": "oct", "k": "c2VjcmV0" })),
                ProofRejection::PrivateKey,
            ),
            (
                "EdDSA key for ES256",
                with(&|h, _| h["jwk"] = ed_jwk.clone()),
                ProofRejection::NoKey,
            ),
            (
                "another key's jwk",
                with(&|h, _| h["jwk"] = other.jwk()),
                ProofRejection::BadSignature,
            ),
            (
                "tampered",
                String::from_utf8(tampered).unwrap(),
                ProofRejection::BadSignature,
            ),
            (
                "no jti",
                with(&|_, c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                ProofRejection::Malformed,
            ),
            (
                "empty jti",
                with(&|_, c| c["jti"] = "".into()),
                ProofRejection::Malformed,
            ),
            (
                "long jti",
                with(&|_, c| c["jti"] = "j".repeat(257).into()),
                ProofRejection::Malformed,
            ),
            (
                "fractional iat",
                with(&|_, c| c["iat"] = json!(NOW as f64 + 0.5)),
                ProofRejection::Malformed,
            ),
            (
                "htm",
                with(&|_, c| c["htm"] = "get".into()),
                ProofRejection::WrongMethod,
            ),
            (
                "htu path",
                with(&|_, c| c["htu"] = "https://api.example.com/api/other".into()),
                ProofRejection::WrongUri,
            ),
            (
                "htu scheme",
                with(&|_, c| c["htu"] = "http://api.example.com/api/job-list".into()),
                ProofRejection::WrongUri,
            ),
            (
                "htu relative",
                with(&|_, c| c["htu"] = "/api/job-list".into()),
                ProofRejection::WrongUri,
            ),
            (
                "iat 61 s old",
                with(&|_, c| c["iat"] = (NOW - 61).into()),
                ProofRejection::Stale,
            ),
            (
                "iat 61 s ahead",
                with(&|_, c| c["iat"] = (NOW + 61).into()),
                ProofRejection::Stale,
            ),
            (
                "exp past, beyond the leeway",
                with(&|_, c| c["exp"] = (NOW - 60).into()),
                ProofRejection::Stale,
            ),
            (
                "nbf ahead, beyond the leeway",
                with(&|_, c| c["nbf"] = (NOW + 61).into()),
                ProofRejection::Stale,
            ),
            (
                "ath",
                with(&|_, c| c["ath"] = token_hash("other").into()),
                ProofRejection::WrongTokenHash,
            ),
            (
                "no ath",
                with(&|_, c| {
                    c.as_object_mut().unwrap().remove("ath");
                }),
                ProofRejection::WrongTokenHash,
            ),
        ];
        for (name, proof, expected) in cases {
            assert_eq!(check(&proof), Err(expected), "{name}");
        }
        // The edges of the window are inside it.
        for iat in [NOW - 60, NOW + 60] {
            assert!(check(&with(&|_, c| c["iat"] = iat.into())).is_ok(), "{iat}");
        }
        assert!(check(&with(&|_, c| c["exp"] = (NOW - 59).into())).is_ok());
        assert!(check(&with(&|_, c| c["nbf"] = (NOW + 60).into())).is_ok());
    }

    fn target() -> ProofTarget<'static> {
        ProofTarget {
            method: "GET",
            uri: URL,
            access_token: Some("token"),
        }
    }

    /// A proof by `key` made at `iat`, with its own `jti`.
    fn proof_at(key: &Key, jti: &str, iat: i64) -> String {
        let mut claims = claims();
        claims["jti"] = jti.into();
        claims["iat"] = iat.into();
        key.sign(&key.header(), &claims)
    }

    #[tokio::test]
    async fn a_proof_is_a_replay_until_it_is_stale_and_no_longer() {
        let key = Key::new();
        let cache = Arc::new(ReplayCache::new(100));
        let dpop = Dpop::new(DpopPolicy::default()).with_replays(cache.clone());
        let proof = proof_at(&key, "once", NOW);
        assert!(dpop.check(&proof, &target(), NOW).await.is_ok());
        assert!(matches!(
            dpop.check(&proof, &target(), NOW + 60).await,
            Err(DpopError::Rejected(ProofRejection::Replayed))
        ));
        assert!(matches!(
            dpop.check(&proof, &target(), NOW + 61).await,
            Err(DpopError::Rejected(ProofRejection::Stale))
        ));
        // Stale, it is no longer remembered: the next proof finds it forgotten.
        let next = proof_at(&key, "next", NOW + 61);
        assert!(dpop.check(&next, &target(), NOW + 61).await.is_ok());
        assert_eq!(cache.len(), 1);
        // A first use in a proof's last fresh second is accepted, and remembered.
        let late = Dpop::new(DpopPolicy::default());
        let last = proof_at(&key, "last", NOW);
        assert!(late.check(&last, &target(), NOW + 60).await.is_ok());
        assert!(matches!(
            late.check(&last, &target(), NOW + 60).await,
            Err(DpopError::Rejected(ProofRejection::Replayed))
        ));
        // A proof from the future is remembered until it is stale by its own `iat`.
        let ahead = proof_at(&key, "ahead", NOW + 121);
        assert!(dpop.check(&ahead, &target(), NOW + 61).await.is_ok());
        assert!(matches!(
            dpop.check(&ahead, &target(), NOW + 181).await,
            Err(DpopError::Rejected(ProofRejection::Replayed))
        ));
    }

    #[tokio::test]
    async fn a_steady_rate_of_proofs_needs_only_a_minute_of_memory() {
        // 10 proofs a second for five minutes: each is remembered for its 61 s, so 700 places
        // are enough, and none is refused for want of room.
        let key = Key::new();
        let cache = Arc::new(ReplayCache::new(700));
        let dpop = Dpop::new(DpopPolicy::default()).with_replays(cache.clone());
        for second in 0..300 {
            for n in 0..10 {
                let now = NOW + second;
                let proof = proof_at(&key, &format!("{second}-{n}"), now);
                let checked = dpop.check(&proof, &target(), now).await;
                assert!(checked.is_ok(), "{second}: {checked:?}");
            }
        }
        // The last 61 seconds' proofs, exactly.
        assert_eq!(cache.len(), 610);
    }

    #[tokio::test]
    async fn a_nonce_challenge_reads_the_claims_before_any_other_check() {
        let key = Key::new();
        let without = Dpop::new(DpopPolicy::default());
        let proof = proof_at(&key, "one", NOW);
        assert_eq!(
            without.nonce_challenge(&proof, NOW),
            None,
            "nonces not asked for"
        );

        let dpop = Dpop::new(DpopPolicy::default())
            .with_nonces(Nonces::new(&[1; 32], Duration::from_secs(300)));
        let nonce = dpop.nonce(NOW).unwrap();
        assert_eq!(dpop.nonce_challenge(&proof, NOW), Some(nonce.clone()));
        let with = |nonce: &str| {
            let mut claims = claims();
            claims["nonce"] = nonce.into();
            key.sign(&key.header(), &claims)
        };
        assert_eq!(dpop.nonce_challenge(&with(&nonce), NOW), None);
        assert_eq!(
            dpop.nonce_challenge(&with("made-up"), NOW),
            Some(nonce.clone())
        );
        // Unreadable claims are for the full check to refuse as malformed.
        assert_eq!(dpop.nonce_challenge("not a proof", NOW), None);
        // Nor are oversized ones read at all.
        let oversized = format!("{proof}{}", "A".repeat(MAX_PROOF_LEN));
        assert_eq!(dpop.nonce_challenge(&oversized, NOW), None);
        // The signature is not looked at: a forged proof gets a nonce (anyone may), and one
        // carrying the nonce is then refused by the full check.
        let forged = |claims: &Value| {
            let mut proof = key.sign(&key.header(), claims).into_bytes();
            let middle = proof.len() - 20;
            proof[middle] = if proof[middle] == b'A' { b'B' } else { b'A' };
            String::from_utf8(proof).unwrap()
        };
        assert_eq!(
            dpop.nonce_challenge(&forged(&claims()), NOW),
            Some(nonce.clone())
        );
        let mut with_nonce = claims();
        with_nonce["nonce"] = nonce.clone().into();
        let forged = forged(&with_nonce);
        assert_eq!(dpop.nonce_challenge(&forged, NOW), None);
        assert!(matches!(
            dpop.check(&forged, &target(), NOW).await,
            Err(DpopError::Rejected(ProofRejection::BadSignature))
        ));
    }

    #[tokio::test]
    async fn a_proof_is_used_once_and_a_nonce_is_asked_for_when_configured() {
        let key = Key::new();
        let target = ProofTarget {
            method: "GET",
            uri: URL,
            access_token: Some("token"),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut fresh = claims();
        fresh["iat"] = now.into();
        let proof = key.sign(&key.header(), &fresh);
        let dpop = Dpop::new(DpopPolicy::default());
        assert!(dpop.check(&proof, &target, now).await.is_ok());
        assert!(matches!(
            dpop.check(&proof, &target, now).await,
            Err(DpopError::Rejected(ProofRejection::Replayed))
        ));

        let nonces = Dpop::new(DpopPolicy::default())
            .with_nonces(Nonces::new(&[1; 32], Duration::from_secs(300)));
        let Err(DpopError::UseNonce(nonce)) = nonces.check(&proof, &target, now).await else {
            panic!("a nonce is asked for");
        };
        fresh["nonce"] = nonce.into();
        fresh["jti"] = "two".into();
        let with_nonce = key.sign(&key.header(), &fresh);
        assert!(nonces.check(&with_nonce, &target, now).await.is_ok());
    }

    #[test]
    fn htu_compares_without_query_fragment_case_or_default_port() {
        let same = [
            (
                "https://api.example.com/jobs",
                "https://api.example.com/jobs",
            ),
            (
                "HTTPS://API.example.com:443/jobs?x=1#y",
                "https://api.example.com/jobs",
            ),
            ("http://localhost:80", "http://localhost/"),
            ("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/a"),
        ];
        for (a, b) in same {
            assert_eq!(normalized_uri(a), normalized_uri(b), "{a} {b}");
        }
        let different = [
            (
                "https://api.example.com/jobs",
                "http://api.example.com/jobs",
            ),
            (
                "https://api.example.com/jobs",
                "https://api.example.com/Jobs",
            ),
            (
                "https://api.example.com:8443/jobs",
                "https://api.example.com/jobs",
            ),
        ];
        for (a, b) in different {
            assert_ne!(normalized_uri(a), normalized_uri(b), "{a} {b}");
        }
        for bad in ["/jobs", "ftp://x/y", "https://", "https://user@host/x", ""] {
            assert_eq!(normalized_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // The example of RFC 7638, section 3.1.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn nonces_last_two_periods_and_cannot_be_made_up() {
        let nonces = Nonces::new(&[7; 32], Duration::from_secs(300));
        let now = 1_800_000_000;
        let nonce = nonces.current(now);
        assert!(nonces.accepts(&nonce, now));
        assert!(nonces.accepts(&nonce, now + 300));
        assert!(!nonces.accepts(&nonce, now + 600));
        assert!(
            !nonces.accepts(&nonce, now - 300),
            "not before it was given out"
        );
        let other = Nonces::new(&[8; 32], Duration::from_secs(300));
        assert!(!other.accepts(&nonce, now), "another secret");
        let mut tampered = nonce.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(!nonces.accepts(std::str::from_utf8(&tampered).unwrap(), now));
        assert!(!nonces.accepts("", now));
    }

    #[test]
    fn the_replay_cache_remembers_until_forgetting_time_and_refuses_when_full() {
        let cache = ReplayCache::new(2);
        assert!(cache.first_use_at([1; 32], 100, 10).unwrap());
        assert!(!cache.first_use_at([1; 32], 100, 50).unwrap());
        // Past its time the key may be used again.
        assert!(cache.first_use_at([1; 32], 300, 100).unwrap());
        assert!(cache.first_use_at([2; 32], 300, 100).unwrap());
        // Full of live keys: refused rather than forgetting one.
        assert!(cache.first_use_at([3; 32], 300, 150).is_err());
        // Once they expire, there is room again, and what expired is gone.
        assert!(cache.first_use_at([3; 32], 500, 300).unwrap());
        assert_eq!(cache.len(), 1);
        assert!(!cache.first_use_at([3; 32], 500, 400).unwrap());
    }

    #[test]
    fn the_replay_cache_forgets_by_time_whatever_the_order_of_arrival() {
        let cache = ReplayCache::new(10);
        // A proof dated ahead comes first, and is forgotten last.
        assert!(cache.first_use_at([1; 32], 220, 100).unwrap());
        assert!(cache.first_use_at([2; 32], 160, 100).unwrap());
        assert!(cache.first_use_at([3; 32], 400, 161).unwrap());
        assert_eq!(
            cache.len(),
            2,
            "the second key is gone, though the first is not"
        );
        // A check whose clock was read before that comes too late to tell: refused.
        assert!(!cache.first_use_at([2; 32], 160, 159).unwrap());
        assert!(!cache.first_use_at([4; 32], 161, 160).unwrap());
        assert!(cache.first_use_at([1; 32], 500, 220).unwrap());
    }
}
