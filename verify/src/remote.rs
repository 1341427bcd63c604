//! A verifier for a resource server: the keys come from Tollgate's JWKS, the revoked sessions
//! from its revocation feed, both over HTTP in a background task.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use headers::{CacheControl, HeaderMapExt};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::check::{Keys, LeewayTooLong, Policy};
use crate::dpop::{Dpop, DpopPolicy, Replays};
use crate::verifier::{BoxFuture, Cause, KeySource, Verifier};
use crate::FEED_PAGE;

/// How long the keys are kept when the JWKS answer says nothing about caching.
const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(300);
/// Bounds on the JWKS answer's `max-age`: not refetched more often, never kept longer.
const KEYS_MAX_AGE_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// How long past a token lifetime a revocation is kept: clocks differ a little.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// Where Tollgate is and what its tokens say: start from [`RemoteConfig::new`] and set what
/// differs (settings may be added, so it cannot be written out whole).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// Tollgate's base URL, e.g. `https://auth.example.com`.
    pub base_url: String,
    /// `TOLLGATE_ISSUER` (default `tollgate`).
    pub issuer: String,
    /// `TOLLGATE_AUDIENCE` (default `tollgate-api`).
    pub audience: String,
    /// `TOLLGATE_JWT_ALG` (default EdDSA). HS256 has no JWKS: use [`Verifier`] with the secret.
    pub algorithm: Algorithm,
    /// Allowance for clock differences on `exp` and `nbf`, at most 5 s (default none).
    pub leeway: Duration,
    /// How often the revocation feed is read (default 1 s).
    pub poll: Duration,
    /// The longest `TOLLGATE_ACCESS_TTL` to expect: revocations are kept this long (and as
    /// long as the longest-lived token seen). Default one day, Tollgate's maximum, so that no
    /// setting of the server can outlive them; set it to the server's (15 min by default) to
    /// hold fewer.
    pub access_lifetime: Duration,
    /// Refuse tokens (503) while the feed was last read longer ago than this. Default `None`:
    /// while Tollgate is unreachable, tokens keep working and the staleness is reported.
    /// Tokens are always refused until the feed has been read once.
    pub max_revocation_staleness: Option<Duration>,
    /// Timeout of each request to Tollgate (default 5 s).
    pub request_timeout: Duration,
    /// This API's own origin (`https://api.example.com`) as clients call it, which DPoP proofs
    /// name in `htu`; needed behind a proxy. Default: the request's scheme and `Host`.
    pub dpop_origin: Option<String>,
    /// Refuse tokens that are not bound to a DPoP key (default: bound tokens need their proof,
    /// unbound ones are accepted as bearer tokens).
    pub dpop_required: bool,
    /// Where used DPoP proofs are remembered: this process by default. Instances of one API
    /// should share a store (Redis, a database), so that a proof used at one is a replay at
    /// the others.
    pub dpop_replays: Option<Arc<dyn Replays>>,
}

impl RemoteConfig {
    /// Tollgate's defaults, at `base_url`.
    pub fn new(base_url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            base_url: base_url.into(),
            issuer: "tollgate".into(),
            audience: "tollgate-api".into(),
            algorithm: Algorithm::EdDSA,
            leeway: Duration::ZERO,
            poll: Duration::from_secs(1),
            access_lifetime: Duration::from_secs(24 * 3600),
            max_revocation_staleness: None,
            request_timeout: Duration::from_secs(5),
            dpop_origin: None,
            dpop_required: false,
            dpop_replays: None,
        }
    }
}

