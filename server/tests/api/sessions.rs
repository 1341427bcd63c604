use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::common::{decode, problem, sid, spawn_app, spawn_app_with, token};

async fn live_sessions(app: &crate::common::TestApp, access_token: &str) -> Vec<Value> {
    let response = app.get("/api/sessions", access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_sixth_login_revokes_all_earlier_sessions_by_default() {
    let app = spawn_app().await;
    let mut logins = Vec::new();
    for _ in 0..5 {
        logins.push(app.login_ok("user1").await);
    }
    assert_eq!(
        live_sessions(&app, &token(&logins[4], "accessToken"))
            .await
            .len(),
        5
    );
    let sixth = app.login_ok("user1").await;
    let sessions = live_sessions(&app, &token(&sixth, "accessToken")).await;
    assert_eq!(sessions.len(), 1, "only the new session is left");
    assert_eq!(sessions[0]["current"], true);
    for login in &logins {
        problem(
            app.refresh(&token(login, "refreshToken")).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
}

#[tokio::test]
async fn the_evict_oldest_policy_revokes_only_the_least_recently_used_session() {
    let app = spawn_app_with(&[
        "--session-limit-policy",
        "evict-oldest",
        "--max-sessions",
        "3",
    ])
    .await;
    let first = app.login_ok("user1").await;
    let second = app.login_ok("user1").await;
    let third = app.login_ok("user1").await;
    // Using the first makes the second the least recently used.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let first: Value = app
        .refresh(&token(&first, "refreshToken"))
        .await
        .json()
        .await
        .unwrap();
    let fourth = app.login_ok("user1").await;
    assert_eq!(
        live_sessions(&app, &token(&fourth, "accessToken"))
            .await
            .len(),
        3
    );
    problem(
        app.refresh(&token(&second, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    for kept in [&first, &third, &fourth] {
        assert_eq!(
            app.refresh(&token(kept, "refreshToken")).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_session_list_shows_the_callers_devices_newest_first() {
    let app = spawn_app().await;
    let older = app.login_ok("user1").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = app
        .client
        .post(app.url("/api/login"))
        .header("user-agent", "Firefox/140")
        .json(&json!({ "username": "user1", "password": "password" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    app.login_ok("user2").await;
    let sessions = live_sessions(&app, &token(&older, "accessToken")).await;
    assert_eq!(sessions.len(), 2, "only the caller's sessions");
    assert_eq!(
        sessions[0]["id"],
        sid(&token(&newer, "accessToken")).to_string()
    );
    assert_eq!(sessions[0]["userAgent"], "Firefox/140");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[1]["current"], true);
    for field in ["createdAt", "lastUsedAt", "expiresAt"] {
        let stamp = sessions[1][field].as_str().unwrap();
        OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).unwrap();
    }
}

#[tokio::test]
async fn a_caller_can_revoke_their_own_other_device_but_nobody_elses() {
    let app = spawn_app().await;
    let laptop = app.login_ok("user1").await;
    let phone = app.login_ok("user1").await;
    let stranger = app.login_ok("user2").await;
    let phone_session = sid(&token(&phone, "accessToken"));
    let path = format!("/api/sessions/{phone_session}");
    problem(
        app.delete(&path, &token(&stranger, "accessToken")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        app.refresh(&token(&phone, "refreshToken")).await.status(),
        StatusCode::OK
    );
    let revoked = app.delete(&path, &token(&laptop, "accessToken")).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    problem(
        app.refresh(&token(&phone, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.delete(&path, &token(&laptop, "accessToken")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let unknown = format!("/api/sessions/{}", uuid::Uuid::new_v4());
    problem(
        app.delete(&unknown, &token(&laptop, "accessToken")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.delete("/api/sessions/not-a-uuid", &token(&laptop, "accessToken"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let unauthenticated = app.client.delete(app.url(&path)).send().await.unwrap();
    problem(unauthenticated, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn sign_out_everywhere_revokes_every_session_of_the_caller_only() {
    let app = spawn_app().await;
    let one = app.login_ok("user1").await;
    let two = app.login_ok("user1").await;
    let other = app.login_ok("user2").await;
    let response = app
        .delete("/api/sessions", &token(&one, "accessToken"))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for login in [&one, &two] {
        problem(
            app.refresh(&token(login, "refreshToken")).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    assert_eq!(
        app.refresh(&token(&other, "refreshToken")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_revokes_its_session_and_is_idempotent() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let body = json!({ "refreshToken": token(&login, "refreshToken") });
    for _ in 0..2 {
        let response = app.post_json("/api/logout", &body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    problem(
        app.refresh(&token(&login, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let unknown = app
        .post_json("/api/logout", &json!({ "refreshToken": "not.a.token" }))
        .await;
    assert_eq!(unknown.status(), StatusCode::NO_CONTENT);
    let malformed = app
        .post_json("/api/logout", &json!({ "refreshToken": 7 }))
        .await;
    problem(malformed, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn the_sweep_deletes_expired_sessions_and_revoked_ones_once_their_tokens_are_dead() {
    let app = spawn_app().await;
    let live = app.login_ok("user1").await;
    let revoked = app.login_ok("user1").await;
    app.post_json(
        "/api/logout",
        &json!({ "refreshToken": token(&revoked, "refreshToken") }),
    )
    .await;
    let (_, claims) = decode(&token(&live, "refreshToken"));
    let now = OffsetDateTime::now_utc();
    let expired = tollgate::store::Session {
        id: uuid::Uuid::new_v4(),
        user_id: claims["sub"].as_str().unwrap().parse().unwrap(),
        generation: 0,
        rotated_at: None,
        created_at: now - time::Duration::days(2),
        last_used_at: now - time::Duration::days(2),
        expires_at: now - time::Duration::days(1),
        revoked_at: None,
        fingerprint_hash: None,
        user_agent: None,
        ip: None,
        dpop_jkt: None,
    };
    app.store
        .create_session(&expired, expired.created_at, &|_| Vec::new(), None)
        .await
        .unwrap();
    let later = now + time::Duration::seconds(1);
    // Revoked a moment ago: its access tokens may live on, so the feed still needs it.
    let an_access_lifetime_ago = now - time::Duration::minutes(16);
    let swept = app
        .store
        .delete_dead_sessions(later, an_access_lifetime_ago)
        .await
        .unwrap();
    assert_eq!(swept, 1, "the expired session");
    assert!(app.store.find_session(expired.id).await.unwrap().is_none());
    assert!(app
        .store
        .find_session(sid(&token(&revoked, "refreshToken")))
        .await
        .unwrap()
        .is_some());
    let swept = app.store.delete_dead_sessions(later, later).await.unwrap();
    assert_eq!(swept, 1, "the revoked session, once its tokens are dead");
    assert!(app
        .store
        .find_session(sid(&token(&revoked, "refreshToken")))
        .await
        .unwrap()
        .is_none());
    assert!(app
        .store
        .find_session(sid(&token(&live, "refreshToken")))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_and_refreshes_never_see_a_locked_database() {
    let app = spawn_app().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (client, base) = (app.client.clone(), app.address.clone());
        tasks.spawn(async move {
            let username = format!("user{}", n % 3 + 1);
            let login = client
                .post(format!("{base}/api/login"))
                .json(&json!({ "username": username, "password": "password" }))
                .send()
                .await
                .unwrap();
            assert_eq!(login.status(), StatusCode::OK);
            let mut pair: Value = login.json().await.unwrap();
            for _ in 0..5 {
                let response = client
                    .post(format!("{base}/api/refresh-token"))
                    .json(&json!({ "refreshToken": token(&pair, "refreshToken") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                pair = response.json().await.unwrap();
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}
