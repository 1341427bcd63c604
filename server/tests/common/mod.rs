//! Helpers shared by the test binaries: a real Tollgate on a random port with its own fresh
//! database, an HTTP client, `tollgate` processes, and a proxy that can cut connections.
//! `TOLLGATE_TEST_BACKEND=postgres` runs the suite on PostgreSQL (a new database per test on
//! the server named by `TOLLGATE_TEST_DATABASE_URL`); SQLite files are the default.

pub mod dpop;
pub mod process;
pub mod proxy;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Parser;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::app::Application;
use tollgate::config::{Config, ServerArgs};
use tollgate::store::Store;
use tollgate::users::{seed_demo, Passwords};

#[derive(Parser)]
#[command(args_override_self = true)]
struct Flags {
    #[command(flatten)]
    args: ServerArgs,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    flags: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn database_file() -> PathBuf {
    std::env::temp_dir().join(format!("tollgate-test-{}.db", uuid::Uuid::new_v4()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("TOLLGATE_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("TOLLGATE_TEST_BACKEND={other:?}: expected sqlite or postgres"),
    }
}

/// A new, empty database on the backend under test.
pub async fn fresh_database_url() -> String {
    match backend() {
        Backend::Sqlite => format!("sqlite://{}", database_file().display()),
        Backend::Postgres => fresh_postgres_database().await,
    }
}

/// The PostgreSQL server for tests. Never skipped: without it the tests fail.
pub fn postgres_admin_url() -> String {
    std::env::var("TOLLGATE_TEST_DATABASE_URL").expect(
        "TOLLGATE_TEST_DATABASE_URL must name a PostgreSQL database, \
         e.g. postgres://postgres@127.0.0.1:5432/test (`make test` sets it)",
    )
}

/// Creates a database of its own for one test; those of earlier runs are dropped first.
pub async fn fresh_postgres_database() -> String {
    use sqlx::{AssertSqlSafe, Connection, Executor};
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let admin_url = postgres_admin_url();
    let prefix = format!("tollgate_test_{}_", env!("CARGO_CRATE_NAME"));
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL for tests");
    CLEANED
        .get_or_init(|| async {
            let stale: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                    .bind(format!("{prefix}%"))
                    .fetch_all(&mut admin)
                    .await
                    .expect("list test databases");
            for (name,) in stale {
                let _ = admin
                    .execute(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .await;
            }
        })
        .await;
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("database URL with a path");
    format!("{server}/{name}")
}

/// The app with the demo users and default settings (rate limits off).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The app with the demo users and these extra flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_app_on(&fresh_database_url().await, extra).await
}

/// The app with the demo users on `database`.
pub async fn spawn_app_on(database: &str, extra: &[&str]) -> TestApp {
    let mut flags: Vec<String> = [
        "--addr",
        "127.0.0.1:0",
        "--database-url",
        database,
        "--login-rate",
        "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let app = start(flags).await;
    let passwords = Passwords::new().await.expect("passwords");
    seed_demo(app.store.as_ref(), &passwords)
        .await
        .expect("demo data");
    app
}

async fn start(flags: Vec<String>) -> TestApp {
    let parsed = Flags::try_parse_from(std::iter::once("tollgate".to_owned()).chain(flags.clone()))
        .expect("test flags parse");
    let config = Config::from_args(&parsed.args, "unused").expect("test config is valid");
    let app = Application::build(config).await.expect("app starts");
    let address = app.url();
    let store = app.store();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        store,
        flags,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Another instance on the same database, with these flags on top.
    pub async fn sibling(&self, extra: &[&str]) -> TestApp {
        let mut flags = self.flags.clone();
        flags.extend(extra.iter().map(|s| s.to_string()));
        start(flags).await
    }

    /// Stops gracefully and starts again on the same database (on a new port).
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let flags = std::mem::take(&mut self.flags);
        start(flags).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    /// The stored session a refresh token names; panics if there is none.
    pub async fn session_of(&self, refresh_token: &str) -> tollgate::store::Session {
        self.store
            .find_session(sid(refresh_token))
            .await
            .expect("store")
            .expect("session")
    }

    /// The database this app runs on.
    pub fn database_url(&self) -> &str {
        let at = self
            .flags
            .iter()
            .position(|flag| flag == "--database-url")
            .expect("--database-url among the flags");
        &self.flags[at + 1]
    }

    /// Runs SQL statements on the app's database behind its back, as an operator (or a
    /// restored backup) would; foreign keys are not enforced on that connection.
    pub async fn execute_sql(&self, statements: &[&str]) {
        use sqlx::{AssertSqlSafe, Connection, Executor};
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(self.database_url())
            .await
            .expect("database");
        let no_foreign_keys = match backend() {
            Backend::Sqlite => "PRAGMA foreign_keys = OFF",
            Backend::Postgres => "SET session_replication_role = replica",
        };
        connection.execute(no_foreign_keys).await.expect("sql");
        for statement in statements {
            connection
                .execute(AssertSqlSafe(statement.to_string()))
                .await
                .expect("sql");
        }
        let _ = connection.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Signs in and returns the body; panics unless it is 200.
    pub async fn login_ok(&self, username: &str) -> Value {
        let response = self.login(username, "password").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/refresh-token",
            &json!({ "refreshToken": refresh_token }),
        )
        .await
    }

    pub async fn get(&self, path: &str, access_token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request");
        response.text().await.expect("metrics text")
    }

    pub async fn jwks(&self) -> Value {
        let response = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("request");
        response.json().await.expect("json")
    }

    /// A JSON request with a bearer token.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        access_token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(access_token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, access_token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn token(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

/// The decoded header and claims of a JWT (no verification).
pub fn decode(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || {
        let part = parts.next().expect("jwt part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    (next(), next())
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The session id a token names.
pub fn sid(jwt: &str) -> uuid::Uuid {
    decode(jwt).1["sid"]
        .as_str()
        .expect("sid")
        .parse()
        .expect("uuid")
}

/// A 401 that tells a client its token was refused (RFC 6750).
pub async fn invalid_token(response: Response) -> Value {
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    problem(response, StatusCode::UNAUTHORIZED).await
}

pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}
