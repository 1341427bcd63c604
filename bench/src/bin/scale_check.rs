//! Login and refresh latency with an empty sessions table and with a million sessions in it.
//!
//! `cargo run --release -p tollgate-bench --bin scale_check -- [sqlite|postgres] [sessions]`
//! PostgreSQL comes from `TOLLGATE_TEST_DATABASE_URL`; a fresh database is created for the run.

use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tollgate::sessions::{SessionLimit, SessionLimitPolicy};
use tollgate::store::{Session, Store};
use tollgate_bench::{
    fresh_postgres, machine_description, millis, percentiles, start_instance, today,
};

const SYNTHETIC_USERS: u32 = 1000;
const REFRESHES: usize = 300;
const LOGINS: usize = 60;
const CREATIONS: usize = 300;

struct Server {
    client: reqwest::Client,
    address: String,
    store: Arc<dyn Store>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "postgres".into());
    let sessions: u64 = args
        .next()
        .map_or(Ok(1_000_000), |n| n.parse())
        .context("session count")?;
    let database = match backend.as_str() {
        "sqlite" => format!(
            "sqlite://{}",
            std::env::temp_dir()
                .join(format!("tollgate-scale-{}.db", uuid::Uuid::new_v4()))
                .display()
        ),
        "postgres" => fresh_postgres().await?,
        other => bail!("unknown backend {other:?}"),
    };
    let server = start(&database).await?;
    // A first round warms connections, caches and the allocator; it is not reported.
    measure(&server, 0).await?;
    let mut rows = vec![measure(&server, 0).await?];
    let started = Instant::now();
    fill(&database, &backend, sessions).await?;
    eprintln!(
        "inserted {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    rows.push(measure(&server, sessions).await?);

    let mut report = format!(
        "# Scale check, {backend}, {}\n\nMachine: {}. Release build; app and client in one process; \
         {REFRESHES} sequential refreshes (a chain) and {LOGINS} sequential logins per row.\n\n\
         Login time is mostly the Argon2id hash, whose cost wanders with the machine's load; the \
         last columns time the database part of a login alone (session limit and insert, \
         {CREATIONS} calls through the store).\n\n\
         | sessions in table | refresh p50 ms | refresh p99 ms | login p50 ms | login p99 ms | login DB part p50 ms | login DB part p99 ms |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        today(),
        machine_description()
    );
    for row in &rows {
        report.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.sessions,
            millis(row.refresh.0),
            millis(row.refresh.1),
            millis(row.login.0),
            millis(row.login.1),
            millis(row.create_session.0),
            millis(row.create_session.1)
        ));
    }
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    report.push_str(&format!(
        "\nRatio at {} sessions to empty (p50): refresh {:.2}x, login {:.2}x, login DB part {:.2}x.\n",
        last.sessions,
        last.refresh.0.as_secs_f64() / first.refresh.0.as_secs_f64(),
        last.login.0.as_secs_f64() / first.login.0.as_secs_f64(),
        last.create_session.0.as_secs_f64() / first.create_session.0.as_secs_f64()
    ));
    println!("{report}");
    let path = format!("bench/results/scale-{backend}-{}.md", today());
    if std::fs::write(&path, &report).is_ok() {
        eprintln!("written to {path}");
    }
    drop_database(&backend, &database).await
}

async fn drop_database(backend: &str, database: &str) -> anyhow::Result<()> {
    if backend == "sqlite" {
        let file = database.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{file}{suffix}"));
        }
        return Ok(());
    }
    let admin_url = std::env::var("TOLLGATE_TEST_DATABASE_URL")?;
    let (_, name) = database.rsplit_once('/').context("URL with a database")?;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await?;
    Ok(())
}

struct Row {
    sessions: u64,
    refresh: (Duration, Duration),
    login: (Duration, Duration),
    /// The database part of a login alone: applying the session limit and inserting.
    create_session: (Duration, Duration),
}

async fn start(database: &str) -> anyhow::Result<Server> {
    let (address, store) = start_instance(database, true).await?;
    Ok(Server {
        client: reqwest::Client::new(),
        address,
        store,
    })
}