/// DPoP proofs as Tollgate checks them (ES256 or EdDSA, 60 s).
fn dpop(config: &RemoteConfig) -> Dpop {
    let mut dpop = Dpop::new(DpopPolicy::default());
    if let Some(replays) = &config.dpop_replays {
        dpop = dpop.with_replays(replays.clone());
    }
    if let Some(origin) = &config.dpop_origin {
        dpop = dpop.with_origin(origin);
    }
    if config.dpop_required {
        dpop = dpop.requiring_bound_tokens();
    }
    dpop
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Leeway(#[from] LeewayTooLong),
    #[error("HS256 publishes no keys: build a Verifier with the secret")]
    NoPublicKeys,
    #[error("the base URL must start with http:// or https://")]
    BadBaseUrl,
    #[error("an https:// URL needs the crate's `rustls-tls` feature")]
    NoTls,
    #[error("the poll interval must be at least 10 ms")]
    BadPoll,
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

/// Starts verifying Tollgate's access tokens: the keys are fetched from the JWKS (again when
/// its `Cache-Control` says so, and on an unknown `kid`), and the revocation feed is read
/// every `poll` by a background task that ends when the verifier is dropped. Nothing is
/// fetched before this returns, so a resource server starts while Tollgate is down: its
/// tokens are answered "unavailable" until Tollgate has been reached once.
///
/// Must be called inside a Tokio runtime.
pub fn remote(config: RemoteConfig) -> Result<Arc<Verifier>, RemoteError> {
    if config.algorithm == Algorithm::HS256 {
        return Err(RemoteError::NoPublicKeys);
    }
    let base = config.base_url.trim_end_matches('/').to_owned();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(RemoteError::BadBaseUrl);
    }
    if base.starts_with("https://") && !cfg!(feature = "rustls-tls") {
        return Err(RemoteError::NoTls);
    }
    if config.poll < Duration::from_millis(10) {
        return Err(RemoteError::BadPoll);
    }
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
        .map_err(RemoteError::Client)?;
    let policy = Policy::new(config.algorithm, &config.issuer, &config.audience)
        .with_leeway(config.leeway)?;
    let jwks = Arc::new(Jwks {
        client: client.clone(),
        url: format!("{base}/.well-known/jwks.json"),
        algorithm: config.algorithm,
        refresh_at: Mutex::new(None),
    });
    let verifier = Arc::new(
        Verifier::new(policy, Keys::new())
            .with_key_source(jwks.clone())
            .requiring_revocations(config.max_revocation_staleness)
            .with_dpop(dpop(&config)),
    );
    let feed = Feed {
        client,
        url: format!("{base}/api/revocations"),
        cursor: None,
    };
    tokio::spawn(follow(Arc::downgrade(&verifier), jwks, feed, config));
    Ok(verifier)
}

/// The JWKS endpoint, and when its answer should be fetched again.
struct Jwks {
    client: reqwest::Client,
    url: String,
    algorithm: Algorithm,
    refresh_at: Mutex<Option<Instant>>,
}

impl Jwks {
    async fn fetch(&self) -> Result<Keys, Cause> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?;
        let max_age = max_age(response.headers());
        let set: JwkSet = response.json().await?;
        let keys = Keys::from_jwks(&set, self.algorithm)?;
        *self
            .refresh_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now() + max_age);
        Ok(keys)
    }

    /// Whether the keys are older than their answer allowed (or were never fetched).
    fn due(&self) -> bool {
        self.refresh_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none_or(|at| Instant::now() >= at)
    }
}

/// How long a JWKS answer may be kept: its `max-age`, within bounds; `no-cache` or `no-store`
/// as soon as allowed.
fn max_age(headers: &http::HeaderMap) -> Duration {
    let (least, most) = KEYS_MAX_AGE_RANGE;
    match headers.typed_get::<CacheControl>() {
        Some(control) if control.no_cache() || control.no_store() => least,
        Some(control) => control
            .max_age()
            .unwrap_or(DEFAULT_KEYS_MAX_AGE)
            .clamp(least, most),
        None => DEFAULT_KEYS_MAX_AGE,
    }
}

/// Shared with the follower task, which fetches again when the answer says so.
impl KeySource for Arc<Jwks> {
    fn fetch(&self) -> BoxFuture<'_, Result<Keys, Cause>> {
        Box::pin(Jwks::fetch(self))
    }
}

