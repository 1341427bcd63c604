//! The two example resource servers (`examples/axum` with `tollgate-verify`, `examples/express`
//! with the Node package) against a real `tollgate`: they accept its access tokens, refuse
//! forged, expired, wrong-audience and refresh tokens, refuse a revoked session's token within
//! the feed's poll, and start while Tollgate is down. `make test` builds both first.
#![allow(clippy::unwrap_used)]

pub mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate::store::StoreOptions;

use common::process::{free_port, tollgate, Server};
use common::{decode, token};

/// How soon a resource server must refuse a revoked session's token: it reads the feed every
/// second; the rest is slack for a loaded machine.
const REVOCATION_BOUND: Duration = Duration::from_secs(3);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// An example resource server process; killed when dropped.
struct Example {
    name: &'static str,
    child: Child,
    address: String,
    port: u16,
    tollgate: String,
}

impl Example {
    fn start(name: &'static str, tollgate: &str, port: u16) -> Example {
        let mut command = match name {
            "axum" => {
                // Beside the `tollgate` binary under test, built by `cargo build --workspace`.
                let binary = Path::new(env!("CARGO_BIN_EXE_tollgate"))
                    .with_file_name("tollgate-example-axum");
                assert!(
                    binary.exists(),
                    "{} is missing: run `cargo build --workspace` (make test does)",
                    binary.display()
                );
                let mut command = Command::new(binary);
                command.env("ADDR", format!("127.0.0.1:{port}"));
                command
            }
            _ => {
                let example = repository().join("examples/express");
                assert!(
                    example
                        .join("node_modules/tollgate-verify/dist/index.js")
                        .exists(),
                    "the Express example is not installed: run `make node` (make test does)"
                );
                let mut command = Command::new("node");
                command
                    .arg(example.join("server.js"))
                    .env("PORT", port.to_string());
                command
            }
        };
        let child = command
            .env("TOLLGATE_URL", tollgate)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let example = Example {
            name,
            child,
            address: format!("http://127.0.0.1:{port}"),
            port,
            tollgate: tollgate.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} example did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        example
    }

    fn restart(mut self) -> Example {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Example::start(self.name, &self.tollgate, self.port)
    }

    async fn hello(&self, bearer: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}/api/hello", self.address))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }

    /// How long ago the example last read every revocation, in milliseconds (`/healthz`).
    async fn staleness(&self) -> u64 {
        let health: Value = reqwest::get(format!("{}/healthz", self.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["revocationsStalenessMs"].as_u64().unwrap()
    }

    /// The status of `GET /api/hello` with `bearer`, once it is `expected` or `within` has
    /// passed; and how long that took.
    async fn wait_for(&self, bearer: &str, expected: StatusCode, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.hello(bearer).await.status();
            if status == expected {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{}: {status} rather than {expected} after {within:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts a 401 that says the token was refused.
    async fn refuses(&self, bearer: &str, what: &str) {
        let response = self.hello(bearer).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}: {what}",
            self.name
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{}: {what}",
            self.name
        );
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `claims` signed with the server's current key, as only the server could.
async fn signed_by_the_server(database: &str, claims: &Value) -> String {
    let store = tollgate::store::connect(database, &StoreOptions::default())
        .await
        .unwrap();
    let keys = store.keys("EdDSA").await.unwrap();
    let current = keys.iter().find(|key| key.retired_at.is_none()).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(current.kid.clone());
    let token = jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(&current.private_der),
    )
    .unwrap();
    store.close().await;
    token
}

/// How long after `revoked_at` each example refuses `access` (both asked in turn, so that
/// neither waits for the other), within the bound.
async fn time_to_refusal(
    examples: &[Example],
    access: &str,
    what: &str,
    revoked_at: Instant,
) -> Vec<Duration> {
    let mut took: Vec<Option<Duration>> = vec![None; examples.len()];
    while took.iter().any(Option::is_none) {
        for (example, took) in examples.iter().zip(&mut took) {
            if took.is_none() && example.hello(access).await.status() == StatusCode::UNAUTHORIZED {
                *took = Some(revoked_at.elapsed());
            }
        }
        assert!(
            revoked_at.elapsed() < REVOCATION_BOUND,
            "{what}: not refused within {REVOCATION_BOUND:?}: {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for example in examples {
        example.refuses(access, what).await;
    }
    let took: Vec<Duration> = took.into_iter().flatten().collect();
    eprintln!("{what}: refused by axum, express after {took:?}");
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn example_resource_servers_verify_tollgate_tokens_and_follow_revocations() {
    let file = std::env::temp_dir().join(format!("tollgate-rs-{}.db", uuid::Uuid::new_v4()));
    let database = format!("sqlite://{}?mode=rwc", file.display());
    // No grace for a replayed refresh token: reuse is detected at once.
    let flags = ["--refresh-reuse-grace", "0s"];
    let mut server = Server::start_with(&database, "demo", &flags);
    let port = server.port();
    let examples = vec![
        Example::start("axum", &server.address, free_port()),
        Example::start("express", &server.address, free_port()),
    ];

    // Accepted, with the token's claims, once each has read the keys and the feed.
    let login = server.login_ok("user1").await;
    let access = token(&login, "accessToken");
    for example in &examples {
        example
            .wait_for(&access, StatusCode::OK, Duration::from_secs(10))
            .await;
        let body: Value = example.hello(&access).await.json().await.unwrap();
        assert_eq!(body["message"], "Hello, user1!", "{}", example.name);
        assert_eq!(body["sid"], decode(&access).1["sid"]);
    }

    // Refused: forged, expired, for another audience, a refresh token, none at all.
    let (_, claims) = decode(&access);
    let resigned = signed_by_the_server(&database, &claims).await;
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 10);
    let expired = signed_by_the_server(&database, &expired).await;
    let mut elsewhere = claims.clone();
    elsewhere["aud"] = json!("another-api");
    let elsewhere = signed_by_the_server(&database, &elsewhere).await;
    // One character in the middle of the signature (the last one may only carry padding bits).
    let (signed, signature) = access.rsplit_once('.').unwrap();
    let mut signature = signature.to_owned().into_bytes();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let forged = format!("{signed}.{}", String::from_utf8(signature).unwrap());
    for example in &examples {
        // The same claims signed the same way pass: what fails below is the one change.
        assert_eq!(example.hello(&resigned).await.status(), StatusCode::OK);
        example.refuses(&forged, "a forged signature").await;
        example.refuses(&expired, "an expired token").await;
        example.refuses(&elsewhere, "another audience").await;
        example
            .refuses(&token(&login, "refreshToken"), "a refresh token")
            .await;
        let none = reqwest::Client::new()
            .get(format!("{}/api/hello", example.address))
            .send()
            .await
            .unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
    }

    // Bound to a DPoP key: accepted with a proof by that key, never as a bearer token.
    let key = common::dpop::DpopKey::es256();
    let login_url = format!("{}/api/login", server.address);
    let bound: Value = reqwest::Client::new()
        .post(&login_url)
        .header("dpop", key.proof("POST", &login_url))
        .json(&json!({ "username": "user1", "password": "password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bound["tokenType"], "DPoP");
    let bound = token(&bound, "accessToken");
    for example in &examples {
        let url = format!("{}/api/hello", example.address);
        let with_proof = reqwest::Client::new()
            .get(&url)
            .header("authorization", format!("DPoP {bound}"))
            .header("dpop", key.proof_for("GET", &url, &bound))
            .send()
            .await
            .unwrap();
        assert_eq!(with_proof.status(), StatusCode::OK, "{}", example.name);
        let as_bearer = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(
            as_bearer.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            example.name
        );
        assert_eq!(
            as_bearer.headers()["www-authenticate"],
            r#"DPoP error="invalid_token""#,
            "{}",
            example.name
        );
    }

    // Revoked sessions are refused within the bound, however they were revoked.
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    let logged_out = server.login_ok("user1").await;
    let kept = server.login_ok("user1").await;
    let revoked_at = Instant::now();
    let response = client
        .post(format!("{}/api/logout", server.address))
        .json(&json!({ "refreshToken": token(&logged_out, "refreshToken") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    took.extend(
        time_to_refusal(
            &examples,
            &token(&logged_out, "accessToken"),
            "logout",
            revoked_at,
        )
        .await,
    );
    for example in &examples {
        // Another session of the same user is untouched.
        assert_eq!(
            example.hello(&token(&kept, "accessToken")).await.status(),
            StatusCode::OK
        );
    }

    let elsewhere_login = server.login_ok("user1").await;
    let revoked_at = Instant::now();
    let response = client
        .delete(format!("{}/api/sessions", server.address))
        .bearer_auth(token(&kept, "accessToken"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    took.extend(
        time_to_refusal(
            &examples,
            &token(&elsewhere_login, "accessToken"),
            "sign-out everywhere",
            revoked_at,
        )
        .await,
    );

    let reused = server.login_ok("user2").await;
    let rotated: Value = server
        .refresh(&token(&reused, "refreshToken"))
        .await
        .json()
        .await
        .unwrap();
    for example in &examples {
        example
            .wait_for(
                &token(&rotated, "accessToken"),
                StatusCode::OK,
                REVOCATION_BOUND,
            )
            .await;
    }
    let revoked_at = Instant::now();
    let replay = server.refresh(&token(&reused, "refreshToken")).await;
    assert_eq!(replay.status(), StatusCode::FORBIDDEN);
    took.extend(
        time_to_refusal(
            &examples,
            &token(&rotated, "accessToken"),
            "reuse detection",
            revoked_at,
        )
        .await,
    );

    let changed = server.login_ok("user3").await;
    let revoked_at = Instant::now();
    let mut passwd = tollgate()
        .args(["user", "passwd", "user3"])
        .env("TOLLGATE_DATABASE_URL", &database)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "a new password").unwrap();
    assert!(passwd.wait().unwrap().success());
    took.extend(
        time_to_refusal(
            &examples,
            &token(&changed, "accessToken"),
            "password change",
            revoked_at,
        )
        .await,
    );
    took.sort();
    eprintln!(
        "revocation to refusal over {} cases: median {:?}, longest {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // Tollgate down: the examples keep verifying with the keys they hold, also a token they
    // have not seen before (not from their cache).
    let valid = token(&server.login_ok("user1").await, "accessToken");
    let unseen = token(&server.login_ok("user1").await, "accessToken");
    for example in &examples {
        example
            .wait_for(&valid, StatusCode::OK, Duration::from_secs(5))
            .await;
        assert!(example.staleness().await < 1500, "{}", example.name);
    }
    server.terminate();
    for example in &examples {
        assert_eq!(example.hello(&unseen).await.status(), StatusCode::OK);
    }
    // ...and say that their view of revocations is getting old.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for example in &examples {
        let staleness = example.staleness().await;
        assert!(staleness >= 1500, "{}: {staleness} ms", example.name);
    }
    // Restarted while Tollgate is down: "not now" (503), never "no" (401)...
    let examples: Vec<Example> = examples.into_iter().map(Example::restart).collect();
    for example in &examples {
        let response = example.hello(&valid).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            example.name
        );
    }
    // ...and verifying once it is back.
    let mut server = Server::spawn_on(port, &database, "serve", &flags);
    server.wait_ready();
    for example in &examples {
        let took = example
            .wait_for(&valid, StatusCode::OK, Duration::from_secs(10))
            .await;
        eprintln!("{} verified {took:?} after Tollgate was back", example.name);
    }
    drop(server);
    let _ = std::fs::remove_file(&file);
}
