//! The store in SQL, shared by SQLite and PostgreSQL through `sqlx::Any`: the queries are
//! written once in the dialect both understand; `sqlite` and `postgres` set up the pools.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::AnyPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sqlite::{DirectReads, RotationBatches};
use super::{
    duration_millis, from_millis, parse_uuid, to_millis, Job, Session, SessionLimit,
    SessionLimitPolicy, Store, StoreResult, StoredKey, User,
};

pub struct SqlStore {
    /// Every write goes through here.
    writer: AnyPool,
    /// Reads; the same pool as `writer` where the database has no single-writer limit.
    reader: AnyPool,
    dialect: Dialect,
    /// SQLite's hot reads, answered on the calling thread (see `sqlite::DirectReads`).
    direct: Option<DirectReads>,
    /// SQLite's rotations, committed in batches (see `sqlite::RotationBatches`).
    rotation_batches: Option<RotationBatches>,
}

/// What differs between the databases.
pub(super) struct Dialect {
    /// Serialises concurrent logins of one user where transactions run in parallel.
    pub(super) lock_user: Option<&'static str>,
    /// `rotate_session`'s statement (`$1` id, `$2` generation, `$3` new expiry), stamped with
    /// the database's clock at the time of the write and returning that stamp.
    pub(super) rotate_session: &'static str,
    /// `take_rate_token`'s statement.
    pub(super) take_rate_token: &'static str,
    /// Whether other instances may share the database.
    pub(super) shared: bool,
}

impl SqlStore {
    /// A PRAGMA's value on the writing connection, for tests.
    #[cfg(test)]
    pub(super) async fn writer_pragma(&self, name: &str) -> StoreResult<i64> {
        let (value,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(&self.writer)
            .await?;
        Ok(value)
    }

    pub(super) fn new(
        writer: AnyPool,
        reader: AnyPool,
        dialect: Dialect,
        direct: Option<DirectReads>,
        rotation_batches: Option<RotationBatches>,
    ) -> Self {
        SqlStore {
            writer,
            reader,
            dialect,
            direct,
            rotation_batches,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) gender: String,
    pub(super) phone: String,
    pub(super) city: String,
}

impl TryFrom<UserRow> for User {
    type Error = super::StoreError;
    fn try_from(row: UserRow) -> StoreResult<User> {
        Ok(User {
            id: parse_uuid(&row.id)?,
            username: row.username,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            gender: row.gender,
            phone: row.phone,
            city: row.city,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserWithHashRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) company_name: String,
    pub(super) title: String,
    pub(super) first_date: i64,
    pub(super) last_date: i64,
    pub(super) skills: String,
    pub(super) department: String,
    pub(super) ein: String,
}

impl TryFrom<JobRow> for Job {
    type Error = super::StoreError;
    fn try_from(row: JobRow) -> StoreResult<Job> {
        Ok(Job {
            id: parse_uuid(&row.id)?,
            user_id: parse_uuid(&row.user_id)?,
            company_name: row.company_name,
            title: row.title,
            first_date: from_millis(row.first_date)?,
            last_date: from_millis(row.last_date)?,
            skills: row.skills,
            department: row.department,
            ein: row.ein,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) generation: i64,
    pub(super) rotated_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) last_used_at: i64,
    pub(super) expires_at: i64,
    pub(super) revoked_at: Option<i64>,
    pub(super) fingerprint_hash: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) ip: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = super::StoreError;
    fn try_from(row: SessionRow) -> StoreResult<Session> {
        Ok(Session {
            id: parse_uuid(&row.id)?,
            user_id: parse_uuid(&row.user_id)?,
            generation: row.generation,
            rotated_at: row.rotated_at.map(from_millis).transpose()?,
            created_at: from_millis(row.created_at)?,
            last_used_at: from_millis(row.last_used_at)?,
            expires_at: from_millis(row.expires_at)?,
            revoked_at: row.revoked_at.map(from_millis).transpose()?,
            fingerprint_hash: row.fingerprint_hash,
            user_agent: row.user_agent,
            ip: row.ip,
        })
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    alg: String,
    private_der: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = super::StoreError;
    fn try_from(row: KeyRow) -> StoreResult<StoredKey> {
        Ok(StoredKey {
            kid: row.kid,
            alg: row.alg,
            private_der: row.private_der,
            public_jwk: row.public_jwk,
            created_at: from_millis(row.created_at)?,
            activates_at: from_millis(row.activates_at)?,
            retired_at: row.retired_at.map(from_millis).transpose()?,
        })
    }
}

/// PostgreSQL text cannot hold NUL, so no stored name contains one; asking for such a name
/// would be an error rather than "not found".
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// One session's compare-and-swap, as `Store::rotate_session` describes it.
pub(super) struct Rotation {
    pub(super) id: Uuid,
    pub(super) generation: i64,
    pub(super) expires_at: OffsetDateTime,
}

/// Runs `statement` (a `Dialect::rotate_session`) for `rotation` on `executor`.
pub(super) async fn rotate<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    statement: &'static str,
    rotation: &Rotation,
) -> StoreResult<Option<OffsetDateTime>> {
    let rotated: Option<(i64,)> = sqlx::query_as(statement)
        .bind(rotation.id.to_string())
        .bind(rotation.generation)
        .bind(to_millis(rotation.expires_at))
        .fetch_optional(executor)
        .await?;
    rotated.map(|(at,)| from_millis(at)).transpose()
}

// Column lists and the "live session" condition, spliced into the queries at compile time.
macro_rules! user_columns {
    () => {
        "id, username, email, first_name, last_name, gender, phone, city"
    };
}
macro_rules! session_columns {
    () => {
        "id, user_id, generation, rotated_at, created_at, last_used_at, expires_at, revoked_at, \
         fingerprint_hash, user_agent, ip"
    };
}
/// Binds the current time as `$2`.
macro_rules! live {
    () => {
        "revoked_at IS NULL AND expires_at > $2"
    };
}

/// One GCRA step in one statement (`$1` key, `$2` now, `$3` interval, `$4` tolerance, all
/// milliseconds), with `$max`, the database's two-argument maximum. No row back: limited.
macro_rules! take_rate_token_sql {
    ($max:literal) => {
        concat!(
            "INSERT INTO login_limits (key, tat) VALUES ($1, $2 + $3) ON CONFLICT (key) DO \
             UPDATE SET tat = ",
            $max,
            "(login_limits.tat, $2) + $3 WHERE ",
            $max,
            "(login_limits.tat, $2) + $3 - $2 <= $4 RETURNING tat"
        )
    };
}
pub(super) use take_rate_token_sql;

pub(super) const FIND_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
pub(super) const JOBS_OF: &str = "SELECT id, user_id, company_name, title, first_date, last_date, \
     skills, department, ein FROM jobs WHERE user_id = $1 ORDER BY first_date DESC";
pub(super) const FIND_SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE id = $1"
);
pub(super) const LIVE_SESSIONS_OF: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE user_id = $1 AND ",
    live!(),
    " ORDER BY created_at DESC, id"
);

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn insert_user(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, username, email, first_name, last_name, gender, phone, city, \
             password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(&user.gender)
        .bind(&user.phone)
        .bind(&user.city)
        .bind(password_hash)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        if !storable(username) {
            return Ok(None);
        }
        let row: Option<UserWithHashRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| Ok((row.user.try_into()?, row.password_hash)))
            .transpose()
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        if let Some(direct) = &self.direct {
            return direct.find_user(id);
        }
        let row: Option<UserRow> = sqlx::query_as(FIND_USER)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(User::try_from).transpose()
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(updated == 1)
    }

