//! SQLite in WAL mode. All writes go through a pool of one connection, so writers queue in
//! the pool instead of meeting "database is locked"; reads use their own pool in parallel.
//! The reads behind every authenticated request (the user, their jobs, their sessions) skip
//! sqlx's per-connection worker thread and run on the caller's thread: they are indexed point
//! lookups of microseconds, and the hop to the worker and back cost ten times more.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row};
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::rows::{JobRow, SessionRow, UserRow};
use super::sql::{
    find_session_sql, find_user_sql, jobs_of_sql, live_sessions_of_sql, rotate,
    take_rate_token_sql, Rotation, SharedSql, SqlBackend,
};
use super::{to_millis, Job, Session, StoreError, StoreOptions, StoreResult, User};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// The database's clock in Unix milliseconds, read when the statement runs: after it has the
/// write lock.
macro_rules! now_millis {
    () => {
        "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
    };
}

/// `Store::rotate_session`, stamped with the database's clock at the time of the write.
const ROTATE_SESSION: &str = concat!(
    "UPDATE sessions SET generation = generation + 1, rotated_at = ",
    now_millis!(),
    ", last_used_at = ",
    now_millis!(),
    ", expires_at = $3 WHERE id = $1 AND generation = $2 AND revoked_at IS NULL \
     AND expires_at > ",
    now_millis!(),
    " RETURNING rotated_at"
);

/// SQLite: one file, one writer at a time, readers beside it.
pub struct SqliteStore {
    sql: SharedSql,
    direct: DirectReads,
    rotations: RotationBatches,
}

#[async_trait]
impl SqlBackend for SqliteStore {
    const TAKE_RATE_TOKEN: &'static str = take_rate_token_sql!("MAX");

    fn sql(&self) -> &SharedSql {
        &self.sql
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn close(&self) {
        self.direct.close();
        self.sql.close().await;
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.direct.find_user(id)
    }

    async fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        self.direct.jobs_of(user_id)
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        self.direct.find_session(id)
    }

    async fn live_sessions_of(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<Session>> {
        self.direct.live_sessions_of(user_id, now)
    }

    /// One writer connection: a transaction is already alone.
    async fn begin_user_transaction(
        &self,
        _user_id: Uuid,
    ) -> StoreResult<Transaction<'static, Any>> {
        Ok(self.sql.writer.begin().await?)
    }

    async fn rotate_session(&self, rotation: Rotation) -> StoreResult<Option<OffsetDateTime>> {
        self.rotations.rotate(rotation).await
    }
}

