use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::common::{b64, decode, problem, sid, spawn_app, spawn_app_with, token};

#[tokio::test]
async fn refresh_rotates_and_the_new_pair_works() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let response = app.refresh(&token(&login, "refreshToken")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pair: Value = response.json().await.unwrap();
    assert_eq!(pair["tokenType"], "Bearer");
    assert_eq!(pair["expiresIn"], 900);
    assert_eq!(decode(&token(&pair, "refreshToken")).1["gen"], 1);
    let me = app
        .get("/api/current-user", &token(&pair, "accessToken"))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let next = app.refresh(&token(&pair, "refreshToken")).await;
    assert_eq!(next.status(), StatusCode::OK);
    let session = app.session_of(&token(&pair, "refreshToken")).await;
    assert_eq!(session.generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_refreshes_with_one_token_rotate_exactly_once() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let refresh_token = token(&login, "refreshToken");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/api/refresh-token"),
            json!({ "refreshToken": refresh_token }),
        );
        tasks.spawn(async move { client.post(url).json(&body).send().await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK, "every racer gets a pair");
    }
    let session = app.session_of(&refresh_token).await;
    assert_eq!(session.generation, 1, "exactly one rotation");
    assert!(session.revoked_at.is_none(), "no revocation");
}

#[tokio::test]
async fn a_replay_within_the_grace_window_gets_the_current_generation_without_rotating() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let first = token(&login, "refreshToken");
    let rotated: Value = app.refresh(&first).await.json().await.unwrap();
    let replay = app.refresh(&first).await;
    assert_eq!(replay.status(), StatusCode::OK);
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(decode(&token(&replayed, "refreshToken")).1["gen"], 1);
    let session = app.session_of(&first).await;
    assert_eq!(session.generation, 1);
    // Both holders stay signed in.
    assert_eq!(
        app.refresh(&token(&rotated, "refreshToken")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_replay_after_the_grace_window_revokes_the_whole_session() {
    let app = spawn_app_with(&["--refresh-reuse-grace", "0s"]).await;
    let login = app.login_ok("user1").await;
    let stolen = token(&login, "refreshToken");
    let rotated: Value = app.refresh(&stolen).await.json().await.unwrap();
    problem(app.refresh(&stolen).await, StatusCode::FORBIDDEN).await;
    let session = app.session_of(&stolen).await;
    assert!(session.revoked_at.is_some());
    // The holder of the newest token is signed out too.
    problem(
        app.refresh(&token(&rotated, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_token_two_generations_old_is_reuse_even_within_the_grace_window() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let gen0 = token(&login, "refreshToken");
    let gen1: Value = app.refresh(&gen0).await.json().await.unwrap();
    assert_eq!(
        app.refresh(&token(&gen1, "refreshToken")).await.status(),
        StatusCode::OK
    );
    problem(app.refresh(&gen0).await, StatusCode::FORBIDDEN).await;
    let session = app.session_of(&gen0).await;
    assert!(session.revoked_at.is_some());
}

#[tokio::test]
async fn every_refresh_failure_is_403() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let good = token(&login, "refreshToken");
    let (header, claims) = decode(&good);
    let signature = good.rsplit('.').next().unwrap();
    let mut other_sub = claims.clone();
    other_sub["sub"] = json!(uuid::Uuid::new_v4());
    let mut tampered_gen = claims.clone();
    tampered_gen["gen"] = json!(5);
    let cases: Vec<(&str, Value)> = vec![
        ("missing", json!({})),
        ("null", json!({ "refreshToken": null })),
        ("not a jwt", json!({ "refreshToken": "abc" })),
        ("wrong type", json!({ "refreshToken": 42 })),
        (
            "access token",
            json!({ "refreshToken": token(&login, "accessToken") }),
        ),
        (
            "bad signature",
            json!({ "refreshToken": format!("{}.{}.{}", b64(&header), b64(&tampered_gen), signature) }),
        ),
        (
            "other subject",
            json!({ "refreshToken": format!("{}.{}.{}", b64(&header), b64(&other_sub), signature) }),
        ),
        (
            "no signature",
            json!({ "refreshToken": format!("{}.{}.", b64(&header), b64(&claims)) }),
        ),
    ];
    for (case, body) in cases {
        let response = app.post_json("/api/refresh-token", &body).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
    }
    let malformed = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::FORBIDDEN).await;
    // Nothing above disturbed the real session.
    assert_eq!(app.refresh(&good).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_session_cannot_refresh() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let response = app
        .post_json(
            "/api/logout",
            &json!({ "refreshToken": token(&login, "refreshToken") }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.refresh(&token(&login, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused_idle_expiry() {
    let app = spawn_app_with(&["--refresh-ttl", "1s"]).await;
    let login = app.login_ok("user1").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    problem(
        app.refresh(&token(&login, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn rotation_never_extends_a_session_past_its_absolute_expiry() {
    let app = spawn_app_with(&["--session-max-age", "3s", "--refresh-ttl", "1h"]).await;
    let login = app.login_ok("user1").await;
    let login_exp = decode(&token(&login, "refreshToken")).1["exp"]
        .as_i64()
        .unwrap();
    let limit = OffsetDateTime::now_utc().unix_timestamp() + 3;
    assert!(login_exp <= limit, "login token capped by max age");
    let pair: Value = app
        .refresh(&token(&login, "refreshToken"))
        .await
        .json()
        .await
        .unwrap();
    let rotated_exp = decode(&token(&pair, "refreshToken")).1["exp"]
        .as_i64()
        .unwrap();
    assert!(
        rotated_exp <= login_exp,
        "rotation keeps the absolute expiry"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    problem(
        app.refresh(&token(&pair, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_fingerprint_bound_session_needs_the_same_fingerprint_to_refresh() {
    let app = spawn_app().await;
    let login: Value = app
        .post_json(
            "/api/login",
            &json!({ "username": "user1", "password": "password", "fingerprint": "laptop" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = token(&login, "refreshToken");
    let session = app.session_of(&refresh_token).await;
    let stored = session.fingerprint_hash.unwrap();
    assert_ne!(stored, "laptop", "only a hash is stored");
    for fingerprint in [json!(null), json!("phone")] {
        let response = app
            .post_json(
                "/api/refresh-token",
                &json!({ "refreshToken": refresh_token, "fingerprint": fingerprint }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{fingerprint}");
    }
    let response = app
        .post_json(
            "/api/refresh-token",
            &json!({ "refreshToken": refresh_token, "fingerprint": "laptop" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A database restored from a backup holds older generations than the tokens out there: such
/// a token is refused, but it is no theft, so the session is not revoked.
#[tokio::test]
async fn a_token_newer_than_the_store_is_refused_without_revoking() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let rotated: Value = app
        .refresh(&token(&login, "refreshToken"))
        .await
        .json()
        .await
        .unwrap();
    let newer = token(&rotated, "refreshToken");
    let session = sid(&newer);
    app.execute_sql(&[&format!(
        "UPDATE sessions SET generation = 0 WHERE id = '{session}'"
    )])
    .await;
    problem(app.refresh(&newer).await, StatusCode::FORBIDDEN).await;
    let kept = app.session_of(&newer).await;
    assert!(kept.revoked_at.is_none(), "the session is kept");
    assert_eq!(kept.generation, 0);
}

/// The answer's data is loaded before the rotation commits: when it cannot be, the session
/// stays where it was, so the client's token is not left behind by a rotation it never saw.
#[tokio::test]
async fn a_refresh_that_cannot_load_its_user_does_not_rotate() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let refresh_token = token(&login, "refreshToken");
    let user_id = decode(&refresh_token).1["sub"].as_str().unwrap().to_owned();
    app.execute_sql(&[&format!("DELETE FROM users WHERE id = '{user_id}'")])
        .await;
    problem(app.refresh(&refresh_token).await, StatusCode::FORBIDDEN).await;
    let session = app.session_of(&refresh_token).await;
    assert_eq!(session.generation, 0, "not rotated");
}

/// A refresh that waited for the database stamps its rotation when it is written, so the
/// grace window for the previous token starts then, not when the request arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_at_is_the_time_of_the_write() {
    use sqlx::{Connection, Executor};
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let refresh_token = token(&login, "refreshToken");
    let session = sid(&refresh_token);
    let mut blocker = sqlx::AnyConnection::connect(app.database_url())
        .await
        .unwrap();
    match crate::common::backend() {
        crate::common::Backend::Sqlite => {
            blocker.execute("BEGIN IMMEDIATE").await.unwrap();
        }
        crate::common::Backend::Postgres => {
            blocker.execute("BEGIN").await.unwrap();
            blocker
                .execute(sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM sessions WHERE id = '{session}' FOR UPDATE"
                )))
                .await
                .unwrap();
        }
    }
    let started = OffsetDateTime::now_utc();
    let refresh = {
        let (client, url) = (app.client.clone(), app.url("/api/refresh-token"));
        let body = json!({ "refreshToken": refresh_token });
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    blocker.execute("COMMIT").await.unwrap();
    assert_eq!(refresh.await.unwrap(), StatusCode::OK);
    let rotated_at = app.session_of(&refresh_token).await.rotated_at.unwrap();
    assert!(
        rotated_at - started >= time::Duration::seconds(1),
        "rotated_at {rotated_at} is the request's start {started}, not the write"
    );
}

/// Only reachable with a validly signed token: one for user1's session that names user2.
#[tokio::test]
async fn a_signed_refresh_token_naming_another_subject_is_refused() {
    let f = super::hostile::Forge::new().await;
    let victim = f.app.login_ok("user1").await;
    let other = f.app.login_ok("user2").await;
    let refresh_token = token(&victim, "refreshToken");
    let (header, mut claims) = decode(&refresh_token);
    claims["sub"] = decode(&token(&other, "accessToken")).1["sub"].clone();
    claims["jti"] = json!(uuid::Uuid::new_v4());
    problem(
        f.app.refresh(&f.sign(&header, &claims)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(f.app.refresh(&refresh_token).await.status(), StatusCode::OK);
}
