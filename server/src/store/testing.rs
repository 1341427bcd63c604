//! What the store's unit tests and those of the domain above it share: a store on a fresh
//! SQLite file, a user in it, and a live session to insert.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Session, Store, StoreOptions, User};

/// A new SQLite file's URL in the temporary directory.
pub(crate) fn temp_sqlite_url() -> String {
    let file = std::env::temp_dir().join(format!("tollgate-unit-{}.db", Uuid::new_v4()));
    sqlx::any::install_default_drivers();
    format!("sqlite://{}", file.display())
}

/// A store on a new SQLite file.
pub(crate) async fn temp_store(options: &StoreOptions) -> Arc<dyn Store> {
    super::connect(&temp_sqlite_url(), options)
        .await
        .expect("store")
}

/// A user named `username`, with an empty profile, added to `store`.
pub(crate) async fn add_user(store: &dyn Store, username: &str) -> User {
    let user = User {
        id: Uuid::new_v4(),
        username: username.into(),
        email: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        gender: String::new(),
        phone: String::new(),
        city: String::new(),
        roles: Vec::new(),
        disabled_at: None,
    };
    store.insert_user(&user, "hash").await.expect("user");
    user
}

/// A session of `user_id` created at `now`, live for an hour.
pub(crate) fn live_session(user_id: Uuid, now: OffsetDateTime) -> Session {
    Session {
        id: Uuid::new_v4(),
        user_id,
        generation: 0,
        rotated_at: None,
        created_at: now,
        last_used_at: now,
        expires_at: now + time::Duration::hours(1),
        revoked_at: None,
        fingerprint_hash: None,
        user_agent: None,
        ip: None,
        dpop_jkt: None,
    }
}
