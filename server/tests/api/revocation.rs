//! A revoked session's access tokens stop working at once on the instance that revoked it and
//! within seconds everywhere else; the feed, RFC 7009 revocation and RFC 7662 introspection.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::common::process::tollgate;
use crate::common::{invalid_token, problem, sid, spawn_app, spawn_app_with, token, TestApp};

/// Other instances and processes must refuse within 2 s; a loaded test machine gets one more.
const PROPAGATION_BOUND: Duration = Duration::from_secs(3);

async fn current_user(app: &TestApp, access: &str) -> Response {
    app.get("/api/current-user", access).await
}

/// Waits until `app` refuses `access`; panics after `PROPAGATION_BOUND`.
async fn refused_within_bound(app: &TestApp, access: &str) -> Duration {
    let started = Instant::now();
    loop {
        let response = current_user(app, access).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            invalid_token(response).await;
            return started.elapsed();
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "still accepted after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn form(app: &TestApp, path: &str, body: &[(&str, &str)], secret: Option<&str>) -> Response {
    let mut request = app.client.post(app.url(path)).form(body);
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    request.send().await.unwrap()
}

async fn feed(app: &TestApp, after: Option<&str>) -> Value {
    let mut request = app.client.get(app.url("/api/revocations"));
    if let Some(after) = after {
        request = request.query(&[("after", after)]);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn names(feed: &Value, session: uuid::Uuid) -> bool {
    feed["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|entry| entry["sid"] == session.to_string() && entry["revokedAt"].is_string())
}

#[tokio::test]
async fn logout_ends_its_sessions_access_tokens_at_once_and_no_other() {
    let app = spawn_app().await;
    let ended = app.login_ok("user1").await;
    let other = app.login_ok("user1").await;
    let access = token(&ended, "accessToken");
    assert_eq!(current_user(&app, &access).await.status(), StatusCode::OK);
    let logout = app
        .post_json(
            "/api/logout",
            &json!({ "refreshToken": token(&ended, "refreshToken") }),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    invalid_token(current_user(&app, &access).await).await;
    let still = current_user(&app, &token(&other, "accessToken")).await;
    assert_eq!(still.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_out_everywhere_and_revoking_a_device_end_their_access_tokens() {
    let app = spawn_app().await;
    let first = app.login_ok("user1").await;
    let second = app.login_ok("user1").await;
    let third = app.login_ok("user1").await;
    let revoke_second = app
        .delete(
            &format!("/api/sessions/{}", sid(&token(&second, "refreshToken"))),
            &token(&first, "accessToken"),
        )
        .await;
    assert_eq!(revoke_second.status(), StatusCode::NO_CONTENT);
    invalid_token(current_user(&app, &token(&second, "accessToken")).await).await;
    let everywhere = app
        .delete("/api/sessions", &token(&third, "accessToken"))
        .await;
    assert_eq!(everywhere.status(), StatusCode::NO_CONTENT);
    for session in [&first, &third] {
        invalid_token(current_user(&app, &token(session, "accessToken")).await).await;
    }
}

#[tokio::test]
async fn reuse_detection_ends_the_access_tokens_of_the_session() {
    let app = spawn_app_with(&["--refresh-reuse-grace", "0s"]).await;
    let login = app.login_ok("user1").await;
    let stolen = token(&login, "refreshToken");
    let rotated: Value = app.refresh(&stolen).await.json().await.unwrap();
    let access = token(&rotated, "accessToken");
    assert_eq!(current_user(&app, &access).await.status(), StatusCode::OK);
    let replay = app.refresh(&stolen).await;
    assert_eq!(replay.status(), StatusCode::FORBIDDEN);
    invalid_token(current_user(&app, &access).await).await;
}

#[tokio::test]
async fn a_session_evicted_by_the_limit_loses_its_access_tokens() {
    let app = spawn_app_with(&[
        "--max-sessions",
        "1",
        "--session-limit-policy",
        "evict-oldest",
    ])
    .await;
    let evicted = app.login_ok("user1").await;
    let newer = app.login_ok("user1").await;
    invalid_token(current_user(&app, &token(&evicted, "accessToken")).await).await;
    let kept = current_user(&app, &token(&newer, "accessToken")).await;
    assert_eq!(kept.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_instance_refuses_within_the_bound_and_a_restarted_one_at_once() {
    let app = spawn_app().await;
    let other = app.sibling(&["--revocation-poll", "200ms"]).await;
    let login = app.login_ok("user1").await;
    let access = token(&login, "accessToken");
    assert_eq!(current_user(&other, &access).await.status(), StatusCode::OK);
    app.post_json(
        "/api/logout",
        &json!({ "refreshToken": token(&login, "refreshToken") }),
    )
    .await;
    let took = refused_within_bound(&other, &access).await;
    eprintln!("another instance refused the revoked session's token after {took:?}");
    let restarted = other.restart().await;
    invalid_token(current_user(&restarted, &access).await).await;
}

#[tokio::test]
async fn a_password_change_from_the_command_line_reaches_the_running_server() {
    let app = spawn_app_with(&["--revocation-poll", "200ms"]).await;
    let login = app.login_ok("user1").await;
    let access = token(&login, "accessToken");
    let mut passwd = tollgate()
        .args(["user", "passwd", "user1"])
        .env("TOLLGATE_DATABASE_URL", app.database_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "a new password").unwrap();
    // Waited for off the runtime: the app under test runs on it, and blocking it could stop
    // the app between the statements of a write (its audit log's) while the command line
    // waits for that write to end.
    let output = tokio::task::spawn_blocking(move || passwd.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let took = refused_within_bound(&app, &access).await;
    eprintln!("a revocation by another process was seen after {took:?}");
}

#[tokio::test]
async fn the_feed_names_revoked_sessions_and_continues_from_its_cursor() {
    let app = spawn_app().await;
    let first = app.login_ok("user1").await;
    let second = app.login_ok("user2").await;
    let empty = feed(&app, None).await;
    assert_eq!(empty["revoked"], json!([]));
    assert!(empty["cursor"].is_string());
    for login in [&first, &second] {
        app.post_json(
            "/api/logout",
            &json!({ "refreshToken": token(login, "refreshToken") }),
        )
        .await;
    }
    let page = feed(&app, None).await;
    let (first_sid, second_sid) = (
        sid(&token(&first, "refreshToken")),
        sid(&token(&second, "refreshToken")),
    );
    assert!(
        names(&page, first_sid) && names(&page, second_sid),
        "{page}"
    );
    // The cursor of a page that caught up looks back a little, so a session may come again;
    // nothing revoked before the cursor's time is ever skipped.
    let next = feed(&app, page["cursor"].as_str()).await;
    assert!(next["cursor"].is_string());
    let later = app.login_ok("user3").await;
    app.post_json(
        "/api/logout",
        &json!({ "refreshToken": token(&later, "refreshToken") }),
    )
    .await;
    let after = feed(&app, next["cursor"].as_str()).await;
    assert!(
        names(&after, sid(&token(&later, "refreshToken"))),
        "{after}"
    );
    // A cursor is honoured: nothing revoked before it comes back.
    let future = (time::OffsetDateTime::now_utc() + time::Duration::minutes(1))
        .unix_timestamp_nanos()
        / 1_000_000;
    let beyond = feed(
        &app,
        Some(&format!("{future}-{}", uuid::Uuid::nil().simple())),
    )
    .await;
    assert_eq!(beyond["revoked"], json!([]), "{beyond}");
    for junk in ["junk", "12-nope", "-"] {
        let response = app
            .client
            .get(app.url("/api/revocations"))
            .query(&[("after", junk)])
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn rfc_7009_revokes_the_session_of_a_refresh_or_an_access_token() {
    let app = spawn_app().await;
    let by_refresh = app.login_ok("user1").await;
    let revoked = form(
        &app,
        "/api/revoke",
        &[("token", &token(&by_refresh, "refreshToken"))],
        None,
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    invalid_token(current_user(&app, &token(&by_refresh, "accessToken")).await).await;
    let refresh = app.refresh(&token(&by_refresh, "refreshToken")).await;
    assert_eq!(refresh.status(), StatusCode::FORBIDDEN);

    let by_access = app.login_ok("user2").await;
    let revoked = form(
        &app,
        "/api/revoke",
        &[
            ("token", &token(&by_access, "accessToken")),
            ("token_type_hint", "access_token"),
        ],
        None,
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    invalid_token(current_user(&app, &token(&by_access, "accessToken")).await).await;
    let session = app.session_of(&token(&by_access, "refreshToken")).await;
    assert!(session.revoked_at.is_some());

    // Unknown tokens are answered 200 and change nothing; a request without one is refused.
    let untouched = app.login_ok("user3").await;
    let junk = form(&app, "/api/revoke", &[("token", "not.a.token")], None).await;
    assert_eq!(junk.status(), StatusCode::OK);
    let still = current_user(&app, &token(&untouched, "accessToken")).await;
    assert_eq!(still.status(), StatusCode::OK);
    problem(
        form(&app, "/api/revoke", &[("token_type_hint", "x")], None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let json_body = app.post_json("/api/revoke", &json!({ "token": "x" })).await;
    problem(json_body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

const SECRET: &str = "introspection-secret-of-32-bytes-at-least";

#[tokio::test]
async fn introspection_is_absent_unless_configured_and_needs_its_secret() {
    let unconfigured = spawn_app().await;
    let response = form(
        &unconfigured,
        "/api/introspect",
        &[("token", "x")],
        Some(SECRET),
    )
    .await;
    problem(response, StatusCode::NOT_FOUND).await;

    let app = spawn_app_with(&[
        "--introspection-secrets",
        &format!("other-secret-of-32-bytes-or-more,{SECRET}"),
    ])
    .await;
    let login = app.login_ok("user1").await;
    let access = token(&login, "accessToken");
    for secret in [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1])] {
        let response = form(&app, "/api/introspect", &[("token", &access)], secret).await;
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    for secret in ["other-secret-of-32-bytes-or-more", SECRET] {
        let response = form(&app, "/api/introspect", &[("token", &access)], Some(secret)).await;
        assert_eq!(response.status(), StatusCode::OK, "{secret}");
    }
}

#[tokio::test]
async fn introspection_says_whether_a_token_is_active() {
    let app = spawn_app_with(&["--introspection-secrets", SECRET]).await;
    let introspect = |token: String| {
        let app = &app;
        async move {
            let response = form(app, "/api/introspect", &[("token", &token)], Some(SECRET)).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["cache-control"], "no-store");
            response.json::<Value>().await.unwrap()
        }
    };
    let login = app.login_ok("user1").await;
    let (access, refresh) = (token(&login, "accessToken"), token(&login, "refreshToken"));
    let active = introspect(access.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "access_token");
    assert_eq!(active["sid"], sid(&refresh).to_string());
    assert_eq!(active["username"], "user1");
    assert_eq!(active["aud"], "tollgate-api");
    let active = introspect(refresh.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "refresh_token");

    // A rotated-away refresh token is no longer active; the new one is.
    let rotated: Value = app.refresh(&refresh).await.json().await.unwrap();
    assert_eq!(introspect(refresh).await, json!({ "active": false }));
    let current = token(&rotated, "refreshToken");
    assert_eq!(introspect(current.clone()).await["active"], true);

    app.post_json("/api/logout", &json!({ "refreshToken": current.clone() }))
        .await;
    for ended in [access, current, "not.a.token".to_owned()] {
        assert_eq!(introspect(ended).await, json!({ "active": false }));
    }
}
