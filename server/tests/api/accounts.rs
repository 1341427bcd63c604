//! Sign-up, password change and password reset by mail (docs/api.md, "Accounts").

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::smtp::Mailbox;
use crate::common::{decode, invalid_token, problem, spawn_app, spawn_app_with, token, TestApp};

const STRONG: &str = "correct horse battery staple";
/// Where reset links lead in these tests.
const PUBLIC_URL: &str = "https://auth.example.org";

fn new_user(username: &str, password: &str) -> Value {
    json!({
        "username": username,
        "password": password,
        "email": format!("{username}@example.org"),
        "first_name": "Katherine",
        "last_name": "Johnson",
        "city": "Hampton",
    })
}

async fn open_app(extra: &[&str]) -> TestApp {
    let mut flags = vec!["--signup", "open"];
    flags.extend_from_slice(extra);
    spawn_app_with(&flags).await
}

#[tokio::test]
async fn the_settings_say_what_the_server_offers() {
    let closed = spawn_app().await;
    let settings: Value = closed
        .client
        .get(closed.url("/api/settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings, json!({ "signup": false, "passwordReset": false }));

    let mailbox = Mailbox::start().await;
    let open = open_app(&["--smtp-url", &mailbox.url, "--public-url", PUBLIC_URL]).await;
    let settings: Value = open
        .client
        .get(open.url("/api/settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings, json!({ "signup": true, "passwordReset": true }));
}

#[tokio::test]
async fn sign_up_is_closed_unless_opened() {
    let app = spawn_app().await;
    let refused = app
        .post_json("/api/register", &new_user("kj", STRONG))
        .await;
    let body = problem(refused, StatusCode::FORBIDDEN).await;
    assert!(
        body["detail"].as_str().unwrap().contains("closed"),
        "{body}"
    );
    assert!(app
        .store
        .find_user_by_username("kj")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn signing_up_creates_the_user_and_signs_them_in() {
    let app = open_app(&[]).await;
    let mut request = new_user("katherine", STRONG);
    // Nobody grants themselves a role.
    request["roles"] = json!(["admin"]);
    let response = app.post_json("/api/register", &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "katherine");
    assert_eq!(body["user"]["email"], "katherine@example.org");
    assert_eq!(body["user"]["city"], "Hampton");
    assert_eq!(body["user"]["roles"], json!([]));
    assert_eq!(body["tokenType"], "Bearer");
    let access = token(&body, "accessToken");
    assert_eq!(decode(&access).1["roles"], json!([]));
    let me: Value = app
        .get("/api/current-user", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "katherine");
    assert_eq!(
        app.refresh(&token(&body, "refreshToken")).await.status(),
        StatusCode::OK
    );
    // The password works for signing in; what is stored is a hash.
    assert_eq!(
        app.login("katherine", STRONG).await.status(),
        StatusCode::OK
    );
    let (_, hash) = app
        .store
        .find_user_by_username("katherine")
        .await
        .unwrap()
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(STRONG));
}

#[tokio::test]
async fn signing_up_with_the_cookie_transport_sets_the_cookie() {
    let app = open_app(&[]).await;
    let mut request = new_user("cookie-person", STRONG);
    request["useCookie"] = json!(true);
    let response = app.post_json("/api/register", &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("tollgate_refresh=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refreshToken").is_none(), "{body}");
}

#[tokio::test]
async fn a_taken_username_is_409_and_changes_nothing() {
    let app = open_app(&[]).await;
    let taken = app
        .post_json("/api/register", &new_user("user1", STRONG))
        .await;
    let body = problem(taken, StatusCode::CONFLICT).await;
    assert!(body["detail"].as_str().unwrap().contains("taken"), "{body}");
    // user1 keeps their password and profile.
    assert_eq!(
        app.login("user1", "password").await.status(),
        StatusCode::OK
    );
    let (user, _) = app
        .store
        .find_user_by_username("user1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, "user1@example.com");
}

#[tokio::test]
async fn weak_passwords_and_bad_fields_are_400_with_a_reason() {
    let app = open_app(&[]).await;
    let too_long = "x".repeat(1025);
    for (password, reason) in [
        ("short", "at least 8"),
        ("password", "common"),
        ("Iloveyou1", "common"),
        ("qwertyuiop", "common"),
        (too_long.as_str(), "1024 bytes"),
        ("newcomer", "username"),
    ] {
        let response = app
            .post_json("/api/register", &new_user("newcomer", password))
            .await;
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{password:?}: {detail}");
    }
    let mut no_email = new_user("newcomer", STRONG);
    no_email["email"] = json!("");
    let mut bad_email = new_user("newcomer", STRONG);
    bad_email["email"] = json!("not an address");
    let long_name = "n".repeat(65);
    for (request, reason) in [
        (no_email, "email"),
        (bad_email, "email"),
        (new_user("new\u{7}comer", STRONG), "username"),
        (new_user(&long_name, STRONG), "username"),
        (new_user("   ", STRONG), "username"),
    ] {
        let response = app.post_json("/api/register", &request).await;
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(body["detail"].as_str().unwrap().contains(reason), "{body}");
    }
    let missing_password = app
        .post_json(
            "/api/register",
            &json!({ "username": "newcomer", "email": "a@b.c" }),
        )
        .await;
    problem(missing_password, StatusCode::BAD_REQUEST).await;
    assert!(app
        .store
        .find_user_by_username("newcomer")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn sign_up_is_rate_limited_like_login() {
    let app = open_app(&["--login-rate", "2/1m"]).await;
    for n in 0..2 {
        let response = app
            .post_json("/api/register", &new_user(&format!("flood{n}"), STRONG))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let limited = app
        .post_json("/api/register", &new_user("flood2", STRONG))
        .await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(app
        .store
        .find_user_by_username("flood2")
        .await
        .unwrap()
        .is_none());
}

async fn change_password(
    app: &TestApp,
    access: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.send_json(
        Method::POST,
        "/api/password",
        access,
        &json!({ "currentPassword": current, "newPassword": new }),
    )
    .await
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_session() {
    let app = spawn_app().await;
    let here = app.login_ok("user2").await;
    let elsewhere = app.login_ok("user2").await;
    let access = token(&here, "accessToken");
    let changed = change_password(&app, &access, "password", STRONG).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    // The other device is out: its access token at once, its refresh token too.
    invalid_token(
        app.get("/api/job-list", &token(&elsewhere, "accessToken"))
            .await,
    )
    .await;
    problem(
        app.refresh(&token(&elsewhere, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // This one stays.
    assert_eq!(
        app.get("/api/job-list", &access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&token(&here, "refreshToken")).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.login("user2", STRONG).await.status(), StatusCode::OK);
    problem(
        app.login("user2", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_wrong_current_password_or_a_weak_new_one_changes_nothing() {
    let app = spawn_app().await;
    let here = app.login_ok("user2").await;
    let elsewhere = app.login_ok("user2").await;
    let access = token(&here, "accessToken");
    let wrong = change_password(&app, &access, "not-the-password", STRONG).await;
    let body = problem(wrong, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("current password"),
        "{body}"
    );
    let weak = change_password(&app, &access, "password", "12345678").await;
    let body = problem(weak, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"].as_str().unwrap().contains("common"),
        "{body}"
    );
    assert_eq!(
        app.login("user2", "password").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/job-list", &token(&elsewhere, "accessToken"))
            .await
            .status(),
        StatusCode::OK
    );
    let anonymous = app
        .post_json(
            "/api/password",
            &json!({ "currentPassword": "password", "newPassword": STRONG }),
        )
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guessing_the_current_password_is_rate_limited() {
    // The sign-in spends one of the three attempts.
    let app = spawn_app_with(&["--login-rate", "3/1m"]).await;
    let access = token(&app.login_ok("user2").await, "accessToken");
    for _ in 0..2 {
        let wrong = change_password(&app, &access, "guess", STRONG).await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    }
    let limited = change_password(&app, &access, "password", STRONG).await;
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    problem(
        app.login("user2", STRONG).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/api/password-reset", &json!({ "email": email }))
        .await
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/password-reset/confirm",
        &json!({ "token": token, "newPassword": password }),
    )
    .await
}

#[tokio::test]
async fn a_reset_mail_sets_a_new_password_once_and_signs_out_everywhere() {
    let mut mailbox = Mailbox::start().await;
    let app = spawn_app_with(&[
        "--smtp-url",
        &mailbox.url,
        "--public-url",
        "https://auth.example.org/",
    ])
    .await;
    let signed_in = app.login_ok("user2").await;
    // Unknown addresses get the same answer, and no mail.
    assert_eq!(
        request_reset(&app, "nobody@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        request_reset(&app, "USER2@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    let mail = mailbox.next().await;
    assert_eq!(mail.recipients, ["user2@example.com"]);
    assert!(
        mail.text
            .contains("https://auth.example.org/reset-password?token="),
        "{}",
        mail.text
    );
    let reset = mail.reset_token();
    assert!(reset.len() >= 43, "{reset}");
    assert!(
        mailbox.stays_empty(Duration::from_millis(300)).await,
        "one mail only"
    );

    let weak = confirm_reset(&app, &reset, "password").await;
    problem(weak, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        confirm_reset(&app, &reset, STRONG).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.refresh(&token(&signed_in, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    invalid_token(
        app.get("/api/job-list", &token(&signed_in, "accessToken"))
            .await,
    )
    .await;
    assert_eq!(app.login("user2", STRONG).await.status(), StatusCode::OK);
    problem(
        app.login("user2", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Single use.
    let again = confirm_reset(&app, &reset, "another good passphrase").await;
    let body = problem(again, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"].as_str().unwrap().contains("reset link"),
        "{body}"
    );
    assert_eq!(app.login("user2", STRONG).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reset_tokens_are_stored_hashed_and_expire() {
    let mut mailbox = Mailbox::start().await;
    let app = spawn_app_with(&["--smtp-url", &mailbox.url, "--public-url", PUBLIC_URL]).await;
    request_reset(&app, "user3@example.com").await;
    let reset = mailbox.next().await.reset_token();
    let (user, _) = app
        .store
        .find_user_by_username("user3")
        .await
        .unwrap()
        .unwrap();
    let dump = dump_resets(&app).await;
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].1, user.id.to_string());
    assert!(
        !dump[0].0.contains(&reset) && dump[0].0.len() == 64,
        "{dump:?}"
    );
    // An hour later (its expiry moved back an hour in the store) it no longer works.
    app.execute_sql(&["UPDATE password_resets SET expires_at = expires_at - 3600000"])
        .await;
    problem(
        confirm_reset(&app, &reset, STRONG).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        confirm_reset(&app, "made-up-token", STRONG).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        confirm_reset(&app, "", STRONG).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        app.login("user3", "password").await.status(),
        StatusCode::OK
    );
}

/// Every stored reset: its token hash and user id.
async fn dump_resets(app: &TestApp) -> Vec<(String, String)> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(app.database_url())
        .await
        .unwrap();
    sqlx::query_as("SELECT token_hash, user_id FROM password_resets")
        .fetch_all(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn disabled_users_get_no_reset_mail_and_without_smtp_nothing_is_sent() {
    let mut mailbox = Mailbox::start().await;
    let app = spawn_app_with(&["--smtp-url", &mailbox.url, "--public-url", PUBLIC_URL]).await;
    let (user, _) = app
        .store
        .find_user_by_username("user3")
        .await
        .unwrap()
        .unwrap();
    app.store
        .set_disabled(user.id, true, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(
        request_reset(&app, "user3@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    request_reset(&app, "user2@example.com").await;
    assert_eq!(mailbox.next().await.recipients, ["user2@example.com"]);
    assert!(
        mailbox.stays_empty(Duration::from_millis(500)).await,
        "no mail for the disabled user"
    );

    let without = spawn_app().await;
    assert_eq!(
        request_reset(&without, "user2@example.com").await.status(),
        StatusCode::ACCEPTED
    );
    assert!(dump_resets(&without).await.is_empty());
    problem(request_reset(&without, "").await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn reset_requests_are_rate_limited() {
    let mut mailbox = Mailbox::start().await;
    let app = spawn_app_with(&[
        "--smtp-url",
        &mailbox.url,
        "--public-url",
        PUBLIC_URL,
        "--login-rate",
        "2/1m",
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(
            request_reset(&app, "user2@example.com").await.status(),
            StatusCode::ACCEPTED
        );
    }
    problem(
        request_reset(&app, "user2@example.com").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    mailbox.next().await;
    mailbox.next().await;
    assert!(mailbox.stays_empty(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn a_password_change_or_disabling_cancels_pending_reset_links() {
    let mut mailbox = Mailbox::start().await;
    let app = spawn_app_with(&["--smtp-url", &mailbox.url, "--public-url", PUBLIC_URL]).await;
    request_reset(&app, "user2@example.com").await;
    let pending = mailbox.next().await.reset_token();
    // A refused password leaves the link usable.
    problem(
        confirm_reset(&app, &pending, "user2").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let access = token(&app.login_ok("user2").await, "accessToken");
    assert_eq!(
        change_password(&app, &access, "password", STRONG)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        confirm_reset(&app, &pending, "another fine passphrase").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(app.login("user2", STRONG).await.status(), StatusCode::OK);

    request_reset(&app, "user3@example.com").await;
    let pending = mailbox.next().await.reset_token();
    let (user3, _) = app
        .store
        .find_user_by_username("user3")
        .await
        .unwrap()
        .unwrap();
    app.store
        .set_disabled(user3.id, true, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    app.store
        .set_disabled(user3.id, false, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    problem(
        confirm_reset(&app, &pending, STRONG).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        app.login("user3", "password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_reset_password_may_not_be_the_username_and_a_refusal_keeps_the_link() {
    let mut mailbox = Mailbox::start().await;
    let app = open_app(&["--smtp-url", &mailbox.url, "--public-url", PUBLIC_URL]).await;
    let created = app
        .post_json("/api/register", &new_user("orbit-mathematician", STRONG))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    request_reset(&app, "orbit-mathematician@example.org").await;
    let reset = mailbox.next().await.reset_token();
    let refused = confirm_reset(&app, &reset, "Orbit-Mathematician").await;
    let body = problem(refused, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"].as_str().unwrap().contains("username"),
        "{body}"
    );
    let set = confirm_reset(&app, &reset, "another fine passphrase").await;
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("orbit-mathematician", "another fine passphrase")
            .await
            .status(),
        StatusCode::OK
    );
}