async fn measure(server: &Server, sessions: u64) -> anyhow::Result<Row> {
    let Server {
        client,
        address: server,
        store,
    } = server;
    let login = || async {
        let started = Instant::now();
        let body: Value = client
            .post(format!("{server}/api/login"))
            .json(&json!({ "username": "user1", "password": "password" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok((started.elapsed(), body))
    };
    let mut logins = Vec::new();
    let mut last = Value::Null;
    for _ in 0..LOGINS {
        let (took, body) = login().await?;
        logins.push(took);
        last = body;
    }
    let mut refresh_token = last["refreshToken"]
        .as_str()
        .context("refresh token")?
        .to_owned();
    let mut refreshes = Vec::new();
    for _ in 0..REFRESHES {
        let started = Instant::now();
        let pair: Value = client
            .post(format!("{server}/api/refresh-token"))
            .json(&json!({ "refreshToken": refresh_token }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        refreshes.push(started.elapsed());
        refresh_token = pair["refreshToken"]
            .as_str()
            .context("refresh token")?
            .to_owned();
    }
    let mut creations = Vec::new();
    let (user, _) = store
        .find_user_by_username("user2")
        .await?
        .context("user2")?;
    let limit = SessionLimit {
        max_sessions: 5,
        policy: SessionLimitPolicy::EvictOldest,
    };
    for _ in 0..CREATIONS {
        let now = time::OffsetDateTime::now_utc();
        let session = Session {
            id: uuid::Uuid::new_v4(),
            user_id: user.id,
            generation: 0,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: now + time::Duration::days(30),
            revoked_at: None,
            fingerprint_hash: None,
            user_agent: None,
            ip: None,
            dpop_jkt: None,
        };
        let started = Instant::now();
        store
            .create_session(&session, now, &|live| limit.sessions_to_revoke(live), None)
            .await?;
        creations.push(started.elapsed());
    }
    Ok(Row {
        sessions,
        refresh: percentiles(&mut refreshes),
        login: percentiles(&mut logins),
        create_session: percentiles(&mut creations),
    })
}

/// Synthetic users, each with an equal share of `sessions` live sessions.
async fn fill(database: &str, backend: &str, sessions: u64) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(database).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let expires = now + 30 * 86_400_000;
    let (users, sessions_sql) = match backend {
        "postgres" => (
            format!(
                "INSERT INTO users SELECT gen_random_uuid()::text, 'synthetic' || g, '', '', '', '', '', '', 'x' \
                 FROM generate_series(1, {SYNTHETIC_USERS}) g"
            ),
            format!(
                "INSERT INTO sessions SELECT gen_random_uuid()::text, u.id, 0, NULL, {now}, {now}, {expires}, \
                 NULL, NULL, 'scale-check', '127.0.0.1' FROM generate_series(1, {sessions}) g \
                 JOIN (SELECT id, row_number() OVER () - 1 AS n FROM users WHERE username LIKE 'synthetic%') u \
                 ON u.n = g % {SYNTHETIC_USERS}"
            ),
        ),
        _ => (
            format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {SYNTHETIC_USERS}) \
                 INSERT INTO users SELECT lower(hex(randomblob(16))), 'synthetic' || n, '', '', '', '', '', '', 'x' FROM g"
            ),
            format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {sessions}), \
                 u AS (SELECT id, row_number() OVER () - 1 AS n FROM users WHERE username LIKE 'synthetic%') \
                 INSERT INTO sessions SELECT lower(hex(randomblob(16))), u.id, 0, NULL, {now}, {now}, {expires}, \
                 NULL, NULL, 'scale-check', '127.0.0.1' FROM g JOIN u ON u.n = g.n % {SYNTHETIC_USERS}"
            ),
        ),
    };
    connection.execute(sqlx::AssertSqlSafe(users)).await?;
    connection
        .execute(sqlx::AssertSqlSafe(sessions_sql))
        .await?;
    // Settle before measuring: fresh statistics, and no autovacuum competing for the CPU.
    let settle = if backend == "postgres" {
        "VACUUM ANALYZE sessions"
    } else {
        "ANALYZE"
    };
    connection.execute(settle).await?;
    connection.close().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}
