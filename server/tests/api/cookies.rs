use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::common::{problem, spawn_app, spawn_app_with, token};

/// The `tollgate_refresh` value a response sets, and the whole header.
fn set_cookie(response: &Response) -> (String, String) {
    let header = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let value = header
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("tollgate_refresh=")
        .unwrap()
        .to_owned();
    (value, header)
}

/// What our client sends: a JSON body without the token, the cookie riding along.
async fn refresh_with_cookie(app: &crate::common::TestApp, cookie: &str) -> Response {
    app.client
        .post(app.url("/api/refresh-token"))
        .header(COOKIE, format!("theme=dark; tollgate_refresh={cookie}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

async fn login_with_cookie(app: &crate::common::TestApp) -> String {
    let login = app
        .post_json(
            "/api/login",
            &json!({ "username": "user1", "password": "password", "useCookie": true }),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    set_cookie(&login).0
}

#[tokio::test]
async fn the_cookie_transport_round_trip() {
    let app = spawn_app().await;
    let login = app
        .post_json(
            "/api/login",
            &json!({ "username": "user1", "password": "password", "useCookie": true }),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let (first, header) = set_cookie(&login);
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api"] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    let body: Value = login.json().await.unwrap();
    assert!(
        body.get("refreshToken").is_none(),
        "the refresh token is only in the cookie"
    );
    assert!(body["accessToken"].is_string());

    let refreshed = refresh_with_cookie(&app, &first).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let (second, _) = set_cookie(&refreshed);
    assert_ne!(first, second, "rotated with Set-Cookie");
    let body: Value = refreshed.json().await.unwrap();
    assert!(body.get("refreshToken").is_none());
    assert_eq!(
        app.get("/api/current-user", &token(&body, "accessToken"))
            .await
            .status(),
        StatusCode::OK
    );

    let logout = app
        .client
        .post(app.url("/api/logout"))
        .header(COOKIE, format!("tollgate_refresh={second}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let (cleared, header) = set_cookie(&logout);
    assert!(
        cleared.is_empty() && header.contains("Max-Age=0"),
        "{header}"
    );
    problem(
        refresh_with_cookie(&app, &second).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_reused_cookie_is_refused_and_cleared() {
    let app = spawn_app_with(&["--refresh-reuse-grace", "0s"]).await;
    let login = app
        .post_json(
            "/api/login",
            &json!({ "username": "user1", "password": "password", "useCookie": true }),
        )
        .await;
    let (first, _) = set_cookie(&login);
    assert_eq!(
        refresh_with_cookie(&app, &first).await.status(),
        StatusCode::OK
    );
    let reused = refresh_with_cookie(&app, &first).await;
    let (cleared, _) = set_cookie(&reused);
    assert!(cleared.is_empty());
    problem(reused, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn body_transport_clients_keep_working_beside_cookie_ones() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let refreshed = app.refresh(&token(&login, "refreshToken")).await;
    assert!(
        refreshed.headers().get(SET_COOKIE).is_none(),
        "no cookie for body clients"
    );
    let body: Value = refreshed.json().await.unwrap();
    assert!(body["refreshToken"].is_string());
    let without_anything = app
        .client
        .post(app.url("/api/refresh-token"))
        .send()
        .await
        .unwrap();
    problem(without_anything, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_cookie_is_ignored_without_a_json_content_type() {
    let app = spawn_app().await;
    let cookie = login_with_cookie(&app).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .client
            .post(app.url("/api/refresh-token"))
            .header(COOKIE, format!("tollgate_refresh={cookie}"));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{content_type:?}");
        assert!(
            response.headers().get(SET_COOKIE).is_none(),
            "a forged request cannot clear the cookie"
        );
    }
    let forged_logout = app
        .client
        .post(app.url("/api/logout"))
        .header(COOKIE, format!("tollgate_refresh={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_logout.status(), StatusCode::NO_CONTENT);
    assert!(forged_logout.headers().get(SET_COOKIE).is_none());
    assert_eq!(
        refresh_with_cookie(&app, &cookie).await.status(),
        StatusCode::OK,
        "the session survived"
    );
}

#[tokio::test]
async fn the_cookie_is_ignored_on_requests_from_a_foreign_origin() {
    let app = spawn_app_with(&["--cors-origins", "http://localhost:4200"]).await;
    let cookie = login_with_cookie(&app).await;
    let from = |origin: &'static str| {
        app.client
            .post(app.url("/api/refresh-token"))
            .header(COOKIE, format!("tollgate_refresh={cookie}"))
            .header("origin", origin)
            .json(&json!({}))
            .send()
    };
    assert_eq!(
        from("https://evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(from("null").await.unwrap().status(), StatusCode::FORBIDDEN);
    let listed = from("http://localhost:4200").await.unwrap();
    assert_eq!(
        listed.status(),
        StatusCode::OK,
        "a listed origin may use the cookie"
    );
    let (rotated, _) = set_cookie(&listed);
    let same_origin = app
        .client
        .post(app.url("/api/refresh-token"))
        .header(COOKIE, format!("tollgate_refresh={rotated}"))
        .header("origin", app.address.clone())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), StatusCode::OK, "our own origin may");
}

#[tokio::test]
async fn sign_in_from_a_foreign_origin_is_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/login"))
        .header("origin", "https://evil.example")
        .json(&json!({ "username": "user1", "password": "password", "useCookie": true }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get(SET_COOKIE).is_none());
    problem(response, StatusCode::FORBIDDEN).await;
}

/// Cookie tossing: a sibling domain can plant a second `tollgate_refresh`; which one is ours
/// cannot be told, so the refresh is refused and neither session moves.
#[tokio::test]
async fn two_refresh_cookies_are_refused_not_served_from_the_first() {
    let app = spawn_app().await;
    let real = login_with_cookie(&app).await;
    let planted = login_with_cookie(&app).await;
    for header in [
        format!("tollgate_refresh={planted}; tollgate_refresh={real}"),
        format!("tollgate_refresh={real}; theme=dark; tollgate_refresh={planted}"),
    ] {
        let response = app
            .client
            .post(app.url("/api/refresh-token"))
            .header(COOKIE, header)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::FORBIDDEN).await;
    }
    // Neither token was spent: each still refreshes on its own.
    for cookie in [&real, &planted] {
        assert_eq!(
            refresh_with_cookie(&app, cookie).await.status(),
            StatusCode::OK
        );
    }
}
