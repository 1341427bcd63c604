//! The queries both databases share, written once through `sqlx::Any` in the SQL that
//! SQLite and PostgreSQL both understand. `SqlBackend` is what a backend does its own way
//! (SQLite's direct reads and batched commits, PostgreSQL's row locks); every backend is a
//! `Store` through it.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Any, AnyPool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{placeholders, AuditRow, JobRow, KeyRow, SessionRow, UserRow};
use super::{
    duration_millis, from_millis, parse_uuid, to_millis, AuditQuery, AuditRecord, ChooseEvictions,
    Job, RevocationCursor, Session, SignInCheck, Store, StoreError, StoreResult, StoredKey, User,
};

/// SQL text assembled from column lists, once per process.
macro_rules! sql {
    ($($part:expr),+ $(,)?) => {{
        static TEXT: LazyLock<String> = LazyLock::new(|| [$($part),+].concat());
        TEXT.as_str()
    }};
}

/// "Live": neither revoked nor expired at `$2`.
const LIVE: &str = "revoked_at IS NULL AND expires_at > $2";

pub(super) fn find_user_sql() -> &'static str {
    sql!("SELECT ", UserRow::COLUMNS, " FROM users WHERE id = $1")
}

pub(super) fn jobs_of_sql() -> &'static str {
    sql!(
        "SELECT ",
        JobRow::COLUMNS,
        " FROM jobs WHERE user_id = $1 ORDER BY first_date DESC"
    )
}

pub(super) fn find_session_sql() -> &'static str {
    sql!(
        "SELECT ",
        SessionRow::COLUMNS,
        " FROM sessions WHERE id = $1"
    )
}

/// `$1` user id, `$2` now.
pub(super) fn live_sessions_of_sql() -> &'static str {
    sql!(
        "SELECT ",
        SessionRow::COLUMNS,
        " FROM sessions WHERE user_id = $1 AND ",
        LIVE,
        " ORDER BY created_at DESC, id"
    )
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

/// One session's compare-and-swap, as `Store::rotate_session` describes it.
pub(super) struct Rotation {
    pub(super) id: Uuid,
    pub(super) generation: i64,
    pub(super) expires_at: OffsetDateTime,
}

/// Runs a backend's rotation `statement` (`$1` id, `$2` generation, `$3` new expiry,
/// returning the database's time of the write) for `rotation` on `executor`.
pub(super) async fn rotate<'c>(
    executor: impl sqlx::Executor<'c, Database = Any>,
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

/// PostgreSQL text cannot hold NUL, so no stored name contains one; asking for such a name
/// would be an error rather than "not found".
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Revokes the user's live sessions but `keep` on `executor` (a pool or a transaction); their
/// ids.
async fn revoke_sessions_in<'c>(
    executor: impl sqlx::Executor<'c, Database = Any>,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: OffsetDateTime,
) -> StoreResult<Vec<Uuid>> {
    let revoked: Vec<(String,)> = sqlx::query_as(sql!(
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND ",
        LIVE,
        " AND id <> $3 RETURNING id"
    ))
    .bind(user_id.to_string())
    .bind(to_millis(now))
    .bind(keep.map(|sid| sid.to_string()).unwrap_or_default())
    .fetch_all(executor)
    .await?;
    revoked.iter().map(|(id,)| parse_uuid(id)).collect()
}

