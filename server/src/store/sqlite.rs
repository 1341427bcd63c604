//! SQLite in WAL mode. All writes go through a pool of one connection, so writers queue in
//! the pool instead of meeting "database is locked"; reads use their own pool in parallel.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::SqlStore;
use super::{StoreOptions, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                       PRAGMA synchronous = NORMAL;";

/// Opens (creating if needed) the database file and brings its schema up to date.
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<SqlStore> {
    let writer = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.timeout.max(Duration::from_secs(30)))
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection.execute("PRAGMA journal_mode = WAL;").await?;
                connection.execute(PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(&with_mode(url, "rwc"))
        .await?;
    MIGRATOR.run(&writer).await?;
    let reader = AnyPoolOptions::new()
        .max_connections(options.pool_size)
        .acquire_timeout(options.timeout)
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection.execute(PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(&with_mode(url, "ro"))
        .await?;
    Ok(SqlStore::new(writer, reader, None))
}

/// `url` with its `mode` parameter set, unless the URL sets one itself.
fn with_mode(url: &str, mode: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode={mode}")
    } else {
        format!("{url}?mode={mode}")
    }
}
