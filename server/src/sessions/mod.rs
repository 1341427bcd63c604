//! Sign-in, refresh rotation with reuse detection, and sign-out (docs/api.md, "Sessions").
//! The rules are plain functions (`refresh::decide`, `SessionLimit::sessions_to_revoke`, the
//! sign-in budgets in `throttle`); `Sessions` and `LoginLimiter` run them against the store.

mod limit;
mod refresh;
mod revocations;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Audit, Client, Event};
use crate::store::{RevocationCursor, Session, SignInCheck, Store, StoreError, User};
use crate::tokens::{TokenError, Tokens};
use crate::users::{Passwords, UserError, MAX_PASSWORD_BYTES};
use refresh::RefreshDecision;
use tollgate_verify::dpop::{Dpop, DpopError, Proof, ProofRejection, ProofTarget};

pub use limit::{SessionLimit, SessionLimitPolicy};
pub use revocations::{feed_overlap, RevocationPage, Revocations, FEED_PAGE};
pub use throttle::LoginLimiter;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("a device fingerprint is required")]
    FingerprintRequired,
    #[error("a DPoP proof is required")]
    DpopRequired,
    /// The proof lacks the server nonce: the client signs again with this one.
    #[error("a DPoP nonce is required")]
    DpopNonce(String),
    #[error("DPoP replays could not be checked")]
    DpopUnavailable(#[source] tollgate_verify::Cause),
    #[error("refresh refused: {0}")]
    RefreshDenied(DenyReason),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    User(#[from] UserError),
}

/// Why a refresh was refused; the client only ever sees 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    InvalidToken,
    UnknownSession,
    SessionEnded,
    FingerprintMismatch,
    /// A session bound to a DPoP key, refreshed without a proof by that key.
    DpopKeyMismatch,
    /// An unbound session while DPoP is required.
    DpopRequired,
    Reused,
    AheadOfStore,
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DenyReason::InvalidToken => "invalid token",
            DenyReason::UnknownSession => "unknown session",
            DenyReason::SessionEnded => "session revoked or expired",
            DenyReason::FingerprintMismatch => "fingerprint mismatch",
            DenyReason::DpopKeyMismatch => "no DPoP proof by the session's key",
            DenyReason::DpopRequired => "an unbound session while DPoP is required",
            DenyReason::Reused => "refresh token reused; session revoked",
            DenyReason::AheadOfStore => "refresh token newer than the store",
        })
    }
}

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub refresh_expires_at: OffsetDateTime,
    /// Bound to a DPoP key: `tokenType` says `DPoP`.
    pub bound: bool,
}

/// How a successful refresh came about, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    Rotated,
    /// The previous generation within the grace window: a fresh pair, no rotation.
    Grace,
}

/// The two kinds of token, as RFC 7009 and RFC 7662 name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// An active token, as introspection describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub kind: TokenKind,
    pub sub: Uuid,
    pub sid: Uuid,
    /// Access tokens only.
    pub username: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
    /// The DPoP key the token is bound to (RFC 9449 §6.2): a resource server must ask for a
    /// proof by it.
    pub jkt: Option<String>,
}

/// A DPoP proof as a request carried it: the proof (or why it could not be read), and the
/// method and URI it must be for.
#[derive(Debug, Clone)]
pub struct ProofRequest {
    pub proof: Result<String, ProofRejection>,
    pub method: String,
    pub htu: String,
}

impl ProofRequest {
    /// Every check of `dpop`, the replay included.
    pub async fn check(&self, dpop: &Dpop, now: i64) -> Result<Proof, DpopError> {
        let proof = self.proof.as_deref().map_err(|reason| *reason)?;
        let target = ProofTarget {
            method: &self.method,
            uri: &self.htu,
            access_token: None,
        };
        dpop.check(proof, &target, now).await
    }
}

