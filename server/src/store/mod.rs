//! Persistence. The store keeps users, jobs, sessions and signing keys; it knows nothing of
//! JWTs or HTTP. Timestamps cross this boundary as `OffsetDateTime` and are kept as Unix
//! milliseconds.

mod postgres;
mod rows;
mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a record with the same key already exists")]
    Conflict,
    /// A session was to start for a user who is gone or disabled (by a concurrent request).
    #[error("the user does not exist or is disabled")]
    InactiveUser,
    #[error("the database cannot be reached")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.code().is_some_and(|code| is_unavailable(&code)) => {
                StoreError::Unavailable(error.into())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.into()),
            _ => StoreError::Database(error),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::SystemIoFailure,
            ) => StoreError::Unavailable(error.into()),
            _ => StoreError::Sqlite(error),
        }
    }
}

/// PostgreSQL error codes that mean "not now" rather than "wrong": connection exceptions,
/// shutdowns, too many connections, and our own statement timeout.
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "57014"
}

impl StoreError {
    /// Whether the database refused the data itself (a value it cannot hold, a constraint),
    /// so that trying the same write again cannot succeed.
    pub fn is_about_content(&self) -> bool {
        match self {
            StoreError::Conflict => true,
            StoreError::Database(sqlx::Error::Encode(_)) => true,
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                // PostgreSQL's five-character SQLSTATE: data exceptions (22…), integrity
                // violations (23…). SQLite's numbers: TOOBIG (18), CONSTRAINT (19), MISMATCH
                // (20), extended codes included.
                if code.len() == 5 {
                    code.starts_with("22") || code.starts_with("23")
                } else {
                    code.parse::<u32>()
                        .is_ok_and(|code| matches!(code & 0xff, 18..=20))
                }
            }),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A person who can sign in. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub phone: String,
    pub city: String,
    /// Sorted, without duplicates; `admin` grants the admin API.
    pub roles: Vec<String>,
    /// A disabled user cannot sign in; their sessions were revoked when it happened.
    pub disabled_at: Option<OffsetDateTime>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: Uuid,
    pub user_id: Uuid,
    pub company_name: String,
    pub title: String,
    pub first_date: OffsetDateTime,
    pub last_date: OffsetDateTime,
    pub skills: String,
    pub department: String,
    pub ein: String,
}

/// One signed-in device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub generation: i64,
    pub rotated_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub fingerprint_hash: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The thumbprint of the DPoP key the session is bound to.
    pub dpop_jkt: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A position in the order of revocations: the revocation time, then the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevocationCursor {
    pub revoked_at: OffsetDateTime,
    pub sid: Uuid,
}

/// One security event, as the audit log keeps it (`id` is assigned by the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: OffsetDateTime,
    pub event: String,
    pub outcome: String,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Who did it, when someone else than the user did (an administrator).
    pub actor_id: Option<Uuid>,
    pub detail: Option<String>,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Events of this user id or, for events without one (a failed sign-in), this username.
    pub user: Option<(Uuid, String)>,
    /// Only events older than this id.
    pub before: Option<i64>,
    pub limit: u32,
}

/// What a sign-in found about the user before the slow password check: the session starts only
/// if it still holds (a reset or a role removal committed meanwhile must not be outlived).
#[derive(Debug, Clone, Copy)]
pub struct SignInCheck<'a> {
    pub password_hash: &'a str,
    pub roles: &'a [String],
}

/// Picks, from a user's live sessions, the ids of those to revoke before a new one is added.
pub type ChooseEvictions<'a> = &'a (dyn Fn(&[Session]) -> Vec<Uuid> + Send + Sync);

