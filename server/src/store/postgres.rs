//! PostgreSQL, shared by any number of instances. Transactions run in parallel, so a login
//! locks its user's row to apply the session limit exactly.

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::SqlStore;
use super::{StoreOptions, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

const LOCK_USER: &str = "SELECT id FROM users WHERE id = $1 FOR UPDATE";

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
                connection.execute(statement_timeout.as_str()).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(SqlStore::new(pool.clone(), pool, Some(LOCK_USER), None))
}