/// How a device identifies itself at a refresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub fingerprint: Option<&'a str>,
    /// The thumbprint of the key of a valid DPoP proof sent with the refresh.
    pub dpop_jkt: Option<&'a str>,
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub fingerprint: Option<String>,
    pub client: Client,
    /// The thumbprint of the key of the sign-in's DPoP proof: the session is bound to it.
    pub dpop_jkt: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub refresh_ttl: Duration,
    pub max_age: Duration,
    pub reuse_grace: Duration,
    pub limit: SessionLimit,
    pub require_fingerprint: bool,
    /// Sessions must be bound to a DPoP key.
    pub require_dpop: bool,
}

pub struct Sessions {
    store: Arc<dyn Store>,
    tokens: Arc<Tokens>,
    passwords: Arc<Passwords>,
    policy: SessionPolicy,
    revocations: Revocations,
    audit: Audit,
}

impl Sessions {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<Tokens>,
        passwords: Arc<Passwords>,
        policy: SessionPolicy,
        access_lifetime: Duration,
        db_timeout: Duration,
        audit: Audit,
    ) -> Self {
        let revocations = Revocations::new(
            access_lifetime,
            feed_overlap(db_timeout),
            tokens.verifier().revoked_sessions().clone(),
        );
        Sessions {
            store,
            tokens,
            passwords,
            policy,
            revocations,
            audit,
        }
    }

    /// Reads revocations made elsewhere (other instances, the command line).
    pub async fn catch_up_revocations(&self) -> Result<(), AuthError> {
        Ok(self.revocations.catch_up(self.store.as_ref()).await?)
    }

    /// How long ago every revocation in the store was last read; None before the first time.
    pub fn revocations_staleness(&self) -> Option<Duration> {
        self.revocations.staleness()
    }

    /// One page of the revocation feed after `after`.
    pub async fn revocation_feed(
        &self,
        after: Option<RevocationCursor>,
        now: OffsetDateTime,
    ) -> Result<RevocationPage, AuthError> {
        Ok(self
            .revocations
            .page(self.store.as_ref(), after, now)
            .await?)
    }

    /// This instance revoked `sessions` at `at`: their access tokens are refused from the
    /// next request on (other instances learn it from the store).
    pub fn revoked(&self, sessions: &[Uuid], at: OffsetDateTime) {
        for &sid in sessions {
            self.revocations.insert(sid, at);
        }
    }

    pub async fn login(
        &self,
        username: &str,
        password: String,
        device: Device,
        now: OffsetDateTime,
    ) -> Result<(User, TokenPair), AuthError> {
        self.check_device(&device)?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let found = self.store.find_user_by_username(username).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let verified = self.passwords.verify(password, hash.clone()).await?;
        let user = match user {
            // A disabled account answers as a wrong password would, after the same work.
            Some(user) if verified && user.disabled_at.is_none() => user,
            found => {
                let event = Event::new("login", "failed");
                let event = match &found {
                    Some(user) => event.user(user).detail(if verified {
                        "account disabled"
                    } else {
                        "wrong password"
                    }),
                    // Not the name as typed: it may be a password typed in the wrong field.
                    None => event.detail("unknown user"),
                };
                self.audit.record(event, &device.client).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        let client = device.client.clone();
        let checked = hash.as_deref().map(|password_hash| SignInCheck {
            password_hash,
            roles: &user.roles,
        });
        let (pair, session, evicted) = self.open_session(&user, device, now, checked).await?;
        let mut event = Event::new("login", "ok").user(&user).session(session);
        if evicted > 0 {
            event = event.detail(format!("session limit: {evicted} older sessions revoked"));
        }
        self.audit.record(event, &client).await;
        Ok((user, pair))
    }

    /// Whether a session may start on `device`: bound to a DPoP key when that is required; a
    /// fingerprint, when one is required, unless a DPoP key binds the session instead.
    pub fn check_device(&self, device: &Device) -> Result<(), AuthError> {
        if self.policy.require_dpop && device.dpop_jkt.is_none() {
            return Err(AuthError::DpopRequired);
        }
        if self.policy.require_fingerprint
            && device.fingerprint.is_none()
            && device.dpop_jkt.is_none()
        {
            return Err(AuthError::FingerprintRequired);
        }
        Ok(())
    }

    /// A new session of `user` on `device` (after the session limit), if the user still is as
    /// `checked` found them: its tokens, its id, and how many older sessions the limit revoked.
    pub async fn open_session(
        &self,
        user: &User,
        device: Device,
        now: OffsetDateTime,
        checked: Option<SignInCheck<'_>>,
    ) -> Result<(TokenPair, Uuid, usize), AuthError> {
        self.check_device(&device)?;
        let session = Session {
            id: Uuid::new_v4(),
            user_id: user.id,
            generation: 0,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.policy.refresh_ttl.min(self.policy.max_age),
            revoked_at: None,
            // Kept for a bound session too: it marks the device as known to the sign-in limit.
            // At refresh a DPoP key supersedes it: only the key is checked.
            fingerprint_hash: device.fingerprint.as_deref().map(fingerprint_hash),
            user_agent: device.client.user_agent.map(|ua| truncate(ua, 512)),
            ip: device.client.ip,
            dpop_jkt: device.dpop_jkt,
        };
        let limit = self.policy.limit;
        let at = revocation_time();
        let evicted = match self
            .store
            .create_session(
                &session,
                at,
                &|live| limit.sessions_to_revoke(live),
                checked,
            )
            .await
        {
            // Disabled, deleted, given a new password or stripped of a role while the password
            // was being checked.
            Err(StoreError::InactiveUser) => return Err(AuthError::InvalidCredentials),
            other => other?,
        };
        if !evicted.is_empty() {
            let count = evicted.len();
            tracing::info!(user = %user.id, evicted = count, "session limit reached; older sessions revoked");
            self.revoked(&evicted, at);
        }
        let pair = self.issue_pair(user, &session, now)?;
        Ok((pair, session.id, evicted.len()))
    }

    /// Verifies a refresh token and rotates its session (`refresh::decide` says how), for a
    /// device that sent `fingerprint` and `proof`; the proof is checked only for a session
    /// bound to a key.
    pub async fn refresh(
        &self,
        token: &str,
        fingerprint: Option<&str>,
        proof: Option<&ProofRequest>,
        client: &Client,
        now: OffsetDateTime,
    ) -> Result<(TokenPair, RefreshKind), AuthError> {
        let refreshed = self
            .try_refresh(token, fingerprint, proof, client, now)
            .await;
        if let Err(AuthError::RefreshDenied(reason)) = &refreshed {
            tracing::info!(%reason, "refresh refused");
        }
        refreshed
    }

    async fn try_refresh(
        &self,
        token: &str,
        fingerprint: Option<&str>,
        proof: Option<&ProofRequest>,
        client: &Client,
        now: OffsetDateTime,
    ) -> Result<(TokenPair, RefreshKind), AuthError> {
        let deny = AuthError::RefreshDenied;
        let claims = self
            .tokens
            .verify_refresh(token)
            .await
            .map_err(|error| match error {
                TokenError::KeysUnavailable => AuthError::Token(error),
                _ => deny(DenyReason::InvalidToken),
            })?;
        // Everything the answer needs is loaded before the rotation commits: a failure after
        // it would leave the client holding a token that the store has already moved past.
        let user = self
            .store
            .find_user(claims.sub)
            .await?
            .ok_or(deny(DenyReason::UnknownSession))?;
        // Disabling revoked the sessions; this also covers a refresh that raced with it.
        if user.disabled_at.is_some() {
            return Err(deny(DenyReason::SessionEnded));
        }
        // The key the proof proves, checked once (a proof is used once).
        let mut proven: Option<Option<String>> = None;
        // One retry: losing the compare-and-swap means a concurrent refresh just rotated.
        for _ in 0..2 {
            let session = self
                .store
                .find_session(claims.sid)
                .await?
                .ok_or(deny(DenyReason::UnknownSession))?;
            if session.dpop_jkt.is_some() && proven.is_none() {
                proven = Some(self.proven_key(proof, now).await?);
            }
            let presented = Presented {
                fingerprint,
                dpop_jkt: proven.as_ref().and_then(|key| key.as_deref()),
            };
            match refresh::decide(&claims, &session, &presented, now, &self.policy) {
                RefreshDecision::Rotate { expires_at } => {
                    let rotated_at = self
                        .store
                        .rotate_session(session.id, session.generation, expires_at)
                        .await?;
                    let Some(rotated_at) = rotated_at else {
                        continue;
                    };
                    let rotated = Session {
                        generation: session.generation + 1,
                        rotated_at: Some(rotated_at),
                        expires_at,
                        ..session
                    };
                    return Ok((self.issue_pair(&user, &rotated, now)?, RefreshKind::Rotated));
                }
                RefreshDecision::ReissueCurrent => {
                    return Ok((self.issue_pair(&user, &session, now)?, RefreshKind::Grace));
                }
                RefreshDecision::Deny(reason) => {
                    if reason == DenyReason::AheadOfStore {
                        tracing::warn!(session = %session.id, "refresh token newer than the store; refused, session kept");
                    }
                    return Err(deny(reason));
                }
                RefreshDecision::RevokeForReuse => {
                    let at = revocation_time();
                    self.store.revoke_session(session.id, None, at).await?;
                    self.revoked(&[session.id], at);
                    tracing::warn!(session = %session.id, user = %session.user_id, "refresh token reused; session revoked");
                    let event = Event::new("refresh_reuse", "refused")
                        .user(&user)
                        .session(session.id)
                        .detail("an older refresh token was used; the session is revoked");
                    self.audit.record(event, client).await;
                    return Err(deny(DenyReason::Reused));
                }
            }
        }
        Err(deny(DenyReason::SessionEnded))
    }

    /// The key of a valid proof; none for a missing or refused one (the refresh is then
    /// refused as any other by the wrong device).
    async fn proven_key(
        &self,
        proof: Option<&ProofRequest>,
        now: OffsetDateTime,
    ) -> Result<Option<String>, AuthError> {
        let (Some(request), Some(dpop)) = (proof, self.tokens.verifier().dpop()) else {
            return Ok(None);
        };
        match request.check(dpop, now.unix_timestamp()).await {
            Ok(proof) => Ok(Some(proof.jkt)),
            Err(DpopError::Rejected(reason)) => {
                tracing::info!(%reason, "refresh DPoP proof refused");
                Ok(None)
            }
            Err(DpopError::UseNonce(nonce)) => Err(AuthError::DpopNonce(nonce)),
            Err(DpopError::Unavailable(cause)) => Err(AuthError::DpopUnavailable(cause)),
        }
    }

    /// Revokes the session named by a refresh token: its id and user, if it was live.
    /// Unknown or invalid tokens change nothing.
    pub async fn logout(&self, token: &str) -> Result<Option<(Uuid, Uuid)>, AuthError> {
        match self.tokens.verify_refresh(token).await {
            Ok(claims) => self.end_session(claims.sid, claims.sub).await,
            Err(_) => Ok(None),
        }
    }

    /// RFC 7009: revokes the session of a refresh or access token (`hint` says which to try
    /// first). Invalid, expired and unknown tokens change nothing.
    pub async fn revoke_token(
        &self,
        token: &str,
        hint: Option<TokenKind>,
    ) -> Result<Option<(Uuid, Uuid)>, AuthError> {
        let order = match hint {
            Some(TokenKind::Access) => [TokenKind::Access, TokenKind::Refresh],
            _ => [TokenKind::Refresh, TokenKind::Access],
        };
        for kind in order {
            let named = match kind {
                TokenKind::Refresh => self
                    .tokens
                    .verify_refresh(token)
                    .await
                    .map(|claims| (claims.sid, claims.sub)),
                TokenKind::Access => self
                    .tokens
                    .verify_access(token)
                    .await
                    .map(|claims| (claims.sid, claims.sub)),
            };
            match named {
                Ok((sid, sub)) => return self.end_session(sid, sub).await,
                Err(TokenError::KeysUnavailable) => return Err(TokenError::KeysUnavailable.into()),
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// RFC 7662: what a token says, if it is active now: an access token until it expires
    /// unless its session was revoked; a refresh token while it is its session's current one.
    pub async fn introspect(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Introspection>, AuthError> {
        match self.tokens.verify_access(token).await {
            // Sessions revoked are refused by the verifier.
            Ok(claims) => {
                return Ok(Some(Introspection {
                    kind: TokenKind::Access,
                    sub: claims.sub,
                    sid: claims.sid,
                    username: Some(claims.user.username.clone()),
                    iat: claims.iat,
                    exp: claims.exp,
                    iss: claims.iss.clone(),
                    aud: claims.aud.clone(),
                    jti: claims.jti,
                    jkt: claims.bound_key().map(str::to_owned),
                }))
            }
            Err(TokenError::KeysUnavailable) => return Err(TokenError::KeysUnavailable.into()),
            _ => {}
        }
        let claims = match self.tokens.verify_refresh(token).await {
            Ok(claims) => claims,
            Err(TokenError::KeysUnavailable) => return Err(TokenError::KeysUnavailable.into()),
            Err(_) => return Ok(None),
        };
        let session = self
            .store
            .find_session(claims.sid)
            .await?
            .filter(|session| {
                session.user_id == claims.sub
                    && session.is_live(now)
                    && session.generation == claims.gen
            });
        let Some(session) = session else {
            return Ok(None);
        };
        Ok(Some(Introspection {
            kind: TokenKind::Refresh,
            sub: claims.sub,
            sid: claims.sid,
            username: None,
            iat: claims.iat,
            exp: claims.exp,
            iss: claims.iss,
            aud: claims.aud,
            jti: claims.jti,
            jkt: session.dpop_jkt,
        }))
    }

    /// Revokes session `sid` of user `sub`, if it is live: then `(sid, sub)`.
    async fn end_session(&self, sid: Uuid, sub: Uuid) -> Result<Option<(Uuid, Uuid)>, AuthError> {
        let at = revocation_time();
        if !self.store.revoke_session(sid, Some(sub), at).await? {
            return Ok(None);
        }
        self.revoked(&[sid], at);
        Ok(Some((sid, sub)))
    }

    pub async fn list(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, AuthError> {
        Ok(self.store.live_sessions_of(user_id, now).await?)
    }

    /// Revokes one of the user's sessions; false if it is not theirs or not live.
    pub async fn revoke(&self, user_id: Uuid, session_id: Uuid) -> Result<bool, AuthError> {
        let at = revocation_time();
        let revoked = self
            .store
            .revoke_session(session_id, Some(user_id), at)
            .await?;
        if revoked {
            self.revoked(&[session_id], at);
        }
        Ok(revoked)
    }

    /// Revokes every live session of the user but `keep`; returns how many there were.
    pub async fn revoke_all(&self, user_id: Uuid, keep: Option<Uuid>) -> Result<usize, AuthError> {
        let at = revocation_time();
        let revoked = self.store.revoke_sessions_of(user_id, keep, at).await?;
        self.revoked(&revoked, at);
        Ok(revoked.len())
    }

    /// Deletes sessions that expired, and those revoked longer ago than any of their access
    /// tokens can live (until then the revocation feed still names them).
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, AuthError> {
        let revoked_before = now - self.revocations.keep_for();
        Ok(self.store.delete_dead_sessions(now, revoked_before).await?)
    }

    fn issue_pair(
        &self,
        user: &User,
        session: &Session,
        now: OffsetDateTime,
    ) -> Result<TokenPair, AuthError> {
        let (access_token, access_expires) = self.tokens.issue_access(
            user,
            session.id,
            session.dpop_jkt.as_deref(),
            now,
            session.expires_at,
        )?;
        let refresh_token = self.tokens.issue_refresh(
            user.id,
            session.id,
            session.generation,
            now,
            session.expires_at,
        )?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: (access_expires - now).whole_seconds().max(0) as u64,
            refresh_expires_at: session.expires_at,
            bound: session.dpop_jkt.is_some(),
        })
    }
}

/// When a revocation is stamped: as the write is sent, not when the request began (a login
/// waits for its password hash first). Readers of the feed look back a bounded time for
/// revocations that commit late, so the stamp must be close to the commit.
pub fn revocation_time() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Only a hash of the fingerprint is stored.
fn fingerprint_hash(fingerprint: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, fingerprint.as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
