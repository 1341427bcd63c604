//! Sign-in, refresh rotation with reuse detection, and sign-out (docs/api.md, "Sessions").
//! The rules are plain functions (`refresh::decide`, `SessionLimit::sessions_to_revoke`, the
//! sign-in budgets in `throttle`); `Sessions` and `LoginLimiter` run them against the store.

mod limit;
mod refresh;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{Session, Store, StoreError, User};
use crate::tokens::{TokenError, Tokens};
use crate::users::{Passwords, UserError, MAX_PASSWORD_BYTES};
use refresh::RefreshDecision;

pub use limit::{SessionLimit, SessionLimitPolicy};
pub use throttle::LoginLimiter;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("a device fingerprint is required")]
    FingerprintRequired,
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
}

/// How a successful refresh came about, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    Rotated,
    /// The previous generation within the grace window: a fresh pair, no rotation.
    Grace,
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub fingerprint: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub refresh_ttl: Duration,
    pub max_age: Duration,
    pub reuse_grace: Duration,
    pub limit: SessionLimit,
    pub require_fingerprint: bool,
}

pub struct Sessions {
    store: Arc<dyn Store>,
    tokens: Arc<Tokens>,
    passwords: Arc<Passwords>,
    policy: SessionPolicy,
}

impl Sessions {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<Tokens>,
        passwords: Arc<Passwords>,
        policy: SessionPolicy,
    ) -> Self {
        Sessions {
            store,
            tokens,
            passwords,
            policy,
        }
    }

    pub async fn login(
        &self,
        username: &str,
        password: String,
        device: Device,
        now: OffsetDateTime,
    ) -> Result<(User, TokenPair), AuthError> {
        if self.policy.require_fingerprint && device.fingerprint.is_none() {
            return Err(AuthError::FingerprintRequired);
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let found = self.store.find_user_by_username(username).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let verified = self.passwords.verify(password, hash).await?;
        let user = match user {
            Some(user) if verified => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        let session = Session {
            id: Uuid::new_v4(),
            user_id: user.id,
            generation: 0,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.policy.refresh_ttl.min(self.policy.max_age),
            revoked_at: None,
            fingerprint_hash: device.fingerprint.as_deref().map(fingerprint_hash),
            user_agent: device.user_agent.map(|ua| truncate(ua, 512)),
            ip: device.ip,
        };
        let limit = self.policy.limit;
        let evicted = self
            .store
            .create_session(&session, now, &|live| limit.sessions_to_revoke(live))
            .await?;
        if evicted > 0 {
            tracing::info!(user = %user.id, evicted, "session limit reached; older sessions revoked");
        }
        let pair = self.issue_pair(&user, &session, now)?;
        Ok((user, pair))
    }

    /// Verifies a refresh token and rotates its session (`refresh::decide` says how).
    pub async fn refresh(
        &self,
        token: &str,
        fingerprint: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(TokenPair, RefreshKind), AuthError> {
        let refreshed = self.try_refresh(token, fingerprint, now).await;
        if let Err(AuthError::RefreshDenied(reason)) = &refreshed {
            tracing::info!(%reason, "refresh refused");
        }
        refreshed
    }

    async fn try_refresh(
        &self,
        token: &str,
        fingerprint: Option<&str>,
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
        // One retry: losing the compare-and-swap means a concurrent refresh just rotated.
        for _ in 0..2 {
            let session = self
                .store
                .find_session(claims.sid)
                .await?
                .ok_or(deny(DenyReason::UnknownSession))?;
            match refresh::decide(&claims, &session, fingerprint, now, &self.policy) {
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
                    self.store.revoke_session(session.id, None, now).await?;
                    tracing::warn!(session = %session.id, user = %session.user_id, "refresh token reused; session revoked");
                    return Err(deny(DenyReason::Reused));
                }
            }
        }
        Err(deny(DenyReason::SessionEnded))
    }

    /// Revokes the session named by a refresh token. Unknown or invalid tokens change nothing.
    pub async fn logout(&self, token: &str, now: OffsetDateTime) -> Result<(), AuthError> {
        if let Ok(claims) = self.tokens.verify_refresh(token).await {
            self.store
                .revoke_session(claims.sid, Some(claims.sub), now)
                .await?;
        }
        Ok(())
    }

    pub async fn list(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, AuthError> {
        Ok(self.store.live_sessions_of(user_id, now).await?)
    }

    /// Revokes one of the user's sessions; false if it is not theirs or not live.
    pub async fn revoke(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, AuthError> {
        Ok(self
            .store
            .revoke_session(session_id, Some(user_id), now)
            .await?)
    }

    pub async fn revoke_all(&self, user_id: Uuid, now: OffsetDateTime) -> Result<u64, AuthError> {
        Ok(self.store.revoke_sessions_of(user_id, now).await?)
    }

    /// Deletes expired and revoked sessions.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<u64, AuthError> {
        Ok(self.store.delete_dead_sessions(now).await?)
    }

    fn issue_pair(
        &self,
        user: &User,
        session: &Session,
        now: OffsetDateTime,
    ) -> Result<TokenPair, AuthError> {
        let (access_token, access_expires) = self.tokens.issue_access(user, session.id, now)?;
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
        })
    }
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
