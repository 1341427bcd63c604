use reqwest::StatusCode;
use serde_json::json;

use crate::common::{decode, problem, spawn_app, spawn_app_with, token};

#[tokio::test]
async fn login_returns_the_user_and_a_token_pair_that_is_never_cached() {
    let app = spawn_app().await;
    let response = app.login("user1", "password").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    let user = &body["user"];
    for field in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "gender",
        "phone",
        "city",
    ] {
        assert!(user[field].is_string(), "user.{field} in {user}");
    }
    assert_eq!(user["username"], "user1");
    assert_eq!(
        user["roles"],
        json!(["admin"]),
        "user1 is the demo administrator"
    );
    assert_eq!(
        user.as_object().unwrap().len(),
        9,
        "nothing but the profile and the roles: {user}"
    );
    assert_eq!(
        decode(&token(&body, "accessToken")).1["roles"],
        json!(["admin"])
    );
    let text = body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    assert_eq!(decode(&token(&body, "accessToken")).1["sub"], user["id"]);
    assert_eq!(decode(&token(&body, "refreshToken")).1["sub"], user["id"]);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let wrong_password = app.login("user1", "not-the-password").await;
    let unknown_user = app.login("nobody", "password").await;
    let wrong_password = problem(wrong_password, StatusCode::BAD_REQUEST).await;
    let unknown_user = problem(unknown_user, StatusCode::BAD_REQUEST).await;
    assert_eq!(wrong_password, unknown_user);
}

#[tokio::test]
async fn malformed_login_bodies_are_400_problems() {
    let app = spawn_app().await;
    for body in [
        json!({ "username": "user1" }),
        json!({ "password": "password" }),
        json!({ "username": 1, "password": "password" }),
        json!({ "username": "user1", "password": null }),
        json!({ "username": "", "password": "password" }),
        json!({ "username": "user1", "password": "password", "useCookie": "yes" }),
        json!([1, 2, 3]),
    ] {
        let response = app.post_json("/api/login", &body).await;
        problem(response, StatusCode::BAD_REQUEST).await;
    }
    let not_json = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    problem(not_json, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn login_without_json_content_type_is_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "text/plain")
        .body(r#"{"username":"user1","password":"password"}"#)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let password = "x".repeat(100_000);
    let response = app.login("user1", &password).await;
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn a_required_fingerprint_must_be_sent_at_login() {
    let app = spawn_app_with(&["--require-fingerprint", "true"]).await;
    let without = app.login("user1", "password").await;
    problem(without, StatusCode::BAD_REQUEST).await;
    let with = app
        .post_json(
            "/api/login",
            &json!({ "username": "user1", "password": "password", "fingerprint": "device-1" }),
        )
        .await;
    assert_eq!(with.status(), StatusCode::OK);
}

#[tokio::test]
async fn too_many_sign_in_attempts_get_429_with_retry_after() {
    let app = spawn_app_with(&["--login-rate", "3/1m"]).await;
    for _ in 0..3 {
        let response = app.login("user2", "wrong").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let limited = app.login("user2", "password").await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
}
