//! Users and their passwords (docs/api.md, "Users").

mod accounts;
mod demo;
mod passwords;
pub mod policy;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{Store, StoreError, User};

pub use accounts::{AccountError, Accounts, UserChanges, RESET_LIFETIME};
pub use demo::seed_demo;
pub use passwords::Passwords;

/// Longer passwords are refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("password hashing failed")]
    Hashing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The hashing queue is full: answer at once rather than make the caller wait behind it.
    #[error("too many passwords waiting to be hashed")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The profile of a new user; the id is assigned on creation.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub phone: String,
    pub city: String,
    pub roles: Vec<String>,
}

/// Adds a user after checking the username, email, profile and roles (not the password's
/// strength: the demo data keeps its famous password; callers check `policy` first).
pub async fn create_user(
    store: &dyn Store,
    passwords: &Passwords,
    new: NewUser,
    password: String,
) -> Result<User, UserError> {
    let username = policy::normalize_username(&new.username)?;
    let user = User {
        id: Uuid::new_v4(),
        username: username.clone(),
        email: policy::normalize_email(&new.email)?,
        first_name: policy::normalize_profile_field(&new.first_name)?,
        last_name: policy::normalize_profile_field(&new.last_name)?,
        gender: policy::normalize_profile_field(&new.gender)?,
        phone: policy::normalize_profile_field(&new.phone)?,
        city: policy::normalize_profile_field(&new.city)?,
        roles: policy::normalize_roles(&new.roles)?,
        disabled_at: None,
    };
    let hash = passwords.hash(password).await?;
    match store.insert_user(&user, &hash).await {
        Err(StoreError::Conflict) => Err(UserError::UsernameTaken(username)),
        other => other.map(|()| user).map_err(UserError::from),
    }
}

/// Sets a new password and signs the user out everywhere; the ids of the sessions revoked.
/// None if there is no such user.
pub async fn change_password(
    store: &dyn Store,
    passwords: &Passwords,
    username: &str,
    password: String,
) -> Result<Option<Vec<Uuid>>, UserError> {
    let Some((user, _)) = store.find_user_by_username(username).await? else {
        return Ok(None);
    };
    policy::check_new_password(&password, &user.username)?;
    let hash = passwords.hash(password).await?;
    Ok(store
        .set_password(user.id, &hash, None, None, OffsetDateTime::now_utc())
        .await?)
}
