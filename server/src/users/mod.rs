//! Users and their passwords (docs/api.md, "Users").

mod demo;
mod passwords;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{Store, StoreError, User};

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
}

pub async fn create_user(
    store: &dyn Store,
    passwords: &Passwords,
    new: NewUser,
    password: String,
) -> Result<User, UserError> {
    let username = new.username.trim().to_owned();
    if username.is_empty() || username.len() > 64 || username.chars().any(char::is_control) {
        return Err(UserError::Invalid(
            "the username must have 1 to 64 characters, none of them control characters",
        ));
    }
    let hash = passwords.hash(password).await?;
    let user = User {
        id: Uuid::new_v4(),
        username: username.clone(),
        email: new.email,
        first_name: new.first_name,
        last_name: new.last_name,
        gender: new.gender,
        phone: new.phone,
        city: new.city,
    };
    match store.insert_user(&user, &hash).await {
        Err(StoreError::Conflict) => Err(UserError::UsernameTaken(username)),
        other => other.map(|()| user).map_err(UserError::from),
    }
}

/// Sets a new password and signs the user out everywhere. False if there is no such user.
pub async fn change_password(
    store: &dyn Store,
    passwords: &Passwords,
    username: &str,
    password: String,
) -> Result<bool, UserError> {
    let Some((user, _)) = store.find_user_by_username(username).await? else {
        return Ok(false);
    };
    let hash = passwords.hash(password).await?;
    Ok(store
        .set_password(user.id, &hash, OffsetDateTime::now_utc())
        .await?)
}