impl SqliteStore {
    /// A PRAGMA's value on the writing connection, for tests.
    #[cfg(test)]
    async fn writer_pragma(&self, name: &str) -> StoreResult<i64> {
        let (value,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(&self.sql.writer)
            .await?;
        Ok(value)
    }
}

/// Opens (creating if needed) the database file and brings its schema up to date.
pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<SqliteStore> {
    // In WAL mode, FULL syncs the log at every commit; NORMAL only at checkpoints.
    let synchronous = if options.durable_commits {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    };
    let writer = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.timeout.max(Duration::from_secs(30)))
        .after_connect(move |connection, _| {
            Box::pin(async move {
                connection.execute("PRAGMA journal_mode = WAL;").await?;
                connection.execute(PRAGMAS).await?;
                connection.execute(synchronous).await?;
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
    Ok(SqliteStore {
        direct: DirectReads::new(url, options)?,
        rotations: RotationBatches::start(writer.clone()),
        sql: SharedSql { writer, reader },
    })
}

/// Rotations that wait for the writer are committed together, in one transaction: with
/// `synchronous = FULL` every commit is a sync to disk, and one sync for a batch of refreshes
/// keeps durability cheap. A rotation is answered only once its batch has committed. A batch
/// that fails is retried one rotation at a time, so each caller gets its own outcome.
struct RotationBatches {
    queue: mpsc::UnboundedSender<Waiting>,
}

type Waiting = (
    Rotation,
    oneshot::Sender<StoreResult<Option<OffsetDateTime>>>,
);

/// Rotations in one transaction at most: a bound on how long the writer is held.
const MAX_ROTATIONS_PER_COMMIT: usize = 256;

impl RotationBatches {
    fn start(writer: AnyPool) -> RotationBatches {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(commit_batches(writer, waiting));
        RotationBatches { queue }
    }

    async fn rotate(&self, rotation: Rotation) -> StoreResult<Option<OffsetDateTime>> {
        let (done, outcome) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the store is closed".into());
        self.queue.send((rotation, done)).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// Takes every rotation waiting, commits them together, answers each; until the store goes.
async fn commit_batches(writer: AnyPool, mut waiting: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_ROTATIONS_PER_COMMIT {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match commit_together(&writer, &batch).await {
            Ok(stamps) => {
                metrics::histogram!("tollgate_rotations_per_commit").record(batch.len() as f64);
                for ((_, done), stamp) in batch.into_iter().zip(stamps) {
                    let _ = done.send(Ok(stamp));
                }
            }
            // Nothing of the batch was committed: each on its own, with its own outcome.
            Err(_) => {
                for (rotation, done) in batch {
                    let outcome = rotate(&writer, ROTATE_SESSION, &rotation).await;
                    metrics::histogram!("tollgate_rotations_per_commit").record(1.0);
                    let _ = done.send(outcome);
                }
            }
        }
    }
}

async fn commit_together(
    writer: &AnyPool,
    batch: &[Waiting],
) -> StoreResult<Vec<Option<OffsetDateTime>>> {
    let mut transaction = writer.begin().await?;
    let mut stamps = Vec::with_capacity(batch.len());
    for (rotation, _) in batch {
        stamps.push(rotate(&mut *transaction, ROTATE_SESSION, rotation).await?);
    }
    transaction.commit().await?;
    Ok(stamps)
}

/// Writes a consistent copy of the SQLite database at `url` to `target`, while it may be in
/// use: SQLite's online backup, in one step, so that it reads one snapshot (in WAL mode
/// writers go on meanwhile). The copy is written beside `target` and renamed into place once
/// it is complete and on disk (the caller makes sure that no `target` exists). Returns its size
/// in pages.
pub fn backup(url: &str, target: &std::path::Path) -> StoreResult<i32> {
    let source_path = SqliteConnectOptions::from_str(url)?
        .get_filename()
        .to_path_buf();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source = Connection::open_with_flags(&source_path, flags)?;
    source.busy_timeout(Duration::from_secs(30))?;
    let partial = target.with_file_name(format!(
        ".{}.partial",
        target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&partial);
    let pages = {
        let mut copy = Connection::open(&partial)?;
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        loop {
            // -1: every page in one step, from one snapshot of the source.
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        backup.progress().pagecount
    };
    let on_disk = std::fs::File::open(&partial).and_then(|file| file.sync_all());
    on_disk
        .and_then(|()| std::fs::rename(&partial, target))
        .map_err(|error| StoreError::Unavailable(error.into()))?;
    Ok(pages)
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

/// Read-only connections used synchronously by whichever thread asks; idle ones are kept.
struct DirectReads {
    path: std::path::PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl DirectReads {
    /// The same file as `url`.
    fn new(url: &str, options: &StoreOptions) -> StoreResult<DirectReads> {
        let path = SqliteConnectOptions::from_str(url)?
            .get_filename()
            .to_path_buf();
        Ok(DirectReads {
            path,
            busy_timeout: options.timeout,
            idle: Mutex::new(Vec::new()),
            max_idle: options.pool_size as usize,
        })
    }

    /// Runs `read` on an idle connection (or a new one), keeping the connection if all went well.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let idle = self.lock_idle().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let connection = Connection::open_with_flags(&self.path, flags)?;
                connection.busy_timeout(self.busy_timeout)?;
                connection
            }
        };
        let result = read(&connection)?;
        let mut idle = self.lock_idle();
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
        Ok(result)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.lock_idle().clear();
    }

    /// The first row of `sql`, if any.
    fn one<R>(
        &self,
        sql: &str,
        params: impl Params,
        row: fn(&Row<'_>) -> rusqlite::Result<R>,
    ) -> StoreResult<Option<R>> {
        self.with_connection(|connection| {
            connection
                .prepare_cached(sql)?
                .query_row(params, row)
                .optional()
        })
    }

    /// Every row of `sql`.
    fn all<R>(
        &self,
        sql: &str,
        params: impl Params,
        row: fn(&Row<'_>) -> rusqlite::Result<R>,
    ) -> StoreResult<Vec<R>> {
        self.with_connection(|connection| {
            connection
                .prepare_cached(sql)?
                .query_map(params, row)?
                .collect()
        })
    }

    fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.one(find_user_sql(), [id.to_string()], UserRow::from_sqlite)?
            .map(User::try_from)
            .transpose()
    }

    fn jobs_of(&self, user_id: Uuid) -> StoreResult<Vec<Job>> {
        self.all(jobs_of_sql(), [user_id.to_string()], JobRow::from_sqlite)?
            .into_iter()
            .map(Job::try_from)
            .collect()
    }

    fn find_session(&self, id: Uuid) -> StoreResult<Option<Session>> {
        self.one(
            find_session_sql(),
            [id.to_string()],
            SessionRow::from_sqlite,
        )?
        .map(Session::try_from)
        .transpose()
    }

    fn live_sessions_of(&self, user_id: Uuid, now: OffsetDateTime) -> StoreResult<Vec<Session>> {
        let params = rusqlite::params![user_id.to_string(), to_millis(now)];
        self.all(live_sessions_of_sql(), params, SessionRow::from_sqlite)?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{add_user, live_session, temp_sqlite_url, temp_store};
    use crate::store::SignInCheck;

    async fn synchronous_of_writes(durable_commits: bool) -> i64 {
        let options = StoreOptions {
            durable_commits,
            ..StoreOptions::default()
        };
        let store = connect(&temp_sqlite_url(), &options).await.expect("store");
        let mode = store.writer_pragma("synchronous").await.expect("pragma");
        store.close().await;
        mode
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rotations_share_commits_and_each_gets_its_own_answer() {
        let store = temp_store(&StoreOptions::default()).await;
        let user = add_user(store.as_ref(), "batch").await;
        let now = OffsetDateTime::now_utc();
        let mut ids = Vec::new();
        for _ in 0..64 {
            let session = live_session(user.id, now);
            store
                .create_session(&session, now, &|_| Vec::new(), None)
                .await
                .expect("session");
            ids.push(session.id);
        }
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of these unit tests");
        let mut rotations = tokio::task::JoinSet::new();
        // Every session twice: of each pair exactly one compare-and-swap wins.
        for id in ids.iter().chain(&ids).copied() {
            let store = store.clone();
            let expires_at = now + time::Duration::hours(2);
            rotations.spawn(async move { store.rotate_session(id, 0, expires_at).await });
        }
        let mut won = 0;
        while let Some(outcome) = rotations.join_next().await {
            won += usize::from(outcome.expect("task").expect("rotation").is_some());
        }
        assert_eq!(won, 64);
        for id in &ids {
            let session = store
                .find_session(*id)
                .await
                .expect("read")
                .expect("session");
            assert_eq!(session.generation, 1);
        }
        let metrics = recorder.render();
        let value = |series: &str| -> f64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{series} in {metrics}"))
        };
        let commits = value("tollgate_rotations_per_commit_count");
        assert_eq!(value("tollgate_rotations_per_commit_sum"), 128.0);
        assert!(commits < 64.0, "{commits} commits for 128 rotations");
        store.close().await;
    }

    #[tokio::test]
    async fn no_session_starts_for_a_user_disabled_or_deleted_meanwhile() {
        let store = temp_store(&StoreOptions::default()).await;
        let now = OffsetDateTime::now_utc();
        let disabled = add_user(store.as_ref(), "disabled").await;
        store
            .set_disabled(disabled.id, true, now)
            .await
            .expect("disable");
        let refused = store
            .create_session(&live_session(disabled.id, now), now, &|_| Vec::new(), None)
            .await;
        assert!(
            matches!(refused, Err(StoreError::InactiveUser)),
            "{refused:?}"
        );
        let deleted = add_user(store.as_ref(), "deleted").await;
        store.delete_user(deleted.id, now).await.expect("delete");
        let refused = store
            .create_session(&live_session(deleted.id, now), now, &|_| Vec::new(), None)
            .await;
        assert!(
            matches!(refused, Err(StoreError::InactiveUser)),
            "{refused:?}"
        );
        assert!(store
            .live_sessions_of(disabled.id, now)
            .await
            .expect("read")
            .is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn no_session_starts_if_the_password_or_roles_changed_since_they_were_checked() {
        let store = temp_store(&StoreOptions::default()).await;
        let now = OffsetDateTime::now_utc();
        let user = add_user(store.as_ref(), "checked").await;
        let admin = ["admin".to_owned()];
        for (password_hash, roles, starts) in [
            // A reset replaced the hash the sign-in verified.
            ("an older hash", &[][..], false),
            // A role was taken away after the sign-in read the user.
            ("hash", &admin[..], false),
            ("hash", &[][..], true),
        ] {
            let checked = SignInCheck {
                password_hash,
                roles,
            };
            let outcome = store
                .create_session(
                    &live_session(user.id, now),
                    now,
                    &|_| Vec::new(),
                    Some(checked),
                )
                .await;
            match outcome {
                Ok(_) => assert!(starts, "{password_hash} {roles:?}"),
                Err(StoreError::InactiveUser) => assert!(!starts, "{password_hash} {roles:?}"),
                Err(other) => panic!("{other:?}"),
            }
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_password_change_does_not_undo_a_password_set_meanwhile() {
        let store = temp_store(&StoreOptions::default()).await;
        let now = OffsetDateTime::now_utc();
        let user = add_user(store.as_ref(), "racer").await;
        // A reset set "reset-hash" after the change checked the password against "hash".
        store
            .set_password(user.id, "reset-hash", None, None, now)
            .await
            .expect("reset");
        let change = store
            .set_password(user.id, "change-hash", Some("hash"), None, now)
            .await
            .expect("change");
        assert_eq!(change, None);
        let hash = store.password_hash(user.id).await.expect("read");
        assert_eq!(hash.as_deref(), Some("reset-hash"));
        store.close().await;
    }

    #[tokio::test]
    async fn commits_reach_the_disk_before_they_are_confirmed_by_default() {
        const FULL: i64 = 2;
        const NORMAL: i64 = 1;
        let default = StoreOptions::default().durable_commits;
        assert_eq!(synchronous_of_writes(default).await, FULL);
        assert_eq!(synchronous_of_writes(false).await, NORMAL);
    }
}