async fn forget_password_resets_in(
    tx: &mut Transaction<'static, Any>,
    user_id: Uuid,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
        .bind(user_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `text` with LIKE's wildcards (and the escape character) escaped by a backslash.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The pools and every shared query.
pub(super) struct SharedSql {
    /// Every write goes through here.
    pub(super) writer: AnyPool,
    /// Reads; the same pool as `writer` where the database has no single-writer limit.
    pub(super) reader: AnyPool,
}

impl SharedSql {
    pub(super) async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    pub(super) async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(find_user_sql())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(User::try_from).transpose()
    }

    pub(super) async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(jobs_of_sql())
            .bind(user_id.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    pub(super) async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(find_session_sql())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(Session::try_from).transpose()
    }

    pub(super) async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(live_sessions_of_sql())
            .bind(user_id.to_string())
            .bind(to_millis(now))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Session::try_from).collect()
    }

    /// `create_session` inside a transaction the backend has opened (and locked as it must).
    pub(super) async fn create_session_in(
        transaction: &mut Transaction<'static, Any>,
        session: &Session,
        now: OffsetDateTime,
        evict: ChooseEvictions<'_>,
        checked: Option<SignInCheck<'_>>,
    ) -> StoreResult<Vec<Uuid>> {
        let user_id = session.user_id.to_string();
        let active: Option<(i64,)> = sqlx::query_as(
            "SELECT CAST(1 AS BIGINT) FROM users WHERE id = $1 AND disabled_at IS NULL \
             AND ($2 = '' OR (password_hash = $2 AND roles = $3))",
        )
        .bind(&user_id)
        .bind(checked.map_or("", |checked| checked.password_hash))
        .bind(
            checked
                .map(|checked| checked.roles.join(","))
                .unwrap_or_default(),
        )
        .fetch_optional(&mut **transaction)
        .await?;
        if active.is_none() {
            return Err(StoreError::InactiveUser);
        }
        let live: Vec<SessionRow> = sqlx::query_as(sql!(
            "SELECT ",
            SessionRow::COLUMNS,
            " FROM sessions WHERE user_id = $1 AND ",
            LIVE
        ))
        .bind(&user_id)
        .bind(to_millis(now))
        .fetch_all(&mut **transaction)
        .await?;
        let live = live
            .into_iter()
            .map(Session::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut revoked = Vec::new();
        for id in evict(&live) {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND user_id = $3 \
                 AND revoked_at IS NULL",
            )
            .bind(id.to_string())
            .bind(to_millis(now))
            .bind(&user_id)
            .execute(&mut **transaction)
            .await?;
            if done.rows_affected() == 1 {
                revoked.push(id);
            }
        }
        let insert = sqlx::query(sql!(
            "INSERT INTO sessions (",
            SessionRow::COLUMNS,
            ") VALUES (",
            &SessionRow::placeholders(),
            ")"
        ));
        SessionRow::from(session)
            .bind_all(insert)
            .execute(&mut **transaction)
            .await?;
        Ok(revoked)
    }

    /// `take_rate_token` with a backend's `statement` (see `take_rate_token_sql!`).
    pub(super) async fn take_rate_token(
        &self,
        statement: &'static str,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
        tolerance: Duration,
    ) -> StoreResult<Option<Duration>> {
        let now = to_millis(now);
        let interval = duration_millis(interval);
        let taken: Option<(i64,)> = sqlx::query_as(statement)
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
}

/// What a backend does its own way. The defaults are the shared SQL.
#[async_trait]
pub(super) trait SqlBackend: Send + Sync + 'static {
    fn sql(&self) -> &SharedSql;

    /// Whether other instances may share the database.
    fn is_shared(&self) -> bool;

    async fn close(&self) {
        self.sql().close().await;
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.sql().find_user(id).await
    }

    async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        self.sql().jobs_of(user_id).await
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        self.sql().find_session(id).await
    }

    async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        self.sql().live_sessions_of(user_id, now).await
    }

    /// Opens the transaction of `create_session` and serialises one user's logins in it.
    async fn begin_user_transaction(&self, user_id: Uuid)
        -> StoreResult<Transaction<'static, Any>>;

    async fn rotate_session(&self, rotation: Rotation) -> StoreResult<Option<OffsetDateTime>>;

    /// `take_rate_token`'s statement (`take_rate_token_sql!` with the database's maximum).
    const TAKE_RATE_TOKEN: &'static str;

    /// Without notifications, other processes' revocations are found by polling.
    async fn revocations_changed(&self, poll: Duration) {
        tokio::time::sleep(poll).await;
    }
}

#[async_trait]
impl<B: SqlBackend> Store for B {
    async fn ping(&self) -> StoreResult<()> {
        self.sql().ping().await
    }

    async fn close(&self) {
        SqlBackend::close(self).await;
    }

