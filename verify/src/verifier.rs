//! A verifier that holds keys, remembers tokens it verified, knows revoked sessions, and
//! fetches keys it does not hold yet.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::cache::{Cached, VerifiedCache};
use crate::check::{check, Keys, Policy, Rejection};
use crate::dpop::Dpop;
use crate::revoked::RevokedSessions;
use crate::{AccessClaims, ACCESS_TYP};

/// The error underneath, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;
/// What [`KeySource::fetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a verifier gets its keys when it meets a key id it does not hold.
pub trait KeySource: Send + Sync {
    /// The keys in force now.
    fn fetch(&self) -> BoxFuture<'_, Result<Keys, Cause>>;
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable: answer 401.
    #[error("token rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The token names a key we do not hold, and the keys could not be fetched: "not now"
    /// rather than "no" (answer 503), so that nobody is signed out over an outage.
    #[error("the signing keys could not be fetched")]
    KeysUnavailable,
    /// The revocation feed has not been read (recently enough, when a bound is set): answer
    /// 503 rather than accept a token whose session may have been revoked.
    #[error("the revocations have not been read recently enough")]
    RevocationsStale,
    /// DPoP replays could not be checked (a shared store is down): answer 503.
    #[error("DPoP replays could not be checked")]
    ReplaysUnavailable(#[source] Cause),
}

/// At most one key fetch per this interval because of an unknown `kid`: a token from a key
/// rotated in elsewhere is verified at once, a stream of made-up kids costs little.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Checks access tokens as Tollgate does, and refuses those of revoked sessions.
pub struct Verifier {
    policy: Policy,
    /// Leeway in whole seconds, for the cache's expiry check.
    leeway: i64,
    keys: RwLock<Arc<Keys>>,
    source: Option<Box<dyn KeySource>>,
    verified: VerifiedCache,
    revoked: Arc<RevokedSessions>,
    /// `Some` when tokens are refused until the revocations have been read: with a bound on
    /// how long ago, or none.
    revocations_required: Option<Option<Duration>>,
    /// The longest lifetime (`exp - iat`) of a token verified: revocations are kept that long.
    longest_lifetime: AtomicI64,
    /// When the last fetch for an unknown `kid` ran, and whether it succeeded. Callers wait
    /// here for a fetch in progress, then verify again.
    last_unknown_kid_reload: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// One fetch at a time, so that a slower one cannot install an older key set.
    reloading: tokio::sync::Mutex<()>,
    /// DPoP proofs for bound tokens; without it, bound tokens are refused.
    dpop: Option<Dpop>,
}

impl Verifier {
    /// A verifier of `policy` holding `keys` (possibly none yet).
    pub fn new(policy: Policy, keys: Keys) -> Verifier {
        let leeway = i64::try_from(policy.leeway_secs()).unwrap_or(0);
        Verifier {
            policy,
            leeway,
            keys: RwLock::new(Arc::new(keys)),
            source: None,
            verified: VerifiedCache::new(),
            revoked: Arc::new(RevokedSessions::new()),
            revocations_required: None,
            longest_lifetime: AtomicI64::new(0),
            last_unknown_kid_reload: tokio::sync::Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            dpop: None,
        }
    }

    /// Accepts tokens bound to a key (DPoP) with a proof by that key, checked by `dpop`.
    pub fn with_dpop(mut self, dpop: Dpop) -> Verifier {
        self.dpop = Some(dpop);
        self
    }

    /// How DPoP proofs are checked, when they are.
    pub fn dpop(&self) -> Option<&Dpop> {
        self.dpop.as_ref()
    }

    /// Fetches keys from `source` on an unknown `kid` (at most once a second) and on
    /// [`Verifier::reload_keys`].
    pub fn with_key_source(mut self, source: impl KeySource + 'static) -> Verifier {
        self.source = Some(Box::new(source));
        self
    }

    /// Refuses tokens ([`VerifyError::RevocationsStale`]) until the revocations have been read
    /// once, and, with `max_staleness`, whenever they were last read longer ago than that.
    pub fn requiring_revocations(mut self, max_staleness: Option<Duration>) -> Verifier {
        self.revocations_required = Some(max_staleness);
        self
    }

    /// The revoked sessions this verifier refuses; whoever follows revocations adds to them.
    pub fn revoked_sessions(&self) -> &Arc<RevokedSessions> {
        &self.revoked
    }