    async fn insert_job(&self, job: &Job) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jobs (id, user_id, company_name, title, first_date, last_date, skills, \
             department, ein) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(job.id.to_string())
        .bind(job.user_id.to_string())
        .bind(&job.company_name)
        .bind(&job.title)
        .bind(to_millis(job.first_date))
        .bind(to_millis(job.last_date))
        .bind(&job.skills)
        .bind(&job.department)
        .bind(&job.ein)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        if let Some(direct) = &self.direct {
            return direct.jobs_of(user_id);
        }
        let rows: Vec<JobRow> = sqlx::query_as(JOBS_OF)
            .bind(user_id.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn create_session(
        &self,
        session: &Session,
        limit: SessionLimit,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let user_id = session.user_id.to_string();
        let mut tx = self.writer.begin().await?;
        if let Some(lock_user) = self.dialect.lock_user {
            sqlx::query(lock_user)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
        }
        let live: Vec<(String,)> = sqlx::query_as(concat!(
            "SELECT id FROM sessions WHERE user_id = $1 AND ",
            live!(),
            " ORDER BY last_used_at, created_at"
        ))
        .bind(&user_id)
        .bind(to_millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let excess = (live.len() + 1).saturating_sub(limit.max_sessions as usize);
        let to_revoke: &[(String,)] = match limit.policy {
            _ if excess == 0 => &[],
            SessionLimitPolicy::RevokeAll => &live,
            SessionLimitPolicy::EvictOldest => &live[..excess.min(live.len())],
        };
        for (id,) in to_revoke {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(to_millis(now))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(session.id.to_string())
        .bind(&user_id)
        .bind(session.generation)
        .bind(session.rotated_at.map(to_millis))
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.last_used_at))
        .bind(to_millis(session.expires_at))
        .bind(session.revoked_at.map(to_millis))
        .bind(&session.fingerprint_hash)
        .bind(&session.user_agent)
        .bind(&session.ip)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(to_revoke.len() as u64)
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        if let Some(direct) = &self.direct {
            return direct.find_session(id);
        }
        let row: Option<SessionRow> = sqlx::query_as(FIND_SESSION)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(Session::try_from).transpose()
    }

    async fn rotate_session(
        &self,
        id: Uuid,
        generation: i64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let rotation = Rotation {
            id,
            generation,
            expires_at,
        };
        match &self.rotation_batches {
            Some(batches) => batches.rotate(rotation).await,
            None => rotate(&self.writer, self.dialect.rotate_session, &rotation).await,
        }
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let revoked = sqlx::query(concat!(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND ",
            live!(),
            " \
             AND (CAST($3 AS TEXT) IS NULL OR user_id = $3)"
        ))
        .bind(id.to_string())
        .bind(to_millis(now))
        .bind(owner.map(|owner| owner.to_string()))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }

    async fn revoke_sessions_of(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<u64> {
        let revoked = sqlx::query(concat!(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND ",
            live!()
        ))
        .bind(user_id.to_string())
        .bind(to_millis(now))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(revoked)
    }

    async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        if let Some(direct) = &self.direct {
            return direct.live_sessions_of(user_id, now);
        }
        let rows: Vec<SessionRow> = sqlx::query_as(LIVE_SESSIONS_OF)
            .bind(user_id.to_string())
            .bind(to_millis(now))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Session::try_from).collect()
    }

