//! PostgreSQL, shared by any number of instances. Transactions run in parallel, so a login
//! locks its user's row to apply the session limit exactly.

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::{Dialect, SqlStore};
use super::{StoreOptions, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const DIALECT: Dialect = Dialect {
    lock_user: Some("SELECT id FROM users WHERE id = $1 FOR UPDATE"),
    // The row is locked first, in the CTE, so that the clock is read after any wait for a
    // concurrent writer of the same session (an UPDATE alone computes its values before).
    rotate_session: "WITH locked AS (SELECT id FROM sessions WHERE id = $1 FOR UPDATE), \
         now AS (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS at \
         FROM locked) \
         UPDATE sessions SET generation = generation + 1, rotated_at = now.at, \
         last_used_at = now.at, expires_at = $3 FROM now \
         WHERE sessions.id = $1 AND generation = $2 AND revoked_at IS NULL \
         AND expires_at > now.at RETURNING rotated_at",
    take_rate_token: super::sql::take_rate_token_sql!("GREATEST"),
    shared: true,
};

/// Connects and brings the schema up to date; migrations take an advisory lock, so
/// instances starting together run them once.
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<SqlStore> {
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
    Ok(SqlStore::new(pool.clone(), pool, DIALECT, None, None))
}
