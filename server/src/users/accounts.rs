//! The account lifecycle (docs/api.md, "Accounts"): sign-up, password change and reset, and
//! what administrators do to other accounts. Every change is audited; every change that
//! should end sessions revokes them in the same transaction as the change.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{create_user, policy, NewUser, Passwords, UserError};
use crate::audit::{Audit, Client, Event};
use crate::mail::Mailer;
use crate::sessions::{revocation_time, AuthError, Device, Sessions, TokenPair};
use crate::store::{AuditQuery, AuditRecord, Store, StoreError, User};

/// How long a reset link works.
pub const RESET_LIFETIME: Duration = Duration::from_secs(3600);
/// Random bytes in a reset token (base64url in the link).
const RESET_TOKEN_BYTES: usize = 32;
/// Longer "tokens" are not ours; refused before hashing.
const MAX_RESET_TOKEN_BYTES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("sign-up is closed")]
    SignupClosed,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the reset token is unknown, used or expired")]
    InvalidResetToken,
    #[error("no such user")]
    NotFound,
    #[error("{0}")]
    SelfLockout(&'static str),
    #[error("the system random number generator failed")]
    Random,
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an administrator may change about a user.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

pub struct Accounts {
    store: Arc<dyn Store>,
    passwords: Arc<Passwords>,
    sessions: Arc<Sessions>,
    audit: Audit,
    mailer: Option<Arc<Mailer>>,
    signup_open: bool,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        passwords: Arc<Passwords>,
        sessions: Arc<Sessions>,
        audit: Audit,
        mailer: Option<Arc<Mailer>>,
        signup_open: bool,
    ) -> Accounts {
        Accounts {
            store,
            passwords,
            sessions,
            audit,
            mailer,
            signup_open,
        }
    }

    pub fn signup_open(&self) -> bool {
        self.signup_open
    }

    pub fn password_reset_available(&self) -> bool {
        self.mailer.is_some()
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Creates an account and signs it in on `device`.
    pub async fn register(
        &self,
        new: NewUser,
        password: String,
        device: Device,
        now: OffsetDateTime,
    ) -> Result<(User, TokenPair), AccountError> {
        if !self.signup_open {
            return Err(AccountError::SignupClosed);
        }
        self.sessions.check_device(&device)?;
        // Nobody signs themselves up with a role.
        let new = NewUser {
            roles: Vec::new(),
            ..new
        };
        policy::check_new_password(&password, &new.username)?;
        let client = device.client.clone();
        let user = create_user(self.store.as_ref(), &self.passwords, new, password).await?;
        let (pair, session, _) = self.sessions.open_session(&user, device, now, None).await?;
        let event = Event::new("register", "ok").user(&user).session(session);
        self.audit.record(event, &client).await;
        Ok((user, pair))
    }

    /// The user's own password change: the current password first (re-authentication), then
    /// every other session of the user is revoked; `session`, the caller's, stays.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        session: Uuid,
        current: String,
        new: String,
        client: &Client,
    ) -> Result<(), AccountError> {
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let old_hash = self.store.password_hash(user_id).await?;
        let current_ok = current.len() <= super::MAX_PASSWORD_BYTES
            && self.passwords.verify(current, old_hash.clone()).await?;
        if !current_ok {
            let event = Event::new("password_change", "failed")
                .user(&user)
                .session(session)
                .detail("wrong current password");
            self.audit.record(event, client).await;
            return Err(AccountError::WrongPassword);
        }
        policy::check_new_password(&new, &user.username)?;
        let hash = self.passwords.hash(new).await?;
        let at = revocation_time();
        // None: a reset (or another change) replaced the password since it was checked.
        let revoked = self
            .store
            .set_password(user_id, &hash, old_hash.as_deref(), Some(session), at)
            .await?
            .ok_or(AccountError::WrongPassword)?;
        self.sessions.revoked(&revoked, at);
        let event = Event::new("password_change", "ok")
            .user(&user)
            .session(session)
            .detail(format!("{} other sessions revoked", revoked.len()));
        self.audit.record(event, client).await;
        Ok(())
    }

    /// Mails a reset link to each enabled account with this address. Returns at once, before
    /// anything is looked up, so that the answer's timing does not tell whether the address
    /// is known; without a mail server it does nothing.
    pub fn request_password_reset(self: &Arc<Self>, email: String, client: Client) {
        if self.mailer.is_none() {
            return;
        }
        let accounts = self.clone();
        tokio::spawn(async move {
            if let Err(error) = accounts.send_resets(&email, &client).await {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "password reset not sent"
                );
            }
        });
    }

    async fn send_resets(&self, email: &str, client: &Client) -> Result<(), AccountError> {
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let users = self.store.find_users_by_email(email).await?;
        for user in users.iter().filter(|user| user.disabled_at.is_none()) {
            let token = random_token()?;
            let expires_at = OffsetDateTime::now_utc() + RESET_LIFETIME;
            self.store
                .insert_password_reset(&token_hash(&token), user.id, expires_at)
                .await?;
            let sent = mailer
                .send_password_reset(&user.email, &user.username, &token)
                .await;
            let outcome = if sent.is_ok() { "ok" } else { "failed" };
            let event = Event::new("password_reset_request", outcome).user(user);
            self.audit.record(event, client).await;
            if let Err(error) = sent {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    user = %user.id,
                    "reset mail not sent"
                );
            }
        }
        Ok(())
    }

    /// Sets a new password with a reset token, which is spent; every session is revoked.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new: String,
        client: &Client,
    ) -> Result<(), AccountError> {
        if token.is_empty() || token.len() > MAX_RESET_TOKEN_BYTES {
            return Err(AccountError::InvalidResetToken);
        }
        let hashed_token = token_hash(token);
        // Checked before the password is hashed: an unknown token costs no Argon2 run.
        let user = self
            .store
            .password_reset_user(&hashed_token, OffsetDateTime::now_utc())
            .await?
            .ok_or(AccountError::InvalidResetToken)?;
        policy::check_new_password(&new, &user.username)?;
        let hash = self.passwords.hash(new).await?;
        let at = revocation_time();
        let (_, revoked) = self
            .store
            .use_password_reset(&hashed_token, &hash, at)
            .await?
            .ok_or(AccountError::InvalidResetToken)?;
        self.sessions.revoked(&revoked, at);
        let event = Event::new("password_reset", "ok")
            .user(&user)
            .detail(format!("{} sessions revoked", revoked.len()));
        self.audit.record(event, client).await;
        Ok(())
    }

    // What administrators do. `admin` is the caller, already known to hold the role.

    pub async fn search_users(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<User>, AccountError> {
        Ok(self.store.search_users(query, after, limit).await?)
    }

    pub async fn create_user(
        &self,
        admin: Uuid,
        new: NewUser,
        password: String,
        client: &Client,
    ) -> Result<User, AccountError> {
        policy::check_new_password(&password, &new.username)?;
        let user = create_user(self.store.as_ref(), &self.passwords, new, password).await?;
        let event = Event::new("admin_create_user", "ok")
            .user(&user)
            .actor(admin)
            .detail(roles_detail(&user.roles));
        self.audit.record(event, client).await;
        Ok(user)
    }

    /// Changes roles and the disabled flag; disabling revokes every session of the user.
    pub async fn update_user(
        &self,
        (admin, admin_session): (Uuid, Uuid),
        id: Uuid,
        changes: UserChanges,
        client: &Client,
    ) -> Result<User, AccountError> {
        let roles = changes
            .roles
            .as_deref()
            .map(policy::normalize_roles)
            .transpose()?;
        if id == admin {
            if changes.disabled == Some(true) {
                return Err(AccountError::SelfLockout(
                    "Administrators cannot disable their own account.",
                ));
            }
            if roles
                .as_ref()
                .is_some_and(|roles| !roles.iter().any(|r| r == "admin"))
            {
                return Err(AccountError::SelfLockout(
                    "Administrators cannot remove their own admin role.",
                ));
            }
        }
        let before = self
            .store
            .find_user(id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if let Some(roles) = &roles {
            if !self.store.set_roles(id, roles).await? {
                return Err(AccountError::NotFound);
            }
            let mut detail = roles_detail(roles);
            // Tokens carry the roles they were issued with: those of a role taken away must
            // stop, at Tollgate and at resource servers, not when they expire.
            if before.roles.iter().any(|role| !roles.contains(role)) {
                // An administrator changing their own roles keeps the session doing it.
                let keep = (id == admin).then_some(admin_session);
                let ended = self.sessions.revoke_all(id, keep).await?;
                detail.push_str(&format!("; a role was removed: {ended} sessions revoked"));
            }
            let event = Event::new("admin_set_roles", "ok")
                .user(&before)
                .actor(admin)
                .detail(detail);
            self.audit.record(event, client).await;
        }
        if let Some(disabled) = changes.disabled {
            let at = revocation_time();
            let revoked = self
                .store
                .set_disabled(id, disabled, at)
                .await?
                .ok_or(AccountError::NotFound)?;
            self.sessions.revoked(&revoked, at);
            let (name, detail) = if disabled {
                (
                    "admin_disable_user",
                    format!("{} sessions revoked", revoked.len()),
                )
            } else {
                ("admin_enable_user", String::new())
            };
            let mut event = Event::new(name, "ok").user(&before).actor(admin);
            if !detail.is_empty() {
                event = event.detail(detail);
            }
            self.audit.record(event, client).await;
        }
        self.store
            .find_user(id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    pub async fn delete_user(
        &self,
        admin: Uuid,
        id: Uuid,
        client: &Client,
    ) -> Result<(), AccountError> {
        if id == admin {
            return Err(AccountError::SelfLockout(
                "Administrators cannot delete their own account.",
            ));
        }
        let user = self
            .store
            .find_user(id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let at = revocation_time();
        let revoked = self
            .store
            .delete_user(id, at)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.sessions.revoked(&revoked, at);
        let event = Event::new("admin_delete_user", "ok")
            .user(&user)
            .actor(admin)
            .detail(format!("{} sessions revoked", revoked.len()));
        self.audit.record(event, client).await;
        Ok(())
    }

    /// Signs the user out everywhere.
    pub async fn end_sessions(
        &self,
        admin: Uuid,
        id: Uuid,
        client: &Client,
    ) -> Result<usize, AccountError> {
        let user = self
            .store
            .find_user(id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let ended = self.sessions.revoke_all(id, None).await?;
        let event = Event::new("admin_end_sessions", "ok")
            .user(&user)
            .actor(admin)
            .detail(format!("{ended} sessions revoked"));
        self.audit.record(event, client).await;
        Ok(ended)
    }

    /// The audit log, newest first, with everything recorded so far on this instance.
    pub async fn audit_log(
        &self,
        user: Option<Uuid>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AccountError> {
        self.audit.flush().await;
        let user = match user {
            Some(id) => {
                // A deleted user's events are found by id alone.
                let username = self.store.find_user(id).await?.map(|user| user.username);
                Some((id, username.unwrap_or_default()))
            }
            None => None,
        };
        let query = AuditQuery {
            user,
            before,
            limit,
        };
        Ok(self.store.audit_events(&query).await?)
    }
}

fn roles_detail(roles: &[String]) -> String {
    format!("roles: [{}]", roles.join(", "))
}

/// A reset token: 256 random bits, base64url.
fn random_token() -> Result<String, AccountError> {
    let mut bytes = [0u8; RESET_TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AccountError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a reset token. A plain SHA-256 suffices: the token has 256 random bits,
/// so nobody can guess it from its hash, and lookups by hash compare no secret byte by byte.
fn token_hash(token: &str) -> String {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