    async fn count_live_sessions(&self, now: OffsetDateTime) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(to_millis(now))
        .fetch_one(&self.reader)
        .await?;
        Ok(count)
    }

    async fn has_device(&self, username: &str, fingerprint_hash: &str) -> StoreResult<bool> {
        if !storable(username) {
            return Ok(false);
        }
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT CAST(1 AS BIGINT) FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE users.username = $1 AND sessions.fingerprint_hash = $2 LIMIT 1",
        )
        .bind(username)
        .bind(fingerprint_hash)
        .fetch_optional(&self.reader)
        .await?;
        Ok(found.is_some())
    }

    async fn delete_dead_sessions(&self, cutoff: OffsetDateTime) -> StoreResult<u64> {
        let deleted =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at <= $1")
                .bind(to_millis(cutoff))
                .execute(&self.writer)
                .await?
                .rows_affected();
        Ok(deleted)
    }

    async fn insert_key_if_none(&self, key: &StoredKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_jwk, created_at, \
             activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(&key.public_jwk)
        .bind(to_millis(key.created_at))
        .bind(to_millis(key.activates_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn rotate_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL",
        )
        .bind(&key.alg)
        .bind(to_millis(key.activates_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_jwk, created_at, \
             activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(&key.public_jwk)
        .bind(to_millis(key.created_at))
        .bind(to_millis(key.activates_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn keys(&self, alg: &str) -> StoreResult<Vec<StoredKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, alg, private_der, public_jwk, created_at, activates_at, retired_at \
             FROM signing_keys WHERE alg = $1 ORDER BY activates_at DESC",
        )
        .bind(alg)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(StoredKey::try_from).collect()
    }

    fn is_shared(&self) -> bool {
        self.dialect.shared
    }

    async fn take_rate_token(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
        tolerance: Duration,
    ) -> StoreResult<Option<Duration>> {
        let now = to_millis(now);
        let interval = duration_millis(interval);
        let taken: Option<(i64,)> = sqlx::query_as(self.dialect.take_rate_token)
            .bind(key)
            .bind(now)
            .bind(interval)
            .bind(duration_millis(tolerance))
            .fetch_optional(&self.writer)
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        // The row may have been swept meanwhile; then the key has recovered: wait a step.
        let tat: Option<(i64,)> = sqlx::query_as("SELECT tat FROM login_limits WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.writer)
            .await?;
        let tat = tat.map_or(now, |(tat,)| tat);
        let wait = tat.max(now) + interval - duration_millis(tolerance) - now;
        Ok(Some(Duration::from_millis(wait.max(1) as u64)))
    }

    async fn forget_recovered_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM login_limits WHERE tat <= $1")
            .bind(to_millis(now))
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted)
    }
}
