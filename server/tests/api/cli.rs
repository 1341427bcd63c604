//! The `tollgate` binary itself: settings, user and key commands, signals.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::process::{run_ok, tollgate, Server};
use crate::common::{backend, database_file, decode, fresh_database_url, token, Backend};

fn with_password(mut command: Command, password: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_and_exit_code_2() {
    for (variable, value) in [
        ("TOLLGATE_ACCESS_TTL", "soon"),
        ("TOLLGATE_MAX_SESSIONS", "-1"),
        ("TOLLGATE_JWT_ALG", "none"),
        ("TOLLGATE_LOGIN_RATE", "lots"),
        // Each duration has a maximum.
        ("TOLLGATE_ACCESS_TTL", "2d"),
        ("TOLLGATE_REFRESH_TTL", "400d"),
        ("TOLLGATE_SESSION_MAX_AGE", "4000d"),
        ("TOLLGATE_REFRESH_REUSE_GRACE", "2h"),
        ("TOLLGATE_LOGIN_RATE", "10/2d"),
        ("TOLLGATE_SWEEP_INTERVAL", "99999999999999d"),
        ("TOLLGATE_REQUEST_TIMEOUT", "2h"),
        ("TOLLGATE_DB_TIMEOUT", "1h"),
        ("TOLLGATE_DPOP", "sometimes"),
        // A proof signed with a shared secret proves nothing.
        ("TOLLGATE_DPOP_ALGS", "ES256,HS256"),
        ("TOLLGATE_DPOP_NONCE", "maybe"),
        ("TOLLGATE_DPOP_ORIGIN", "https://auth.example.com/api"),
        // Checked when the server starts: a directory without a client.
        ("TOLLGATE_WEB_DIR", "/nonexistent"),
    ] {
        let output = tollgate()
            .arg("serve")
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn a_flag_wins_over_its_environment_variable() {
    let output = tollgate()
        .args(["serve", "--access-ttl", "nonsense"])
        .env("TOLLGATE_ACCESS_TTL", "15m")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"nonsense\""), "{stderr}");
}

#[test]
fn an_hs256_secret_under_32_bytes_refuses_to_start() {
    let output = tollgate()
        .arg("serve")
        .env("TOLLGATE_JWT_ALG", "HS256")
        .env("TOLLGATE_JWT_SECRET", "too short")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TOLLGATE_JWT_SECRET") && !stderr.contains("too short"),
        "{stderr}"
    );
}

#[tokio::test]
async fn user_add_and_passwd_manage_sign_in_and_passwd_signs_out_everywhere() {
    let database = fresh_database_url().await;
    let mut add = tollgate();
    add.args([
        "user",
        "add",
        "carol",
        "--email",
        "carol@example.com",
        "--city",
        "Oslo",
    ])
    .env("TOLLGATE_DATABASE_URL", &database);
    let output = with_password(add, "first secret");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut again = tollgate();
    again
        .args(["user", "add", "carol"])
        .env("TOLLGATE_DATABASE_URL", &database);
    let output = with_password(again, "whatever");
    assert_eq!(output.status.code(), Some(1), "a taken username fails");

    let server = Server::start(&database, "serve");
    let response = server.login("carol", "first secret").await;
    assert_eq!(response.status(), StatusCode::OK);
    let session: serde_json::Value = response.json().await.unwrap();
    assert_eq!(session["user"]["city"], "Oslo");

    let mut passwd = tollgate();
    passwd
        .args(["user", "passwd", "carol"])
        .env("TOLLGATE_DATABASE_URL", &database);
    let output = with_password(passwd, "second secret");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(
        server.login("carol", "first secret").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.login("carol", "second secret").await.status(),
        StatusCode::OK
    );
    let refresh = server.refresh(&token(&session, "refreshToken")).await;
    assert_eq!(
        refresh.status(),
        StatusCode::FORBIDDEN,
        "the old session was revoked"
    );
}

