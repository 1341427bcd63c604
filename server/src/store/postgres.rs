//! PostgreSQL, shared by any number of instances. Transactions run in parallel, so a login
//! locks its user's row to apply the session limit exactly, and a rotation locks its session
//! before it reads the clock.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgListener;
use sqlx::{Any, Executor, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{rotate, take_rate_token_sql, Rotation, SharedSql, SqlBackend};
use super::{StoreOptions, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// `Store::rotate_session`. The row is locked first, in the CTE, so that the clock is read
/// after any wait for a concurrent writer of the same session (an UPDATE alone computes its
/// values before).
const ROTATE_SESSION: &str = "WITH locked AS (SELECT id FROM sessions WHERE id = $1 FOR UPDATE), \
     now AS (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS at \
     FROM locked) \
     UPDATE sessions SET generation = generation + 1, rotated_at = now.at, \
     last_used_at = now.at, expires_at = $3 FROM now \
     WHERE sessions.id = $1 AND generation = $2 AND revoked_at IS NULL \
     AND expires_at > now.at RETURNING rotated_at";

/// The channel `0004_revocation_notices.sql` notifies when sessions are revoked.
const REVOCATIONS_CHANNEL: &str = "tollgate_revocations";
/// How soon a failed attempt to listen is retried.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

pub struct PostgresStore {
    sql: SharedSql,
    url: String,
    /// Listens for revocation notices; connected on first use, again after a failure.
    listener: tokio::sync::Mutex<Option<PgListener>>,
}

#[async_trait]
impl SqlBackend for PostgresStore {
    const TAKE_RATE_TOKEN: &'static str = take_rate_token_sql!("GREATEST");

    fn sql(&self) -> &SharedSql {
        &self.sql
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// Locks the user's row: a second login of the same user waits until this one commits,
    /// and then sees its session when it applies the limit.
    async fn begin_user_transaction(
        &self,
        user_id: Uuid,
    ) -> StoreResult<Transaction<'static, Any>> {
        let mut transaction = self.sql.writer.begin().await?;
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id.to_string())
            .execute(&mut *transaction)
            .await?;
        Ok(transaction)
    }

    async fn rotate_session(&self, rotation: Rotation) -> StoreResult<Option<OffsetDateTime>> {
        rotate(&self.sql.writer, ROTATE_SESSION, &rotation).await
    }

    async fn close(&self) {
        *self.listener.lock().await = None;
        self.sql.close().await;
    }

    async fn revocations_changed(&self, poll: Duration) {
        let mut listener = self.listener.lock().await;
        let Some(listening) = listener.as_mut() else {
            // Not listening (yet, or any more): whatever happened meanwhile is for the caller
            // to read, so a fresh connection counts as a change.
            match tokio::time::timeout(poll, listen(&self.url)).await {
                Ok(Ok(connected)) => *listener = Some(connected),
                Ok(Err(error)) => {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "cannot listen for revocations; retrying"
                    );
                    // Retried soon whatever `poll` is: notices are the fast path.
                    tokio::time::sleep(poll.min(LISTEN_RETRY)).await;
                }
                Err(_) => {}
            }
            return;
        };
        match tokio::time::timeout(poll, listening.try_recv()).await {
            // A notice (those queued behind it are read by the same catch-up), a lost
            // connection (it reconnects on the next call; notices sent meanwhile are lost), or
            // nothing within `poll`: all mean "read what changed".
            Ok(Ok(_)) | Err(_) => while listening.next_buffered().is_some() {},
            Ok(Err(error)) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "revocation notices lost"
                );
                *listener = None;
            }
        }
    }
}

/// Connects and brings the schema up to date; migrations take an advisory lock, so
/// instances starting together run them once.
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<PostgresStore> {
    let statement_timeout = format!("SET statement_timeout = {}", options.timeout.as_millis());
    let pool = AnyPoolOptions::new()
        .max_connections(options.pool_size)
        .acquire_timeout(options.timeout)
        .after_connect(move |connection, _| {
            let statement_timeout = statement_timeout.clone();
            Box::pin(async move {
                // A number formatted by us, not input: safe to splice.
                connection
                    .execute(sqlx::AssertSqlSafe(statement_timeout))
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(PostgresStore {
        sql: SharedSql {
            writer: pool.clone(),
            reader: pool,
        },
        url: url.to_owned(),
        listener: tokio::sync::Mutex::new(None),
    })
}

async fn listen(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(REVOCATIONS_CHANNEL).await?;
    Ok(listener)
}
