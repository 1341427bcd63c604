use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{problem, spawn_app, spawn_app_with, token};

#[tokio::test]
async fn healthz_answers_once_the_store_does() {
    let mut app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // With the store closed, the same check fails.
    let store = app.store.clone();
    let address = app.url("/healthz");
    store.close().await;
    let response = app.client.get(address).send().await.unwrap();
    problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_logins_refreshes_and_live_sessions() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    app.login("user1", "wrong").await;
    app.refresh(&token(&login, "refreshToken")).await;
    app.refresh("garbage").await;
    let text = app.metrics().await;
    for expected in [
        "http_requests_total{",
        r#"route="/api/login""#,
        "http_request_duration_seconds_bucket{",
        r#"tollgate_logins_total{outcome="ok"}"#,
        r#"tollgate_logins_total{outcome="failed"}"#,
        r#"tollgate_refreshes_total{outcome="ok"}"#,
        r#"tollgate_refreshes_total{outcome="failed"}"#,
        "tollgate_live_sessions ",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

#[tokio::test]
async fn invented_methods_share_one_metrics_label() {
    let app = spawn_app().await;
    for n in 0..3 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url("/api/job-list"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let text = app.metrics().await;
    assert!(!text.contains("INVENTED"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/login",
        "/api/refresh-token",
        "/api/logout",
        "/api/current-user",
        "/api/job-list",
        "/api/sessions",
        "/api/sessions/{id}",
        "/.well-known/jwks.json",
        "/healthz",
        "/api/settings",
        "/api/register",
        "/api/password",
        "/api/password-reset",
        "/api/password-reset/confirm",
        "/api/admin/users",
        "/api/admin/users/{id}",
        "/api/admin/users/{id}/sessions",
        "/api/admin/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[tokio::test]
async fn unknown_api_paths_are_404_problems_and_client_routes_get_the_app() {
    let web = std::env::temp_dir().join(format!("tollgate-web-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>Tollgate app</title>",
    )
    .unwrap();
    std::fs::write(web.join("main.js"), "console.log('app')").unwrap();
    std::fs::write(web.join("chunk-ABCDEFGH.js"), "export {}").unwrap();
    let app = spawn_app_with(&["--web-dir", web.to_str().unwrap()]).await;
    problem(
        app.client
            .get(app.url("/api/nothing"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.client.post(app.url("/elsewhere")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    for route in ["/", "/login", "/profile"] {
        let page = app.client.get(app.url(route)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{route}");
        assert!(
            page.text().await.unwrap().contains("Tollgate app"),
            "{route}"
        );
    }
    let script = app.client.get(app.url("/main.js")).send().await.unwrap();
    // Only a name carrying its content's hash may be kept without asking again.
    assert_eq!(script.headers()["cache-control"], "no-cache");
    let chunk = app
        .client
        .get(app.url("/chunk-ABCDEFGH.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        chunk.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let page = app.client.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(script.text().await.unwrap().contains("console.log"));
    // A missing file is a 404, not the app's page under a script's name.
    for missing in ["/main-4KQ7XZ2B.js", "/favicon.ico", "/media/font.woff2"] {
        let response = app.client.get(app.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    // HEAD gets the headers without the body.
    let head = app.client.head(app.url("/profile")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.text().await.unwrap().is_empty());
    std::fs::remove_dir_all(web).unwrap();
}

/// Built without the client (`cargo install --path server`), and no directory given.
#[cfg(not(feature = "embed-web"))]
#[tokio::test]
async fn without_a_client_pages_say_where_the_api_is_and_files_are_missing() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page.text().await.unwrap().contains("/api/openapi.json"));
    for missing in ["/main-4KQ7XZ2B.js", "/favicon.ico"] {
        let response = app.client.get(app.url(missing)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn cors_allows_only_listed_origins_with_credentials() {
    let app = spawn_app_with(&["--cors-origins", "http://localhost:4200"]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/refresh-token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let listed = preflight("http://localhost:4200").await.unwrap();
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "http://localhost:4200"
    );
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");
    // A listed origin may read `Retry-After`, which clients wait for on a 429.
    let simple = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "http://localhost:4200")
        .send()
        .await
        .unwrap();
    // And the DPoP challenge and nonce, to sign a proof again.
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["retry-after", "www-authenticate", "dpop-nonce"] {
        assert!(exposed.contains(header), "{exposed}");
    }
    let unlisted = preflight("http://evil.example").await.unwrap();
    assert!(unlisted
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let same_origin_only = spawn_app().await;
    let response = same_origin_only
        .client
        .get(same_origin_only.url("/healthz"))
        .header("origin", "http://localhost:4200")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// The live-sessions gauge comes from the background task: a scrape never queries the
/// database (with a sweep an hour away, the gauge stays as the start found it), and with a
/// short interval it follows sign-ins. Separate processes: each has its own recorder.
#[tokio::test]
async fn scrapes_never_query_the_store_and_the_gauge_follows_the_background_task() {
    use crate::common::process::Server;
    let live_sessions = |text: String| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix("tollgate_live_sessions ")?.parse().ok())
            .unwrap_or_else(|| panic!("no gauge in\n{text}"))
    };
    let scrape = |server: &Server| {
        let url = format!("{}/metrics", server.address);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let database = crate::common::fresh_database_url().await;
    let idle = Server::start_with(&database, "demo", &["--sweep-interval", "1h"]);
    // The start's count, before anyone signs in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !scrape(&idle).await.contains("tollgate_live_sessions ") {
        assert!(std::time::Instant::now() < deadline, "no gauge at start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(live_sessions(scrape(&idle).await), 0.0);
    idle.login_ok("user1").await;
    for _ in 0..3 {
        assert_eq!(live_sessions(scrape(&idle).await), 0.0);
    }

    let database = crate::common::fresh_database_url().await;
    let busy = Server::start_with(&database, "demo", &["--sweep-interval", "1s"]);
    busy.login_ok("user1").await;
    busy.login_ok("user2").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while live_sessions(scrape(&busy).await) != 2.0 {
        assert!(std::time::Instant::now() < deadline, "gauge never updated");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_clients_when_it_is_plausible() {
    let app = spawn_app().await;
    let with = |id: &'static str| {
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", id)
            .send()
    };
    let echoed = with("req-42_a.b:c").await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "req-42_a.b:c");
    for forged in ["two words", "line\u{0}break", ""] {
        let replaced = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", forged.replace('\u{0}', "%00"))
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{forged:?}: {id}"
        );
    }
    let too_long = "x".repeat(129);
    let replaced = app
        .client
        .get(app.url("/api/nothing"))
        .header("x-request-id", &too_long)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), StatusCode::NOT_FOUND);
    assert_eq!(replaced.headers()["x-request-id"].len(), 32);
    let first = app.client.get(app.url("/healthz")).send().await.unwrap();
    let second = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(
        first.headers()["x-request-id"],
        second.headers()["x-request-id"]
    );
}