/// A signing key as stored: the private half in PKCS#8/PKCS#1 DER, the public half as a JWK.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub private_der: Vec<u8>,
    pub public_jwk: String,
    pub created_at: OffsetDateTime,
    /// When it starts signing; until then it is only published, so that every instance can
    /// verify its tokens before any instance issues one.
    pub activates_at: OffsetDateTime,
    /// When a newer key took over signing; it keeps verifying for the longest token lifetime.
    pub retired_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers once the database does.
    async fn ping(&self) -> StoreResult<()>;
    async fn close(&self);

    async fn insert_user(&self, user: &User, password_hash: &str) -> StoreResult<()>;
    /// The user and their password hash.
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>>;
    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>>;
    /// Sets a new password hash (only if the current one is still `replacing`, when given: a
    /// change checked against a password that a reset replaced meanwhile must not undo it),
    /// revokes every live session of the user but `keep`, and forgets the user's pending
    /// password resets, in one transaction. The ids of the revoked sessions; None if there is
    /// no such user or the hash was not `replacing`.
    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        replacing: Option<&str>,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Vec<Uuid>>>;
    /// The password hash of a user.
    async fn password_hash(&self, id: Uuid) -> StoreResult<Option<String>>;
    /// Users whose email is `email`, compared without regard to ASCII case.
    async fn find_users_by_email(&self, email: &str) -> StoreResult<Vec<User>>;
    /// Users whose username, email or name contains `query` (case ignored: on SQLite for ASCII letters only), by
    /// username, after the username `after`, at most `limit`.
    async fn search_users(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Replaces the user's roles; false if there is no such user.
    async fn set_roles(&self, id: Uuid, roles: &[String]) -> StoreResult<bool>;
    /// Disables (revoking every live session, in one transaction) or enables the user. The
    /// ids of the revoked sessions; None if there is no such user.
    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Vec<Uuid>>>;
    /// Deletes the user with their jobs and password resets, revoking their sessions (kept
    /// until swept, for the revocation feed). The revoked ids; None if there is no such user.
    async fn delete_user(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<Option<Vec<Uuid>>>;

    /// Keeps a password reset for `user_id`: only the hash of its token.
    async fn insert_password_reset(
        &self,
        token_hash: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The enabled user of the unexpired reset whose token hashes to `token_hash`.
    async fn password_reset_user(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>>;
    /// Spends the reset whose token hashes to `token_hash`, if it has not expired: in one
    /// transaction sets the new password hash, revokes every live session of the user and
    /// forgets their other resets. The user and the revoked sessions; None if no such reset.
    async fn use_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Uuid, Vec<Uuid>)>>;
    async fn delete_expired_password_resets(&self, now: OffsetDateTime) -> StoreResult<u64>;

    /// Whether the DPoP proof `key` is seen for the first time (it is kept until `forget_at`,
    /// Unix seconds); one answer for every instance.
    async fn first_dpop_use(&self, key: &[u8; 32], forget_at: i64, now: i64) -> StoreResult<bool>;
    async fn delete_expired_dpop_replays(&self, now: i64) -> StoreResult<u64>;
    /// The shared secret `name`: the one stored, or `candidate` if none was yet.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// Appends events to the audit log, all or none.
    async fn insert_audit(&self, records: &[AuditRecord]) -> StoreResult<()>;
    /// Audit events, newest first.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes audit events older than `before`.
    async fn delete_audit_before(&self, before: OffsetDateTime) -> StoreResult<u64>;
    async fn insert_job(&self, job: &Job) -> StoreResult<()>;
    async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>>;

    /// Inserts `session` after revoking the user's live sessions that `evict` picks from
    /// all of them, in one transaction, so that concurrent logins of one user cannot both
    /// slip under a limit. Returns the ids of the sessions it revoked. `InactiveUser` if the
    /// user was deleted or disabled meanwhile (a sign-in racing the administrator), or no
    /// longer matches `checked`.
    async fn create_session(
        &self,
        session: &Session,
        now: OffsetDateTime,
        evict: ChooseEvictions<'_>,
        checked: Option<SignInCheck<'_>>,
    ) -> StoreResult<Vec<Uuid>>;
    async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>>;
    /// Compare-and-swap: moves the session from `generation` to `generation + 1` and returns
    /// the time of the write, taken by the database when the write happens (not when the
    /// request began: a refresh that queued for the writer must not start its grace window in
    /// the past). None when another request got there first or the session is no longer live.
    async fn rotate_session(
        &self,
        id: Uuid,
        generation: i64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Option<OffsetDateTime>>;
    /// Revokes one session; with `owner`, only if it belongs to that user. True if it was live.
    async fn revoke_session(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the user but `keep`; returns their ids.
    async fn revoke_sessions_of(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Uuid>>;
    /// Live sessions of the user, most recently created first.
    async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>>;
    async fn count_live_sessions(&self, now: OffsetDateTime) -> StoreResult<i64>;
    /// Whether `username` has a session (live or not yet swept) with this fingerprint hash.
    async fn has_device(&self, username: &str, fingerprint_hash: &str) -> StoreResult<bool>;
    /// Deletes sessions that expired by `now` without being revoked, and sessions revoked
    /// before `revoked_before` (kept until then for the revocation feed).
    async fn delete_dead_sessions(
        &self,
        now: OffsetDateTime,
        revoked_before: OffsetDateTime,
    ) -> StoreResult<u64>;
    /// Sessions revoked after `after` (by revocation time, then id), oldest first, at most
    /// `limit`: each session's id and revocation time.
    async fn revoked_sessions(
        &self,
        after: RevocationCursor,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, OffsetDateTime)>>;
    /// Resolves when sessions may have been revoked by another process: on PostgreSQL as one
    /// is notified (or when the connection that listens was lost and some may have been
    /// missed), and at the latest after `poll`.
    async fn revocations_changed(&self, poll: Duration);

    /// Inserts `key` as the current key of its algorithm unless one already exists.
    async fn insert_key_if_none(&self, key: &StoredKey) -> StoreResult<()>;
    /// Adds `key` as the next key of `key.alg`; the current one retires when `key` activates.
    async fn rotate_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Every key of `alg`, the current one (no `retired_at`) included.
    async fn keys(&self, alg: &str) -> StoreResult<Vec<StoredKey>>;

    /// Whether several instances may share this store, so that counters kept in one
    /// process's memory would not be the whole count.
    fn is_shared(&self) -> bool;
    /// One step of a GCRA rate limit kept in the store for every instance: if `key`'s
    /// theoretical arrival time, advanced by `interval`, stays within `tolerance` of `now`,
    /// advances it and returns None; otherwise leaves it and returns how long to wait.
    async fn take_rate_token(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
        tolerance: Duration,
    ) -> StoreResult<Option<Duration>>;
    /// Forgets rate-limit entries that have fully recovered by `now`.
    async fn forget_recovered_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// Milliseconds since the Unix epoch: fine enough to order sessions created in one second.
pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A duration in milliseconds, saturating (settings cap every duration far below that).
pub(crate) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn from_millis(millis: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {millis} out of range")))
}

pub(crate) fn parse_uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("bad uuid {text:?}")))
}

/// Connection settings of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Most connections one instance opens (SQLite: readers; it writes on one connection).
    pub pool_size: u32,
    /// How long a query or a wait for a connection may take before the store counts as down.
    pub timeout: Duration,
    /// SQLite: whether every commit reaches the disk before it is confirmed
    /// (`synchronous = FULL`), so that a confirmed rotation or revocation survives a power
    /// loss. Off (`NORMAL`) is faster and still safe against a crash of Tollgate itself.
    pub durable_commits: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 10,
            timeout: Duration::from_secs(5),
            durable_commits: true,
        }
    }
}

/// `tollgate backup`: a consistent copy of a running SQLite store at `target` (see
/// `sqlite::backup`); its size in pages.
pub async fn backup_sqlite(url: &str, target: &std::path::Path) -> StoreResult<i32> {
    let (url, target) = (url.to_owned(), target.to_owned());
    tokio::task::spawn_blocking(move || sqlite::backup(&url, &target))
        .await
        .map_err(|error| StoreError::Unavailable(error.into()))?
}

/// Opens the store named by `url` (`sqlite:…` or `postgres:…`) and migrates it.
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    sqlx::any::install_default_drivers();
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::connect(url, options).await?))
    } else {
        Ok(Arc::new(sqlite::connect(url, options).await?))
    }
}