    /// How long ago every revocation had been read; `None` before the first time.
    pub fn revocations_staleness(&self) -> Option<Duration> {
        self.revoked.staleness()
    }

    /// The longest lifetime of the tokens verified so far (zero before the first).
    pub fn longest_token_lifetime(&self) -> Duration {
        let seconds = self.longest_lifetime.load(Ordering::Relaxed);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    /// The keys held now.
    pub fn keys(&self) -> Arc<Keys> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the keys. Tokens verified with a key that went away are verified again.
    pub fn set_keys(&self, keys: Keys) {
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_kids = current.same_kids_as(&keys);
        *current = Arc::new(keys);
        if !same_kids {
            self.verified.keys_changed();
        }
    }

    /// Fetches the keys from the key source now (nothing without one).
    pub async fn reload_keys(&self) -> Result<(), Cause> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let _one_at_a_time = self.reloading.lock().await;
        let keys = source.fetch().await?;
        self.set_keys(keys);
        Ok(())
    }

    /// Fetches the keys after a token named a `kid` we do not hold, at most once per
    /// `UNKNOWN_KID_RELOAD_INTERVAL`; within it, callers get the last fetch's outcome.
    async fn reload_for_unknown_kid(&self) -> Result<(), VerifyError> {
        if self.source.is_none() {
            return Err(Rejection::UnknownKey.into());
        }
        let mut last = self.last_unknown_kid_reload.lock().await;
        if let Some((at, succeeded)) = *last {
            if at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL {
                return if succeeded {
                    Ok(())
                } else {
                    Err(VerifyError::KeysUnavailable)
                };
            }
        }
        let reloaded = self.reload_keys().await;
        *last = Some((Instant::now(), reloaded.is_ok()));
        reloaded.map_err(|error| {
            tracing::warn!(error = &*error, "key fetch after an unknown kid failed");
            VerifyError::KeysUnavailable
        })
    }

    /// Verifies an access token and refuses it if its session was revoked; a `kid` not held
    /// yet makes the verifier fetch the keys (at most once a second).
    ///
    /// A token bound to a DPoP key ([`AccessClaims::bound_key`]) is returned like any other:
    /// it must not be accepted without a proof by that key, which
    /// [`axum::authenticate`](crate::axum::authenticate) checks.
    pub async fn verify_access(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        match self.verify_access_now(token) {
            Err(VerifyError::Rejected(Rejection::UnknownKey)) => {
                self.reload_for_unknown_kid().await?;
                self.verify_access_now(token)
            }
            other => other,
        }
    }

    /// Verifies an access token with the keys held now, from the cache when it can.
    pub fn verify_access_now(&self, token: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = match self.verified.get(token, now - self.leeway) {
            Cached::Valid(claims) => claims,
            Cached::Expired => return Err(Rejection::Expired.into()),
            Cached::Unknown => {
                let epoch = self.verified.epoch();
                let claims = Arc::new(check::<AccessClaims>(
                    token,
                    ACCESS_TYP,
                    &self.policy,
                    &self.keys(),
                )?);
                self.longest_lifetime
                    .fetch_max(claims.exp - claims.iat, Ordering::Relaxed);
                self.verified.insert(token, claims.clone(), epoch);
                claims
            }
        };
        if self.revoked.contains(claims.sid) {
            return Err(Rejection::Revoked.into());
        }
        if let Some(max_staleness) = self.revocations_required {
            let fresh = self
                .revoked
                .staleness()
                .is_some_and(|staleness| max_staleness.is_none_or(|max| staleness <= max));
            if !fresh {
                return Err(VerifyError::RevocationsStale);
            }
        }
        Ok(claims)
    }

    /// Verifies a token of another type (`typ` header) with the same checks, without the
    /// cache or revocations; fetches the keys on an unknown `kid` like `verify_access`.
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<T, VerifyError> {
        match self.verify_now(token, typ) {
            Err(VerifyError::Rejected(Rejection::UnknownKey)) => {
                self.reload_for_unknown_kid().await?;
                self.verify_now(token, typ)
            }
            other => other,
        }
    }

    /// `verify` with the keys held now.
    pub fn verify_now<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<T, VerifyError> {
        Ok(check(token, typ, &self.policy, &self.keys())?)
    }
}