#[tokio::test]
async fn keys_rotate_adds_a_current_key_and_old_tokens_keep_verifying() {
    let database = fresh_database_url().await;
    let mut server = Server::start(&database, "demo");
    let before = server.login_ok("user1").await;
    server.terminate();

    let old_kid = decode(&token(&before, "accessToken")).0["kid"].clone();

    // By default the new key is published at once and signs only a minute later, once every
    // running instance has loaded it.
    run_ok(&["keys", "rotate"], &database);
    let mut server = Server::start(&database, "serve");
    let jwks = server.jwks().await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "old and new public keys"
    );
    let meanwhile = server.login_ok("user1").await;
    assert_eq!(
        decode(&token(&meanwhile, "accessToken")).0["kid"],
        old_kid,
        "the new key does not sign yet"
    );
    server.terminate();

    run_ok(&["keys", "rotate", "--activate-after", "0s"], &database);
    let server = Server::start(&database, "serve");
    assert_eq!(server.jwks().await["keys"].as_array().unwrap().len(), 3);
    let after = server.login_ok("user1").await;
    let new_kid = decode(&token(&after, "accessToken")).0["kid"].clone();
    assert_ne!(new_kid, old_kid, "new tokens use the new key");
    assert!(
        server.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == new_kid),
        "the signing key is published"
    );
    let me = server
        .get("/api/current-user", &token(&before, "accessToken"))
        .await;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "tokens signed by the old key still verify"
    );
    assert_eq!(
        server
            .refresh(&token(&before, "refreshToken"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn demo_on_an_existing_database_keeps_its_sessions() {
    let database = fresh_database_url().await;
    let mut server = Server::start(&database, "demo");
    let session = server.login_ok("user1").await;
    server.terminate();
    let server = Server::start(&database, "demo");
    assert_eq!(
        server
            .refresh(&token(&session, "refreshToken"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let database = fresh_database_url().await;
    let mut server = Server::start(&database, "demo");
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{BufRead, BufReader, Read};
        let body = r#"{"username":"user1","password":"password"}"#;
        let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            stream,
            "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .unwrap();
        // The server is now inside the request, waiting for the rest of its body.
        std::thread::sleep(Duration::from_millis(300));
        Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(&body.as_bytes()[10..]).unwrap();
        let mut status_line = String::new();
        let mut reader = BufReader::new(stream);
        reader.read_line(&mut status_line).unwrap();
        assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert!(rest.contains("accessToken"));

        let status = server.child.wait().unwrap();
        let log = server.log_text();
        assert!(status.success(), "{status}: {log}");
        assert!(log.contains("stopped"), "{log}");
        assert!(
            !log.contains("eyJ") && !log.contains(body),
            "no tokens or passwords in logs"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn migrate_creates_the_schema_and_can_run_again() {
    let file = database_file();
    let database = match backend() {
        Backend::Sqlite => format!("sqlite://{}", file.display()),
        Backend::Postgres => fresh_database_url().await,
    };
    for _ in 0..2 {
        run_ok(&["migrate"], &database);
    }
    if backend() == Backend::Sqlite {
        assert!(file.exists());
    }
}

/// Every duration at its maximum: the server starts and signs in, refreshes and lists
/// sessions without any time arithmetic overflowing.
#[tokio::test]
async fn every_setting_at_its_maximum_works() {
    let database = fresh_database_url().await;
    let server = Server::start_with(
        &database,
        "demo",
        &[
            "--access-ttl",
            "1day",
            "--refresh-ttl",
            "365days",
            "--session-max-age",
            "3650days",
            "--refresh-reuse-grace",
            "1h",
            "--request-timeout",
            "1h",
            "--sweep-interval",
            "1day",
            "--db-timeout",
            "10m",
            "--max-sessions",
            "10000",
            "--db-pool-size",
            "1000",
        ],
    );
    let login = server.login_ok("user1").await;
    assert_eq!(login["expiresIn"], 86_400);
    let refreshed = server.refresh(&token(&login, "refreshToken")).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();
    for path in ["/api/sessions", "/api/job-list", "/api/current-user"] {
        let response = server.get(path, &token(&refreshed, "accessToken")).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn roles_and_the_disabled_state_are_managed_from_the_command_line() {
    let database = fresh_database_url().await;
    let mut add = tollgate();
    add.args(["user", "add", "dana", "--role", "admin", "--role", "editor"])
        .env("TOLLGATE_DATABASE_URL", &database);
    let output = with_password(add, "a long enough secret");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut weak = tollgate();
    weak.args(["user", "add", "erin"])
        .env("TOLLGATE_DATABASE_URL", &database);
    let output = with_password(weak, "password");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("common"));

    let server = Server::start(&database, "serve");
    let signed_in: serde_json::Value = server
        .login("dana", "a long enough secret")
        .await
        .json()
        .await
        .unwrap();
    let claims = decode(&token(&signed_in, "accessToken")).1;
    assert_eq!(claims["roles"], serde_json::json!(["admin", "editor"]));

    run_ok(
        &[
            "user", "role", "dana", "--remove", "editor", "--add", "auditor",
        ],
        &database,
    );
    // The removed role's session ends: refused by the running server once it reads the store.
    assert_eq!(
        server
            .refresh(&token(&signed_in, "refreshToken"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let signed_in: serde_json::Value = server
        .login("dana", "a long enough secret")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        signed_in["user"]["roles"],
        serde_json::json!(["admin", "auditor"])
    );

    run_ok(&["user", "disable", "dana"], &database);
    // The running server reads the revocation from the store within its poll (1 s).
    let access = token(&signed_in, "accessToken");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.get("/api/job-list", &access).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the disabled user's token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server
            .refresh(&token(&signed_in, "refreshToken"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.login("dana", "a long enough secret").await.status(),
        StatusCode::BAD_REQUEST
    );
    run_ok(&["user", "enable", "dana"], &database);
    assert_eq!(
        server.login("dana", "a long enough secret").await.status(),
        StatusCode::OK
    );
    let missing = tollgate()
        .args(["user", "disable", "nobody"])
        .env("TOLLGATE_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_refresh_storm_opens_checks_and_serves_its_sessions() {
    let database = fresh_database_url().await;
    let target = std::env::temp_dir().join(format!("tollgate-backup-{}.db", uuid::Uuid::new_v4()));
    if backend() == Backend::Postgres {
        let output = tollgate()
            .args(["backup", target.to_str().unwrap()])
            .env("TOLLGATE_DATABASE_URL", &database)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
        assert!(!target.exists());
        return;
    }
    let server = Server::start(&database, "demo");
    // Signed in before the backup and left alone: the copy holds its current generation.
    let idle = server.login_ok("user2").await;
    let mut storm = Vec::new();
    for _ in 0..4 {
        let mut refresh_token = token(&server.login_ok("user1").await, "refreshToken");
        let (client, url) = (
            server.client.clone(),
            format!("{}/api/refresh-token", server.address),
        );
        storm.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_millis(1500);
            let mut rotations = 0;
            while std::time::Instant::now() < deadline {
                let response = client
                    .post(&url)
                    .json(&serde_json::json!({ "refreshToken": refresh_token }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let pair: serde_json::Value = response.json().await.unwrap();
                refresh_token = token(&pair, "refreshToken");
                rotations += 1;
            }
            rotations
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup = tollgate()
        .args(["backup", target.to_str().unwrap()])
        .env("TOLLGATE_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let mut rotations = 0;
    for chain in storm {
        rotations += chain.await.unwrap();
    }
    assert!(
        rotations > 20,
        "a storm, not a drizzle: {rotations} rotations"
    );
    // Never over an existing file.
    let again = tollgate()
        .args(["backup", target.to_str().unwrap()])
        .env("TOLLGATE_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let copy = format!("sqlite://{}", target.display());
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(&copy).await.unwrap();
        let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        let _ = connection.close().await;
    }
    let restored = Server::start(&copy, "serve");
    let access = token(&idle, "accessToken");
    assert_eq!(
        restored.get("/api/job-list", &access).await.status(),
        StatusCode::OK,
        "the copy holds the signing keys"
    );
    assert_eq!(
        restored
            .refresh(&token(&idle, "refreshToken"))
            .await
            .status(),
        StatusCode::OK,
        "and the session, at the generation it had"
    );
    let _ = std::fs::remove_file(&target);
}

#[tokio::test]
async fn logs_have_no_escape_codes_off_a_terminal_and_are_json_lines_on_request() {
    let mut text = Server::start(&fresh_database_url().await, "demo");
    assert_eq!(text.login_ok("user1").await["user"]["username"], "user1");
    text.terminate();
    let log = text.log_text();
    assert!(log.contains("listening on"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a file: {log:?}");

    let mut json = Server::start_with(
        &fresh_database_url().await,
        "demo",
        &["--log-format", "json"],
    );
    assert_eq!(json.login_ok("user1").await["user"]["username"], "user1");
    let refused = json
        .client
        .post(format!("{}/api/refresh-token", json.address))
        .header("x-request-id", "trace-me-123")
        .json(&serde_json::json!({ "refreshToken": "not a token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["x-request-id"], "trace-me-123");
    json.terminate();
    let log = json.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    assert!(lines
        .iter()
        .all(|line| line["level"].is_string() && line["timestamp"].is_string()));
    assert!(lines.iter().any(|line| line["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("listening on"))));
    // A line logged while a request is handled names the request.
    let refused = lines
        .iter()
        .find(|line| line["fields"]["message"] == "refresh refused")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(refused["span"]["request_id"], "trace-me-123", "{refused}");
}