/// The revocation feed, and where the next read continues.
struct Feed {
    client: reqwest::Client,
    url: String,
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct FeedPage {
    revoked: Vec<RevokedSession>,
    cursor: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokedSession {
    sid: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    revoked_at: OffsetDateTime,
}

impl Feed {
    /// Reads every revocation after the cursor into `verifier`.
    async fn catch_up(&mut self, verifier: &Verifier) -> Result<(), Cause> {
        loop {
            let mut request = self.client.get(&self.url);
            if let Some(cursor) = &self.cursor {
                request = request.query(&[("after", cursor)]);
            }
            let response = request.send().await?;
            if response.status() == reqwest::StatusCode::BAD_REQUEST {
                // A cursor the server no longer takes: start again from everything relevant.
                self.cursor = None;
            }
            let page: FeedPage = response.error_for_status()?.json().await?;
            let full = page.revoked.len() >= FEED_PAGE;
            verifier
                .revoked_sessions()
                .extend(page.revoked.into_iter().map(|r| (r.sid, r.revoked_at)));
            self.cursor = Some(page.cursor);
            if !full {
                verifier.revoked_sessions().mark_caught_up();
                return Ok(());
            }
        }
    }
}

/// Keeps the keys and the revocations current until the verifier is dropped.
async fn follow(verifier: Weak<Verifier>, jwks: Arc<Jwks>, mut feed: Feed, config: RemoteConfig) {
    // Reported once each way, not on every poll.
    let stale_after = (5 * config.poll).max(Duration::from_secs(5));
    let mut reported_stale = false;
    let mut interval = tokio::time::interval(config.poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(verifier) = verifier.upgrade() else {
            return;
        };
        if jwks.due() {
            if let Err(error) = verifier.reload_keys().await {
                tracing::debug!(error = &*error, url = %jwks.url, "keys not fetched; retrying");
            }
        }
        if let Err(error) = feed.catch_up(&verifier).await {
            tracing::debug!(error = &*error, url = %feed.url, "revocations not read; retrying");
        }
        let keep_for = config
            .access_lifetime
            .max(verifier.longest_token_lifetime())
            + CLOCK_MARGIN;
        let held = verifier
            .revoked_sessions()
            .prune(OffsetDateTime::now_utc() - keep_for);
        metrics::gauge!("tollgate_verify_revoked_sessions_held").set(held as f64);
        let staleness = verifier.revocations_staleness();
        if let Some(staleness) = staleness {
            metrics::gauge!("tollgate_verify_revocations_staleness_seconds")
                .set(staleness.as_secs_f64());
        }
        let stale = staleness.is_none_or(|staleness| staleness > stale_after);
        if stale && !reported_stale {
            tracing::warn!(
                url = %feed.url,
                staleness_seconds = staleness.map(|s| s.as_secs()),
                "the revocation feed cannot be read: tokens of sessions revoked meanwhile are not refused"
            );
        } else if !stale && reported_stale {
            tracing::info!(url = %feed.url, "the revocation feed is read again");
        }
        reported_stale = stale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::test_key::Key;
    use crate::dpop::{DpopError, ProofRejection, ProofTarget, ReplayCache};

    fn cache_control(value: &str) -> Duration {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CACHE_CONTROL, value.parse().expect("header"));
        max_age(&headers)
    }

    #[test]
    fn the_jwks_is_kept_as_long_as_its_answer_allows_within_bounds() {
        assert_eq!(cache_control("public, max-age=60"), Duration::from_secs(60));
        assert_eq!(cache_control("max-age=0"), Duration::from_secs(1));
        assert_eq!(cache_control("no-store"), Duration::from_secs(1));
        assert_eq!(
            cache_control("no-cache, max-age=600"),
            Duration::from_secs(1)
        );
        assert_eq!(
            cache_control("max-age=9999999"),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(cache_control("public"), DEFAULT_KEYS_MAX_AGE);
        assert_eq!(max_age(&http::HeaderMap::new()), DEFAULT_KEYS_MAX_AGE);
    }

    #[tokio::test]
    async fn instances_given_one_replay_store_see_each_others_proofs() {
        let shared: Arc<dyn Replays> = Arc::new(ReplayCache::new(16));
        let mut config = RemoteConfig::new("http://tollgate.test");
        config.dpop_replays = Some(shared);
        let (one, two) = (dpop(&config), dpop(&config));
        let key = Key::new();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let uri = "http://api.test/me";
        let claims = serde_json::json!({ "jti": "once", "htm": "GET", "htu": uri, "iat": now });
        let proof = key.sign(&key.header(), &claims);
        let target = ProofTarget {
            method: "GET",
            uri,
            access_token: None,
        };
        assert!(one.check(&proof, &target, now).await.is_ok());
        assert!(matches!(
            two.check(&proof, &target, now).await,
            Err(DpopError::Rejected(ProofRejection::Replayed))
        ));
    }
}
