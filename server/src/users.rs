//! Users and their passwords (DESIGN §5).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use time::{Date, Month, OffsetDateTime, Time};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::store::{Job, Store, StoreError, User};

/// Longer passwords are refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Argon2id hashing off the async runtime, a bounded number at a time, so a login flood
/// queues instead of exhausting memory (each hash takes 19 MiB).
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that costs the same time.
    dummy_hash: String,
}

fn argon2() -> Argon2<'static> {
    // OWASP's minimum: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UserError::Hashing(e.to_string()))
}

impl Passwords {
    pub async fn new() -> Result<Passwords, UserError> {
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = tokio::task::spawn_blocking(|| hash_blocking(Uuid::new_v4().as_bytes()))
            .await
            .map_err(|e| UserError::Hashing(e.to_string()))??;
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(permits)),
            dummy_hash,
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, UserError> {
        validate_password(&password)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| UserError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
            .await
            .map_err(|e| UserError::Hashing(e.to_string()))?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, UserError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| UserError::Hashing(e.to_string()))?;
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| UserError::Hashing(e.to_string()))?;
        Ok(known && matches)
    }
}

fn validate_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::Invalid("the password must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid("the password is longer than 1024 bytes"));
    }
    Ok(())
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
    if username.is_empty() || username.len() > 64 {
        return Err(UserError::Invalid(
            "the username must have 1 to 64 characters",
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

/// Adds the demo users (`user1`…`user3`, password `password`) and their jobs where missing.
/// Returns how many users were added.
pub async fn seed_demo(store: &dyn Store, passwords: &Passwords) -> Result<usize, UserError> {
    const PEOPLE: [(&str, &str, &str, &str, &str, &str); 3] = [
        (
            "user1",
            "Ada",
            "Lovelace",
            "female",
            "+44 20 7946 0101",
            "London",
        ),
        (
            "user2",
            "Alan",
            "Turing",
            "male",
            "+44 161 496 0202",
            "Manchester",
        ),
        (
            "user3",
            "Grace",
            "Hopper",
            "female",
            "+1 212 555 0303",
            "New York",
        ),
    ];
    const JOBS: [(&str, &str, &str, &str); 3] = [
        (
            "Initech",
            "Software Engineer",
            "Platform",
            "Rust, SQL, Linux",
        ),
        (
            "Globex",
            "Senior Engineer",
            "Identity",
            "OAuth, JWT, Angular",
        ),
        (
            "Umbrella Systems",
            "Staff Engineer",
            "Security",
            "Cryptography, Go, Kubernetes",
        ),
    ];
    let mut added = 0;
    for (n, (username, first, last, gender, phone, city)) in PEOPLE.into_iter().enumerate() {
        if store.find_user_by_username(username).await?.is_some() {
            continue;
        }
        let new = NewUser {
            username: username.into(),
            email: format!("{username}@example.com"),
            first_name: first.into(),
            last_name: last.into(),
            gender: gender.into(),
            phone: phone.into(),
            city: city.into(),
        };
        let user = match create_user(store, passwords, new, "password".into()).await {
            // Another instance seeded it first.
            Err(UserError::UsernameTaken(_)) => continue,
            other => other?,
        };
        for (j, (company, title, department, skills)) in JOBS.into_iter().enumerate() {
            let start_year = 2012 + (n * 3 + j * 4) as i32;
            let job = Job {
                id: Uuid::new_v4(),
                user_id: user.id,
                company_name: company.into(),
                title: title.into(),
                first_date: january_first(start_year),
                last_date: january_first(start_year + 3),
                skills: skills.into(),
                department: department.into(),
                ein: format!(
                    "{:02}-{:07}",
                    10 + n * 11 + j,
                    1_234_567 + n * 1000 + j * 17
                ),
            };
            store.insert_job(&job).await?;
        }
        added += 1;
    }
    Ok(added)
}

fn january_first(year: i32) -> OffsetDateTime {
    Date::from_calendar_date(year, Month::January, 1)
        .unwrap_or(Date::MIN)
        .with_time(Time::MIDNIGHT)
        .assume_utc()
}