    async fn insert_user(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        let insert = sqlx::query(sql!(
            "INSERT INTO users (",
            UserRow::COLUMNS,
            ", password_hash) VALUES (",
            &placeholders(1..=UserRow::COUNT + 1),
            ")"
        ));
        UserRow::from(user)
            .bind_all(insert)
            .bind(password_hash)
            .execute(&self.sql().writer)
            .await?;
        Ok(())
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        #[derive(sqlx::FromRow)]
        struct WithHash {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: String,
        }
        if !storable(username) {
            return Ok(None);
        }
        let row: Option<WithHash> = sqlx::query_as(sql!(
            "SELECT ",
            UserRow::COLUMNS,
            ", password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.sql().reader)
        .await?;
        row.map(|row| Ok((row.user.try_into()?, row.password_hash)))
            .transpose()
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        SqlBackend::find_user(self, id).await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        replacing: Option<&str>,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Vec<Uuid>>> {
        let mut tx = self.sql().writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND ($3 = '' OR password_hash = $3)",
        )
        .bind(password_hash)
        .bind(id.to_string())
        .bind(replacing.unwrap_or(""))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let revoked = revoke_sessions_in(&mut *tx, id, keep, now).await?;
        forget_password_resets_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn password_hash(&self, id: Uuid) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.sql().reader)
                .await?;
        Ok(row.map(|(hash,)| hash))
    }

    async fn find_users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        if !storable(email) {
            return Ok(Vec::new());
        }
        let rows: Vec<UserRow> = sqlx::query_as(sql!(
            "SELECT ",
            UserRow::COLUMNS,
            " FROM users WHERE LOWER(email) = LOWER($1) AND email <> '' ORDER BY username"
        ))
        .bind(email)
        .fetch_all(&self.sql().reader)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn search_users(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        if !storable(query) || !after.is_none_or(storable) {
            return Ok(Vec::new());
        }
        let rows: Vec<UserRow> = sqlx::query_as(sql!(
            "SELECT ",
            UserRow::COLUMNS,
            " FROM users WHERE ($1 = '' OR LOWER(username) LIKE LOWER($2) ESCAPE '\\' \
             OR LOWER(email) LIKE LOWER($2) ESCAPE '\\' \
             OR LOWER(first_name) LIKE LOWER($2) ESCAPE '\\' \
             OR LOWER(last_name) LIKE LOWER($2) ESCAPE '\\') AND username > $3 \
             ORDER BY username LIMIT $4"
        ))
        .bind(query)
        .bind(format!("%{}%", like_escaped(query)))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.sql().reader)
        .await?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn set_roles(&self, id: Uuid, roles: &[String]) -> StoreResult<bool> {
        let updated = sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
            .bind(roles.join(","))
            .bind(id.to_string())
            .execute(&self.sql().writer)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Vec<Uuid>>> {
        let mut tx = self.sql().writer.begin().await?;
        let update = if disabled {
            sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE id = $1")
                .bind(id.to_string())
                .bind(to_millis(now))
        } else {
            sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1").bind(id.to_string())
        };
        let updated = update.execute(&mut *tx).await?.rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let revoked = if disabled {
            forget_password_resets_in(&mut tx, id).await?;
            revoke_sessions_in(&mut *tx, id, None, now).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn delete_user(&self, id: Uuid, now: OffsetDateTime) -> StoreResult<Option<Vec<Uuid>>> {
        let mut tx = self.sql().writer.begin().await?;
        let revoked = revoke_sessions_in(&mut *tx, id, None, now).await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn insert_password_reset(
        &self,
        token_hash: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(to_millis(expires_at))
        .execute(&self.sql().writer)
        .await?;
        Ok(())
    }

    async fn password_reset_user(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(sql!(
            "SELECT ",
            UserRow::COLUMNS,
            " FROM password_resets JOIN users ON users.id = password_resets.user_id \
             WHERE token_hash = $1 AND expires_at > $2 AND disabled_at IS NULL"
        ))
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.sql().reader)
        .await?;
        row.map(User::try_from).transpose()
    }

    async fn use_password_reset(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Uuid, Vec<Uuid>)>> {
        let mut tx = self.sql().writer.begin().await?;
        // The user's row first, then the resets: the order in which disabling and deleting a
        // user take them, so that they cannot deadlock with this on PostgreSQL.
        let updated: Option<(String,)> = sqlx::query_as(
            "UPDATE users SET password_hash = $1 WHERE id = (SELECT user_id FROM password_resets \
             WHERE token_hash = $2 AND expires_at > $3) RETURNING id",
        )
        .bind(password_hash)
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = updated else {
            return Ok(None);
        };
        // Spent once: a concurrent use of the same token finds it gone and changes nothing.
        let spent = sqlx::query("DELETE FROM password_resets WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if spent == 0 {
            return Ok(None);
        }
        let user_id = parse_uuid(&user_id)?;
        let revoked = revoke_sessions_in(&mut *tx, user_id, None, now).await?;
        forget_password_resets_in(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(Some((user_id, revoked)))
    }

    async fn delete_expired_password_resets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1")
            .bind(to_millis(now))
            .execute(&self.sql().writer)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    async fn first_dpop_use(&self, key: &[u8; 32], forget_at: i64, now: i64) -> StoreResult<bool> {
        // A row past its time is taken over; a live one makes this a replay.
        let inserted = sqlx::query(
            "INSERT INTO dpop_replays (key, forget_at) VALUES ($1, $2) ON CONFLICT (key) DO \
             UPDATE SET forget_at = excluded.forget_at WHERE dpop_replays.forget_at <= $3",
        )
        .bind(key.to_vec())
        .bind(forget_at)
        .bind(now)
        .execute(&self.sql().writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn delete_expired_dpop_replays(&self, now: i64) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM dpop_replays WHERE forget_at <= $1")
            .bind(now)
            .execute(&self.sql().writer)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate.to_vec())
        .execute(&self.sql().writer)
        .await?;
        let (value,): (Vec<u8>,) =
            sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.sql().writer)
                .await?;
        Ok(value)
    }

    async fn insert_audit(&self, records: &[AuditRecord]) -> StoreResult<()> {
        let mut tx = self.sql().writer.begin().await?;
        for record in records {
            let row = AuditRow::from(record);
            sqlx::query(
                "INSERT INTO audit_log (at, event, outcome, user_id, username, session_id, ip, \
                 user_agent, actor_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(row.at)
            .bind(row.event)
            .bind(row.outcome)
            .bind(row.user_id)
            .bind(row.username)
            .bind(row.session_id)
            .bind(row.ip)
            .bind(row.user_agent)
            .bind(row.actor_id)
            .bind(row.detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let (user_id, username) = match &query.user {
            Some((id, username)) => (id.to_string(), username.as_str()),
            None => (String::new(), ""),
        };
        let rows: Vec<AuditRow> = sqlx::query_as(sql!(
            "SELECT ",
            AuditRow::COLUMNS,
            " FROM audit_log WHERE ($1 = '' OR user_id = $1 OR (user_id IS NULL AND username = $2)) \
             AND id < $3 ORDER BY id DESC LIMIT $4"
        ))
        .bind(user_id)
        .bind(username)
        .bind(query.before.unwrap_or(i64::MAX))
        .bind(i64::from(query.limit))
        .fetch_all(&self.sql().reader)
        .await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }

    async fn delete_audit_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(to_millis(before))
            .execute(&self.sql().writer)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    async fn insert_job(&self, job: &Job) -> StoreResult<()> {
        let insert = sqlx::query(sql!(
            "INSERT INTO jobs (",
            JobRow::COLUMNS,
            ") VALUES (",
            &JobRow::placeholders(),
            ")"
        ));
        JobRow::from(job)
            .bind_all(insert)
            .execute(&self.sql().writer)
            .await?;
        Ok(())
    }

    async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        SqlBackend::jobs_of(self, user_id).await
    }

    async fn create_session(
        &self,
        session: &Session,
        now: OffsetDateTime,
        evict: ChooseEvictions<'_>,
        checked: Option<SignInCheck<'_>>,
    ) -> StoreResult<Vec<Uuid>> {
        let mut transaction = self.begin_user_transaction(session.user_id).await?;
        let revoked =
            SharedSql::create_session_in(&mut transaction, session, now, evict, checked).await?;
        transaction.commit().await?;
        Ok(revoked)
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        SqlBackend::find_session(self, id).await
    }

    async fn rotate_session(
        &self,
        id: Uuid,
        generation: i64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<Option<OffsetDateTime>> {
        SqlBackend::rotate_session(
            self,
            Rotation {
                id,
                generation,
                expires_at,
            },
        )
        .await
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let revoked = sqlx::query(sql!(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND ",
            LIVE,
            " AND (CAST($3 AS TEXT) IS NULL OR user_id = $3)"
        ))
        .bind(id.to_string())
        .bind(to_millis(now))
        .bind(owner.map(|owner| owner.to_string()))
        .execute(&self.sql().writer)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }

    async fn revoke_sessions_of(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Uuid>> {
        revoke_sessions_in(&self.sql().writer, user_id, keep, now).await
    }

    async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        SqlBackend::live_sessions_of(self, user_id, now).await
    }

    async fn count_live_sessions(&self, now: OffsetDateTime) -> StoreResult<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(to_millis(now))
        .fetch_one(&self.sql().reader)
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
        .fetch_optional(&self.sql().reader)
        .await?;
        Ok(found.is_some())
    }

    async fn delete_dead_sessions(
        &self,
        now: OffsetDateTime,
        revoked_before: OffsetDateTime,
    ) -> StoreResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM sessions WHERE (revoked_at IS NULL AND expires_at <= $1) \
             OR revoked_at <= $2",
        )
        .bind(to_millis(now))
        .bind(to_millis(revoked_before))
        .execute(&self.sql().writer)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn revoked_sessions(
        &self,
        after: RevocationCursor,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, OffsetDateTime)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1 \
             AND (revoked_at > $1 OR id > $2) ORDER BY revoked_at, id LIMIT $3",
        )
        .bind(to_millis(after.revoked_at))
        .bind(after.sid.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.sql().reader)
        .await?;
        rows.into_iter()
            .map(|(id, at)| Ok((parse_uuid(&id)?, from_millis(at)?)))
            .collect()
    }

    async fn revocations_changed(&self, poll: Duration) {
        SqlBackend::revocations_changed(self, poll).await;
    }

    async fn insert_key_if_none(&self, key: &StoredKey) -> StoreResult<()> {
        let insert = sqlx::query(sql!(
            "INSERT INTO signing_keys (",
            KeyRow::COLUMNS,
            ") VALUES (",
            &KeyRow::placeholders(),
            ") ON CONFLICT DO NOTHING"
        ));
        KeyRow::current(key)
            .bind_all(insert)
            .execute(&self.sql().writer)
            .await?;
        Ok(())
    }

    async fn rotate_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut tx = self.sql().writer.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND retired_at IS NULL",
        )
        .bind(&key.alg)
        .bind(to_millis(key.activates_at))
        .execute(&mut *tx)
        .await?;
        let insert = sqlx::query(sql!(
            "INSERT INTO signing_keys (",
            KeyRow::COLUMNS,
            ") VALUES (",
            &KeyRow::placeholders(),
            ")"
        ));
        KeyRow::current(key)
            .bind_all(insert)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn keys(&self, alg: &str) -> StoreResult<Vec<StoredKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(sql!(
            "SELECT ",
            KeyRow::COLUMNS,
            " FROM signing_keys WHERE alg = $1 ORDER BY activates_at DESC"
        ))
        .bind(alg)
        .fetch_all(&self.sql().reader)
        .await?;
        rows.into_iter().map(StoredKey::try_from).collect()
    }

    fn is_shared(&self) -> bool {
        SqlBackend::is_shared(self)
    }

    async fn take_rate_token(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
        tolerance: Duration,
    ) -> StoreResult<Option<Duration>> {
        self.sql()
            .take_rate_token(Self::TAKE_RATE_TOKEN, key, now, interval, tolerance)
            .await
    }

    async fn forget_recovered_rate_limits(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM login_limits WHERE tat <= $1")
            .bind(to_millis(now))
            .execute(&self.sql().writer)
            .await?
            .rows_affected();
        Ok(deleted)
    }
}
