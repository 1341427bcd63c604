//! Hostile requests: oversized or slow ones, sign-in floods, forged client addresses. Every
//! answer is a 4xx problem (or a closed connection), never a 5xx.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::process::Server;
use crate::common::{problem, spawn_app, spawn_app_with, token, TestApp};

async fn login_from(app: &TestApp, forwarded_for: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn headers_over_16_kib_get_431() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
}

#[tokio::test]
async fn bodies_over_16_kib_get_413_on_every_endpoint() {
    let app = spawn_app().await;
    let padding = "x".repeat(20_000);
    for (path, body) in [
        (
            "/api/login",
            json!({ "username": "user1", "password": padding }),
        ),
        ("/api/refresh-token", json!({ "refreshToken": padding })),
        ("/api/logout", json!({ "refreshToken": padding })),
    ] {
        problem(
            app.post_json(path, &body).await,
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
}

#[tokio::test]
async fn a_megabyte_password_is_refused_at_once() {
    let app = spawn_app().await;
    let response = app.login("user1", &"p".repeat(1 << 20)).await;
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn a_password_over_1024_bytes_is_refused_like_a_wrong_one() {
    let app = spawn_app().await;
    let long = problem(
        app.login("user1", &"p".repeat(2000)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let wrong = problem(app.login("user1", "wrong").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(long, wrong);
}

#[tokio::test]
async fn a_client_that_sends_its_body_too_slowly_gets_408() {
    let app = spawn_app_with(&["--request-timeout", "1s"]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user"
        )
        .unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.lines().next().unwrap_or_default().to_owned();
        (status, answer)
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(body.contains("application/problem+json"), "{body}");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_disconnected() {
    let app = spawn_app_with(&["--request-timeout", "1s"]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let started = Instant::now();
        let mut buffer = Vec::new();
        let _ = stream.read_to_end(&mut buffer);
        (
            started.elapsed(),
            String::from_utf8_lossy(&buffer).into_owned(),
        )
    })
    .await
    .unwrap();
    let (waited, answer) = closed_after;
    assert!(
        waited < Duration::from_secs(15),
        "the connection was held open"
    );
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn the_per_ip_limit_counts_attempts_at_any_username() {
    let app = spawn_app_with(&["--login-rate", "3/1m"]).await;
    for username in ["user1", "user2", "user3"] {
        assert_eq!(
            app.login(username, "wrong").await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    let limited = app.login("nobody", "wrong").await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_escape_the_ip_limit() {
    let app = spawn_app_with(&["--login-rate", "2/1m"]).await;
    for n in 0..2 {
        let response = login_from(
            &app,
            &format!("198.51.100.{n}"),
            json!({ "username": format!("u{n}"), "password": "x" }),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let response = login_from(
        &app,
        "198.51.100.99",
        json!({ "username": "u9", "password": "x" }),
    )
    .await;
    problem(response, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1"]).await;
    let body = json!({ "username": "user1", "password": "password" });
    let login: Value = login_from(&app, "203.0.113.50, 127.0.0.1", body)
        .await
        .json()
        .await
        .unwrap();
    let sessions: Vec<Value> = app
        .get("/api/sessions", &token(&login, "accessToken"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "203.0.113.50");
}

#[tokio::test]
async fn a_flood_of_guesses_at_a_username_does_not_lock_its_owner_out() {
    let app = spawn_app_with(&["--login-rate", "3/1m", "--trusted-proxies", "127.0.0.1"]).await;
    let owner =
        json!({ "username": "user1", "password": "password", "fingerprint": "owner-laptop" });
    assert_eq!(
        login_from(&app, "203.0.113.7", owner.clone())
            .await
            .status(),
        StatusCode::OK
    );
    // Guesses from many addresses exhaust the username's budget…
    for n in 0..6 {
        let guess = json!({ "username": "user1", "password": format!("guess{n}"), "fingerprint": format!("bot{n}") });
        login_from(&app, &format!("198.51.100.{n}"), guess).await;
    }
    let stranger = json!({ "username": "user1", "password": "password", "fingerprint": "unknown" });
    problem(
        login_from(&app, "192.0.2.1", stranger).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // …but the owner's known device still signs in.
    assert_eq!(
        login_from(&app, "203.0.113.7", owner).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same_in_status_body_and_headers() {
    let app = spawn_app().await;
    let wrong = app.login("user1", "wrong").await;
    let unknown = app.login("nobody-at-all", "wrong").await;
    assert_eq!(wrong.status(), unknown.status());
    let headers = |response: &reqwest::Response| {
        let mut names: Vec<(String, String)> = response
            .headers()
            .iter()
            // Both differ from any request to the next, whoever it names.
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(headers(&wrong), headers(&unknown));
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
}

/// Both paths run one Argon2id verification; without the dummy hash an unknown user would
/// answer about 20 times faster. The bound is loose on purpose: this is not a speed test.
#[tokio::test]
async fn unknown_user_and_wrong_password_take_the_same_time() {
    let app = spawn_app().await;
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for n in 0..15 {
        for (username, samples) in [
            ("user1", &mut wrong),
            (&*format!("nobody{n}"), &mut unknown),
        ] {
            let started = Instant::now();
            assert_eq!(
                app.login(username, "wrong").await.status(),
                StatusCode::BAD_REQUEST
            );
            samples.push(started.elapsed());
        }
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64()
    };
    let ratio = median(&mut unknown) / median(&mut wrong);
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown/wrong median time ratio {ratio:.2}"
    );
}

/// The value of one Prometheus sample line, such as `name{label="x"}`; 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn peak_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn two_hundred_concurrent_logins_keep_memory_bounded_and_the_api_answering() {
    let database = crate::common::fresh_database_url().await;
    let server = Server::start_with(&database, "demo", &[]);
    let client = reqwest::Client::new();
    let login = |password: &'static str| {
        let (client, url) = (client.clone(), format!("{}/api/login", server.address));
        async move {
            let body = json!({ "username": "user2", "password": password });
            client.post(url).json(&body).send().await.unwrap()
        }
    };
    let signed_in: Value = login("password").await.json().await.unwrap();
    let access = token(&signed_in, "accessToken");
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (attempt, answered) = (login("wrong"), answered.clone());
        flood.spawn(async move {
            let status = attempt.await.status();
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            status
        });
    }
    // While the flood waits for the hashing threads, the API keeps answering.
    for _ in 0..5 {
        let jobs = client
            .get(format!("{}/api/job-list", server.address))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(jobs.status(), StatusCode::OK);
    }
    let hashed = r#"tollgate_password_hashes_total{outcome="hashed"}"#;
    let hashed_meanwhile = sample(&scrape(&server).await, hashed);
    let mut statuses = Vec::new();
    while let Some(status) = flood.join_next().await {
        statuses.push(status.unwrap());
    }
    let hashed_in_the_end = sample(&scrape(&server).await, hashed);
    assert!(
        hashed_meanwhile < hashed_in_the_end,
        "the job list answered only after all {hashed_in_the_end} hashes"
    );
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 200);
    // Wrong passwords, and beyond the hashing queue an immediate 503.
    assert!(statuses.iter().all(|status| [
        StatusCode::BAD_REQUEST,
        StatusCode::SERVICE_UNAVAILABLE
    ]
    .contains(status)));
    assert!(statuses.contains(&StatusCode::BAD_REQUEST));
    let peak_kib = peak_rss_kib(&server);
    // 200 hashes at once would need about 3.8 GiB; one reused 19 MiB block per core instead,
    // on top of what the idle server holds (about 25 MiB; 60 allowed for a debug build).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let bound_kib = (60 + 20 * cores) * 1024;
    eprintln!("peak RSS under the flood: {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < bound_kib,
        "peak RSS {} MiB over {} MiB",
        peak_kib / 1024,
        bound_kib / 1024
    );
}

/// A flood far above the hashing rate is refused at once beyond the bounded queue, and the
/// queued attempts whose clients gave up are dropped unhashed: the next real sign-in is not
/// stuck behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_cannot_build_a_hashing_backlog() {
    let database = crate::common::fresh_database_url().await;
    let server = Server::start_with(&database, "demo", &[]);
    let client = reqwest::Client::new();
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..300 {
        let (client, url) = (client.clone(), format!("{}/api/login", server.address));
        flood.spawn(async move {
            let body = json!({ "username": "user2", "password": format!("guess{n}") });
            client.post(url).json(&body).send().await.unwrap()
        });
    }
    // The first 503 means the queue is full; then every waiting client gives up at once.
    let refused = loop {
        let response = flood
            .join_next()
            .await
            .expect("a 503 before the end")
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
    };
    flood.abort_all();
    while flood.join_next().await.is_some() {}
    let hashed = r#"tollgate_password_hashes_total{outcome="hashed"}"#;
    let hashed_when_abandoned = sample(&scrape(&server).await, hashed);
    assert!(refused.headers().contains_key("retry-after"));
    problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    // The flood is over: a real sign-in (honouring Retry-After, as clients do while the
    // server notices the last departures) is served, not queued behind dead work.
    let body = json!({ "username": "user1", "password": "password" });
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..3 {
        let real = reqwest::Client::new()
            .post(format!("{}/api/login", server.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        status = real.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        let wait: u64 = real.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let metrics = scrape(&server).await;
    let outcome = |name: &str| {
        sample(
            &metrics,
            &format!(r#"tollgate_password_hashes_total{{outcome="{name}"}}"#),
        )
    };
    assert!(outcome("abandoned") > 0.0, "{metrics}");
    assert!(outcome("refused") > 0.0, "{metrics}");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    // After the clients left: the hashes then under way and the real sign-in, never the
    // queue of abandoned attempts (16 per core).
    assert!(
        outcome("hashed") - hashed_when_abandoned <= cores + 1.0,
        "{} hashes after the flood was abandoned at {hashed_when_abandoned}",
        outcome("hashed")
    );
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_slash_64() {
    let app = spawn_app_with(&["--login-rate", "2/1m", "--trusted-proxies", "127.0.0.1"]).await;
    for n in 0..2 {
        let response = login_from(
            &app,
            &format!("2001:db8:1:2::{n:x}"),
            json!({ "username": format!("u{n}"), "password": "x" }),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let same_network = login_from(
        &app,
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        json!({ "username": "u9", "password": "x" }),
    )
    .await;
    problem(same_network, StatusCode::TOO_MANY_REQUESTS).await;
    let next_network = login_from(
        &app,
        "2001:db8:1:3::1",
        json!({ "username": "u8", "password": "x" }),
    )
    .await;
    assert_eq!(next_network.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_malformed_forwarded_entry_cannot_hide_the_client_from_the_limit() {
    let app = spawn_app_with(&["--login-rate", "2/1m", "--trusted-proxies", "127.0.0.1"]).await;
    for n in 0..3 {
        // The client writes junk of its own before the address the proxy appends; all three
        // attempts come from one client and count against one budget.
        let forwarded = if n == 0 {
            "198.51.100.7".to_owned()
        } else {
            format!("junk{n}, 198.51.100.7")
        };
        let response = login_from(
            &app,
            &forwarded,
            json!({ "username": format!("u{n}"), "password": "x" }),
        )
        .await;
        let expected = if n < 2 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(response.status(), expected, "attempt {n}");
    }
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/login", "/api/current-user", "/healthz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
}

/// Found by `fuzz::no_request_body_gets_a_server_error` on PostgreSQL, which cannot store NUL.
#[tokio::test]
async fn a_username_with_a_nul_byte_is_refused_like_an_unknown_one() {
    let app = spawn_app().await;
    let nul = problem(
        app.login("user\u{0}1", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let unknown = problem(
        app.login("nobody", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(nul, unknown);
}
