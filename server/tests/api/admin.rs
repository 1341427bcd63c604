//! The admin API and the audit log (docs/api.md, "Accounts").

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{invalid_token, problem, spawn_app, spawn_app_with, token, TestApp};

const STRONG: &str = "correct horse battery staple";

/// user1 is the demo administrator.
async fn admin_token(app: &TestApp) -> String {
    token(&app.login_ok("user1").await, "accessToken")
}

async fn user_id(app: &TestApp, username: &str) -> String {
    let (user, _) = app
        .store
        .find_user_by_username(username)
        .await
        .unwrap()
        .unwrap();
    user.id.to_string()
}

async fn users_page(app: &TestApp, admin: &str, query: &str) -> Value {
    let response = app.get(&format!("/api/admin/users{query}"), admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn usernames(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn patch(app: &TestApp, admin: &str, id: &str, body: Value) -> reqwest::Response {
    app.send_json(
        Method::PATCH,
        &format!("/api/admin/users/{id}"),
        admin,
        &body,
    )
    .await
}

/// The audit log as user1 reads it.
async fn audit(app: &TestApp, admin: &str, query: &str) -> Value {
    let response = app.get(&format!("/api/admin/audit{query}"), admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn events(page: &Value) -> Vec<(String, String)> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["event"].as_str().unwrap().to_owned();
            (name, e["outcome"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn only_administrators_reach_the_admin_api() {
    let app = spawn_app().await;
    let user = token(&app.login_ok("user2").await, "accessToken");
    let id = user_id(&app, "user3").await;
    let routes = [
        (Method::GET, "/api/admin/users".to_owned()),
        (Method::POST, "/api/admin/users".to_owned()),
        (Method::PATCH, format!("/api/admin/users/{id}")),
        (Method::DELETE, format!("/api/admin/users/{id}")),
        (Method::DELETE, format!("/api/admin/users/{id}/sessions")),
        (Method::GET, "/api/admin/audit".to_owned()),
    ];
    for (method, path) in &routes {
        let body = json!({ "username": "x", "password": STRONG, "roles": ["admin"] });
        let forbidden = app.send_json(method.clone(), path, &user, &body).await;
        problem(forbidden, StatusCode::FORBIDDEN).await;
        let anonymous = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
    assert!(app
        .store
        .find_user_by_username("x")
        .await
        .unwrap()
        .is_none());
    assert!(app
        .store
        .find_user_by_username("user3")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn users_can_be_searched_and_paged() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let all = users_page(&app, &admin, "").await;
    assert_eq!(usernames(&all), ["user1", "user2", "user3"]);
    assert_eq!(all["users"][0]["roles"], json!(["admin"]));
    assert_eq!(all["users"][0]["disabled"], json!(false));
    assert_eq!(all["next"], Value::Null);
    assert_eq!(
        usernames(&users_page(&app, &admin, "?query=TURING").await),
        ["user2"]
    );
    assert_eq!(
        usernames(&users_page(&app, &admin, "?query=user3%40example").await),
        ["user3"]
    );
    // LIKE wildcards are searched for, not obeyed.
    assert!(usernames(&users_page(&app, &admin, "?query=%25").await).is_empty());
    assert!(usernames(&users_page(&app, &admin, "?query=user_").await).is_empty());
    let first = users_page(&app, &admin, "?limit=2").await;
    assert_eq!(usernames(&first), ["user1", "user2"]);
    assert_eq!(first["next"], "user2");
    let second = users_page(&app, &admin, "?limit=2&after=user2").await;
    assert_eq!(usernames(&second), ["user3"]);
    assert_eq!(second["next"], Value::Null);
    // Oversized pages are clamped, not refused.
    assert_eq!(
        usernames(&users_page(&app, &admin, "?limit=1000000").await).len(),
        3
    );
    assert_eq!(
        usernames(&users_page(&app, &admin, "?limit=0").await),
        ["user1"]
    );
    problem(
        app.get("/api/admin/users?limit=lots", &admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn administrators_create_users_with_roles() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let created = app
        .send_json(
            Method::POST,
            "/api/admin/users",
            &admin,
            &json!({ "username": "editor", "password": STRONG, "email": "ed@example.org",
                     "roles": ["editor", "admin", "editor"] }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["roles"], json!(["admin", "editor"]));
    let signed_in = app
        .login("editor", STRONG)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(signed_in["user"]["roles"], json!(["admin", "editor"]));
    let claims = crate::common::decode(&token(&signed_in, "accessToken")).1;
    assert_eq!(claims["roles"], json!(["admin", "editor"]));

    for (request, status) in [
        (
            json!({ "username": "editor", "password": STRONG }),
            StatusCode::CONFLICT,
        ),
        (
            json!({ "username": "weak", "password": "password1" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "username": "bad", "password": STRONG, "roles": ["a,b"] }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "username": "bad", "password": STRONG, "email": "nope" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "username": "bad", "password": STRONG, "rolez": [] }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = app
            .send_json(Method::POST, "/api/admin/users", &admin, &request)
            .await;
        problem(response, status).await;
    }
    assert!(app
        .store
        .find_user_by_username("weak")
        .await
        .unwrap()
        .is_none());
    assert!(app
        .store
        .find_user_by_username("bad")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_role_taken_away_stops_working_at_once() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user2 = user_id(&app, "user2").await;
    let granted = patch(&app, &admin, &user2, json!({ "roles": ["admin"] })).await;
    assert_eq!(granted.status(), StatusCode::OK);
    let promoted = token(&app.login_ok("user2").await, "accessToken");
    assert_eq!(
        app.get("/api/admin/users", &promoted).await.status(),
        StatusCode::OK
    );
    // Behind the API's back, the store no longer says admin; the token still does.
    let user2_id = uuid::Uuid::parse_str(&user2).unwrap();
    app.store.set_roles(user2_id, &[]).await.unwrap();
    problem(
        app.get("/api/admin/users", &promoted).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        app.get("/api/job-list", &promoted).await.status(),
        StatusCode::OK
    );

    // Through the API, removing a role also ends the tokens that carry it, here and at
    // resource servers (the revocation feed).
    app.store
        .set_roles(user2_id, &["admin".to_owned()])
        .await
        .unwrap();
    let promoted = app.login_ok("user2").await;
    let removed = patch(&app, &admin, &user2, json!({ "roles": [] })).await;
    assert_eq!(removed.json::<Value>().await.unwrap()["roles"], json!([]));
    invalid_token(
        app.get("/api/job-list", &token(&promoted, "accessToken"))
            .await,
    )
    .await;
    let relogin = app.login_ok("user2").await;
    assert_eq!(relogin["user"]["roles"], json!([]));
    // Adding a role signs nobody out.
    patch(&app, &admin, &user2, json!({ "roles": ["editor"] })).await;
    let access = token(&relogin, "accessToken");
    assert_eq!(
        app.get("/api/job-list", &access).await.status(),
        StatusCode::OK
    );

    // An administrator dropping one of their own roles keeps the session doing it; their
    // other sessions end.
    let me = user_id(&app, "user1").await;
    let elsewhere = admin_token(&app).await;
    patch(&app, &admin, &me, json!({ "roles": ["admin", "editor"] })).await;
    let kept = patch(&app, &admin, &me, json!({ "roles": ["admin"] })).await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/admin/users", &admin).await.status(),
        StatusCode::OK
    );
    invalid_token(app.get("/api/job-list", &elsewhere).await).await;
}

#[tokio::test]
async fn disabling_ends_every_session_and_sign_in_looks_like_a_wrong_password() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user2 = user_id(&app, "user2").await;
    let phone = app.login_ok("user2").await;
    let laptop = app.login_ok("user2").await;
    let disabled = patch(&app, &admin, &user2, json!({ "disabled": true })).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        disabled.json::<Value>().await.unwrap()["disabled"],
        json!(true)
    );
    for device in [&phone, &laptop] {
        invalid_token(
            app.get("/api/job-list", &token(device, "accessToken"))
                .await,
        )
        .await;
        problem(
            app.refresh(&token(device, "refreshToken")).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let refused = problem(
        app.login("user2", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let wrong = problem(app.login("user2", "wrong").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused, wrong);
    let enabled = patch(&app, &admin, &user2, json!({ "disabled": false })).await;
    assert_eq!(
        enabled.json::<Value>().await.unwrap()["disabled"],
        json!(false)
    );
    assert_eq!(
        app.login("user2", "password").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_updates_are_refused_and_administrators_cannot_lock_themselves_out() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let me = user_id(&app, "user1").await;
    let user2 = user_id(&app, "user2").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for (id, body, status) in [
        (
            unknown.as_str(),
            json!({ "disabled": true }),
            StatusCode::NOT_FOUND,
        ),
        (
            "not-a-uuid",
            json!({ "disabled": true }),
            StatusCode::NOT_FOUND,
        ),
        (user2.as_str(), json!({}), StatusCode::BAD_REQUEST),
        (
            user2.as_str(),
            json!({ "disable": true }),
            StatusCode::BAD_REQUEST,
        ),
        (
            user2.as_str(),
            json!({ "roles": ["bad role"] }),
            StatusCode::BAD_REQUEST,
        ),
        (
            user2.as_str(),
            json!({ "disabled": "yes" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            me.as_str(),
            json!({ "disabled": true }),
            StatusCode::CONFLICT,
        ),
        (
            me.as_str(),
            json!({ "roles": ["editor"] }),
            StatusCode::CONFLICT,
        ),
    ] {
        problem(patch(&app, &admin, id, body).await, status).await;
    }
    problem(
        app.delete(&format!("/api/admin/users/{me}"), &admin).await,
        StatusCode::CONFLICT,
    )
    .await;
    let (user1, _) = app
        .store
        .find_user_by_username("user1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user1.roles, ["admin"]);
    assert!(user1.disabled_at.is_none());
    let (user2, _) = app
        .store
        .find_user_by_username("user2")
        .await
        .unwrap()
        .unwrap();
    assert!(user2.roles.is_empty() && user2.disabled_at.is_none());
}

#[tokio::test]
async fn deleting_a_user_revokes_their_sessions_for_resource_servers_too() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user3 = user_id(&app, "user3").await;
    let signed_in = app.login_ok("user3").await;
    let deleted = app
        .delete(&format!("/api/admin/users/{user3}"), &admin)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    invalid_token(
        app.get("/api/job-list", &token(&signed_in, "accessToken"))
            .await,
    )
    .await;
    problem(
        app.refresh(&token(&signed_in, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.login("user3", "password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let feed: Value = app
        .client
        .get(app.url("/api/revocations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = crate::common::sid(&token(&signed_in, "refreshToken")).to_string();
    assert!(
        feed["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["sid"] == sid),
        "{feed}"
    );
    problem(
        app.delete(&format!("/api/admin/users/{user3}"), &admin)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn administrators_sign_a_user_out_everywhere() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let user2 = user_id(&app, "user2").await;
    let signed_in = app.login_ok("user2").await;
    let ended = app
        .delete(&format!("/api/admin/users/{user2}/sessions"), &admin)
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    invalid_token(
        app.get("/api/job-list", &token(&signed_in, "accessToken"))
            .await,
    )
    .await;
    problem(
        app.refresh(&token(&signed_in, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Not disabled: they may sign in again.
    assert_eq!(
        app.login("user2", "password").await.status(),
        StatusCode::OK
    );
    let unknown = uuid::Uuid::new_v4();
    problem(
        app.delete(&format!("/api/admin/users/{unknown}/sessions"), &admin)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_audit_log_records_security_events_without_secrets() {
    let app = spawn_app_with(&["--refresh-reuse-grace", "0s"]).await;
    let admin = admin_token(&app).await;
    let user2 = user_id(&app, "user2").await;
    problem(
        app.login("user2", "wrong-password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        app.login("nobody", "wrong-password").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // A name PostgreSQL cannot store must not stop the log.
    problem(
        app.login("nul\u{0}name", "x").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let session = app.login_ok("user2").await;
    let first = token(&session, "refreshToken");
    let rotated: Value = app.refresh(&first).await.json().await.unwrap();
    problem(app.refresh(&first).await, StatusCode::FORBIDDEN).await;
    let again = app.login_ok("user2").await;
    let logout = app
        .post_json(
            "/api/logout",
            &json!({ "refreshToken": token(&again, "refreshToken") }),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    patch(&app, &admin, &user2, json!({ "disabled": true })).await;

    let page = audit(&app, &admin, &format!("?user={user2}")).await;
    let seen = events(&page);
    let expected: Vec<(String, String)> = [
        ("admin_disable_user", "ok"),
        ("logout", "ok"),
        ("login", "ok"),
        ("refresh_reuse", "refused"),
        ("login", "ok"),
        ("login", "failed"),
    ]
    .iter()
    .map(|(e, o)| (e.to_string(), o.to_string()))
    .collect();
    assert_eq!(seen, expected, "{page}");
    let newest = &page["events"][0];
    assert_eq!(newest["actorId"], user_id(&app, "user1").await);
    assert_eq!(newest["userId"], user2);
    assert_eq!(newest["username"], "user2");
    assert_eq!(newest["ip"], "127.0.0.1");
    let reuse = &page["events"][3];
    assert_eq!(reuse["sessionId"], crate::common::sid(&first).to_string());
    assert!(page["events"][5]["at"].as_str().unwrap().ends_with('Z'));

    // The failed sign-in of an unknown name is kept without the name.
    let all = audit(&app, &admin, "").await;
    let unknown: Vec<&Value> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failed" && e["userId"].is_null())
        .collect();
    assert_eq!(unknown.len(), 2, "{all}");
    // Not the names as typed: they may be passwords typed in the wrong field.
    assert!(unknown
        .iter()
        .all(|e| e["username"].is_null() && e["detail"] == "unknown user"));
    // Pages are clamped, not refused.
    assert_eq!(events(&audit(&app, &admin, "?limit=0").await).len(), 1);
    assert_eq!(events(&audit(&app, &admin, "?limit=-5").await).len(), 1);
    assert!(events(&audit(&app, &admin, "?limit=99999").await).len() > 8);
    let text = all.to_string();
    for secret in [
        "wrong-password".to_owned(),
        "nobody".to_owned(),
        first.clone(),
        token(&rotated, "accessToken"),
        token(&session, "accessToken"),
    ] {
        assert!(
            !text.contains(&secret),
            "the audit log holds a secret: {secret}"
        );
    }

    // Paged, newest first.
    let first_page = audit(&app, &admin, &format!("?user={user2}&limit=2")).await;
    assert_eq!(events(&first_page), expected[..2]);
    let next = first_page["next"].as_i64().unwrap();
    let second_page = audit(
        &app,
        &admin,
        &format!("?user={user2}&limit=2&before={next}"),
    )
    .await;
    assert_eq!(events(&second_page), expected[2..4]);
    problem(
        app.get("/api/admin/audit?user=user2", &admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        app.get("/api/admin/audit?before=x", &admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn account_changes_and_admin_actions_are_audited() {
    let app = spawn_app_with(&["--signup", "open"]).await;
    let admin = admin_token(&app).await;
    let registered: Value = app
        .post_json(
            "/api/register",
            &json!({ "username": "newbie", "password": STRONG, "email": "n@example.org" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let newbie = registered["user"]["id"].as_str().unwrap().to_owned();
    let access = token(&registered, "accessToken");
    app.send_json(
        Method::POST,
        "/api/password",
        &access,
        &json!({ "currentPassword": "wrong", "newPassword": STRONG }),
    )
    .await;
    app.send_json(
        Method::POST,
        "/api/password",
        &access,
        &json!({ "currentPassword": STRONG, "newPassword": "another fine passphrase" }),
    )
    .await;
    app.delete("/api/sessions", &access).await;
    patch(&app, &admin, &newbie, json!({ "roles": ["editor"] })).await;
    app.delete(&format!("/api/admin/users/{newbie}/sessions"), &admin)
        .await;
    app.delete(&format!("/api/admin/users/{newbie}"), &admin)
        .await;
    // A deleted user's history stays, found by their id.
    let page = audit(&app, &admin, &format!("?user={newbie}")).await;
    let seen: Vec<String> = events(&page)
        .into_iter()
        .map(|(e, o)| format!("{e}:{o}"))
        .collect();
    assert_eq!(
        seen,
        [
            "admin_delete_user:ok",
            "admin_end_sessions:ok",
            "admin_set_roles:ok",
            "signed_out_everywhere:ok",
            "password_change:ok",
            "password_change:failed",
            "register:ok",
        ],
        "{page}"
    );
}

#[tokio::test]
async fn audit_events_are_kept_for_the_retention_only() {
    let app = spawn_app_with(&["--audit-retention", "1s", "--sweep-interval", "1s"]).await;
    let admin = admin_token(&app).await;
    assert!(!events(&audit(&app, &admin, "").await).is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Reading the log is no event; the admin's sign-in ages out like the rest.
        if events(&audit(&app, &admin, "").await).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit events outlived their retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let off = spawn_app_with(&["--audit-retention", "off"]).await;
    let admin = admin_token(&off).await;
    assert!(events(&audit(&off, &admin, "").await).is_empty());
}
