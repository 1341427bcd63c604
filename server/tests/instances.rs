//! Several `tollgate serve` processes sharing one PostgreSQL (docs/api.md, "Several instances"). Needs
//! `TOLLGATE_TEST_DATABASE_URL`; without it these tests fail rather than skip.
#![allow(clippy::unwrap_used)]

pub mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate::store::{Store, StoreOptions};

use common::process::{run_ok, Server};
use common::proxy::Proxy;
use common::{
    decode, fresh_postgres_database, postgres_admin_url, problem, sid, spawn_app_on, token,
};

/// Three instances on a new database; the first seeds the demo users.
async fn three_instances(extra: &[&str]) -> (String, Vec<Server>) {
    let database = fresh_postgres_database().await;
    let first = Server::start_with(&database, "demo", extra);
    let rest = (0..2).map(|_| Server::start_with(&database, "serve", extra));
    (
        database.clone(),
        std::iter::once(first).chain(rest).collect(),
    )
}

async fn store(database: &str) -> std::sync::Arc<dyn Store> {
    tollgate::store::connect(database, &StoreOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn instances_starting_together_on_an_empty_database_agree_on_one_key_set() {
    let database = fresh_postgres_database().await;
    let mut servers: Vec<Server> = (0..3)
        .map(|_| Server::spawn(&database, "serve", &[]))
        .collect();
    servers.iter_mut().for_each(Server::wait_ready);
    let first = servers[0].jwks().await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 1, "{first}");
    for server in &servers[1..] {
        assert_eq!(server.jwks().await, first);
    }
}

#[tokio::test]
async fn a_token_rotated_on_b_and_replayed_on_c_revokes_the_session() {
    let (database, servers) = three_instances(&["--refresh-reuse-grace", "0s"]).await;
    let signed_in = servers[0].login_ok("user1").await;
    let old = token(&signed_in, "refreshToken");
    let rotated = servers[1].refresh(&old).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    problem(servers[2].refresh(&old).await, StatusCode::FORBIDDEN).await;
    let session = store(&database)
        .await
        .find_session(sid(&old))
        .await
        .unwrap()
        .unwrap();
    assert!(session.revoked_at.is_some());
    problem(
        servers[0].refresh(&token(&rotated, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn a_logout_on_b_is_refused_refresh_on_a() {
    let (_, servers) = three_instances(&[]).await;
    let signed_in = servers[0].login_ok("user1").await;
    let logout = servers[1]
        .client
        .post(format!("{}/api/logout", servers[1].address))
        .json(&json!({ "refreshToken": token(&signed_in, "refreshToken") }))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    problem(
        servers[0].refresh(&token(&signed_in, "refreshToken")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_refreshes_across_instances_rotate_exactly_once() {
    let (database, servers) = three_instances(&[]).await;
    let client = reqwest::Client::new();
    let signed_in = servers[0].login_ok("user1").await;
    let refresh_token = token(&signed_in, "refreshToken");
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (client, url) = (
            client.clone(),
            format!("{}/api/refresh-token", servers[n % 3].address),
        );
        let body = json!({ "refreshToken": refresh_token });
        racers.spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        });
    }
    let mut generations = Vec::new();
    while let Some(pair) = racers.join_next().await {
        generations.push(
            decode(&token(&pair.unwrap(), "refreshToken")).1["gen"]
                .as_i64()
                .unwrap(),
        );
    }
    assert!(
        generations.iter().all(|gen| *gen == 1),
        "one live generation: {generations:?}"
    );
    let session = store(&database)
        .await
        .find_session(sid(&refresh_token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.generation, 1);
    assert!(session.revoked_at.is_none());
}

async fn parallel_logins_leave(policy: &str) -> usize {
    let (database, servers) = three_instances(&["--session-limit-policy", policy]).await;
    let client = reqwest::Client::new();
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (client, url) = (
            client.clone(),
            format!("{}/api/login", servers[n % 3].address),
        );
        logins.spawn(async move {
            let body = json!({ "username": "user1", "password": "password" });
            client.post(url).json(&body).send().await.unwrap().status()
        });
    }
    while let Some(status) = logins.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let store = store(&database).await;
    let (user, _) = store.find_user_by_username("user1").await.unwrap().unwrap();
    store
        .live_sessions_of(user.id, time::OffsetDateTime::now_utc())
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_logins_across_instances_never_exceed_the_limit() {
    let live = parallel_logins_leave("revoke-all").await;
    assert!((1..=5).contains(&live), "revoke-all left {live}");
    assert_eq!(parallel_logins_leave("evict-oldest").await, 5);
}

#[tokio::test]
async fn keys_rotated_through_one_are_seen_by_all() {
    let (database, servers) = three_instances(&["--sweep-interval", "1s"]).await;
    let before = servers[0].login_ok("user1").await;
    run_ok(&["keys", "rotate", "--activate-after", "0s"], &database);
    let deadline = Instant::now() + Duration::from_secs(15);
    for server in &servers {
        while server.jwks().await["keys"].as_array().unwrap().len() != 2 {
            assert!(Instant::now() < deadline, "rotation not picked up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let old_kid = decode(&token(&before, "accessToken")).0["kid"].clone();
    for server in &servers {
        let after = server.login_ok("user1").await;
        assert_ne!(decode(&token(&after, "accessToken")).0["kid"], old_kid);
        let me = server
            .get("/api/current-user", &token(&before, "accessToken"))
            .await;
        assert_eq!(me.status(), StatusCode::OK, "old tokens still verify");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeping_on_every_instance_at_once_conflicts_with_nothing() {
    let (database, servers) = three_instances(&[
        "--sweep-interval",
        "1s",
        "--refresh-ttl",
        "1s",
        "--max-sessions",
        "100",
    ])
    .await;
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(4);
    let mut round = 0;
    while Instant::now() < until {
        let server = &servers[round % 3];
        let signed_in = server.login_ok("user1").await;
        if round % 2 == 0 {
            let url = format!("{}/api/logout", servers[(round + 1) % 3].address);
            let body = json!({ "refreshToken": token(&signed_in, "refreshToken") });
            assert_eq!(
                client.post(url).json(&body).send().await.unwrap().status(),
                StatusCode::NO_CONTENT
            );
        }
        round += 1;
    }
    // Every session is now dead (revoked, or past its 1 s refresh lifetime); give the sweeps a turn.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let store = store(&database).await;
    let (user, _) = store.find_user_by_username("user1").await.unwrap().unwrap();
    assert!(store
        .live_sessions_of(user.id, time::OffsetDateTime::now_utc())
        .await
        .unwrap()
        .is_empty());
    // Revoked sessions stay for the revocation feed until their access tokens are dead.
    let now = time::OffsetDateTime::now_utc();
    let tokens_dead = now - time::Duration::minutes(16);
    assert_eq!(
        store.delete_dead_sessions(now, tokens_dead).await.unwrap(),
        0,
        "already swept"
    );
    let logs: Vec<String> = servers.iter().map(Server::log_text).collect();
    assert!(
        logs.iter().any(|log| log.contains("dead sessions swept")),
        "{logs:?}"
    );
    for log in &logs {
        assert!(!log.contains("failed") && !log.contains("ERROR"), "{log}");
    }
}

/// `host:port` of the test PostgreSQL server.
fn postgres_address() -> String {
    let url = postgres_admin_url();
    let after_scheme = url.split_once("://").unwrap().1;
    let authority = after_scheme.split('/').next().unwrap();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

#[tokio::test]
async fn a_lost_database_gives_fast_503s_and_service_returns_without_a_restart() {
    let direct = fresh_postgres_database().await;
    let address = postgres_address();
    let target = tokio::net::lookup_host(&address)
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start(target).await;
    let via_proxy = direct.replacen(&address, &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(via_proxy, direct);
    let app = spawn_app_on(&via_proxy, &["--db-timeout", "2s"]).await;
    let signed_in = app.login_ok("user1").await;
    let access = token(&signed_in, "accessToken");
    let by_cookie = app
        .post_json(
            "/api/login",
            &json!({ "username": "user2", "password": "password", "useCookie": true }),
        )
        .await;
    let cookie = by_cookie.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let refresh_by_cookie = || {
        app.client
            .post(app.url("/api/refresh-token"))
            .header("cookie", &cookie)
            .json(&json!({}))
            .send()
    };

    proxy.cut().await;
    let started = Instant::now();
    problem(
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    problem(
        app.login("user1", "password").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    problem(
        app.get("/api/job-list", &access).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    // Never 403 here: a client would sign its user out over an outage.
    problem(
        app.refresh(&token(&signed_in, "refreshToken")).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    // The cookie survives the outage: only a refused refresh may end it.
    let outage = refresh_by_cookie().await.unwrap();
    assert!(outage.headers().get("set-cookie").is_none());
    problem(outage, StatusCode::SERVICE_UNAVAILABLE).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(20),
        "five calls bounded by the 2 s timeout took {waited:?}"
    );
    // Verifying an access token needs no database.
    let token_only = app.get("/api/current-user", "x").await;
    assert_eq!(token_only.status(), StatusCode::UNAUTHORIZED);

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.get("/api/job-list", &access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&token(&signed_in, "refreshToken"))
            .await
            .status(),
        StatusCode::OK
    );
    let recovered = refresh_by_cookie().await.unwrap();
    assert_eq!(
        recovered.status(),
        StatusCode::OK,
        "the same cookie refreshes"
    );
    assert!(
        recovered.headers().get("set-cookie").is_some(),
        "and rotates"
    );
    app.login_ok("user1").await;
}

/// The same race without password hashing in between, so transactions really overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_parallel_session_creations_from_three_pools_keep_the_limit_exact() {
    use tollgate::sessions::{SessionLimit, SessionLimitPolicy};
    use tollgate::store::Session;
    let database = fresh_postgres_database().await;
    let stores = [
        store(&database).await,
        store(&database).await,
        store(&database).await,
    ];
    let passwords = tollgate::users::Passwords::new().await.unwrap();
    tollgate::users::seed_demo(stores[0].as_ref(), &passwords)
        .await
        .unwrap();
    let (user, _) = stores[0]
        .find_user_by_username("user1")
        .await
        .unwrap()
        .unwrap();
    let limit = SessionLimit {
        max_sessions: 5,
        policy: SessionLimitPolicy::EvictOldest,
    };
    let mut creations = tokio::task::JoinSet::new();
    for n in 0..60 {
        let store = stores[n % 3].clone();
        let user_id = user.id;
        creations.spawn(async move {
            let now = time::OffsetDateTime::now_utc();
            let session = Session {
                id: uuid::Uuid::new_v4(),
                user_id,
                generation: 0,
                rotated_at: None,
                created_at: now,
                last_used_at: now,
                expires_at: now + time::Duration::hours(1),
                revoked_at: None,
                fingerprint_hash: None,
                user_agent: None,
                ip: None,
                dpop_jkt: None,
            };
            let evict = |live: &[Session]| limit.sessions_to_revoke(live);
            store
                .create_session(&session, now, &evict, None)
                .await
                .unwrap();
        });
    }
    while let Some(done) = creations.join_next().await {
        done.unwrap();
    }
    let live = stores[0]
        .live_sessions_of(user.id, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(live.len(), 5);
}

/// A rotation signs nobody out: the new key is verifiable everywhere before any instance
/// signs with it. Two instances reload their keys every second and so learn the new key while
/// it is only published; the third would not for 30 s, and learns it from the first token that
/// names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_signs_nobody_out_across_instances() {
    let database = fresh_postgres_database().await;
    let servers = [
        Server::start_with(&database, "demo", &["--sweep-interval", "1s"]),
        Server::start_with(&database, "serve", &["--sweep-interval", "1s"]),
        Server::start_with(&database, "serve", &[]),
    ];
    // Another user than the one signing in below: user1's many sign-ins revoke its older
    // sessions (the session limit), and with them their access tokens.
    let before = servers[0].login_ok("user2").await;
    run_ok(&["keys", "rotate", "--activate-after", "3s"], &database);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut kids =
        std::collections::HashSet::from([decode(&token(&before, "accessToken")).0["kid"].clone()]);
    let mut rounds_with_the_new_key = 0;
    while rounds_with_the_new_key < 3 {
        assert!(
            Instant::now() < deadline,
            "the new key never signed: {kids:?}"
        );
        for issuer in &servers {
            let mut pair = issuer.login_ok("user1").await;
            kids.insert(decode(&token(&pair, "accessToken")).0["kid"].clone());
            for verifier in &servers {
                let me = verifier
                    .get("/api/current-user", &token(&pair, "accessToken"))
                    .await;
                assert_eq!(me.status(), StatusCode::OK, "{}", verifier.address);
                let refreshed = verifier.refresh(&token(&pair, "refreshToken")).await;
                assert_eq!(refreshed.status(), StatusCode::OK, "{}", verifier.address);
                pair = refreshed.json().await.unwrap();
            }
        }
        if kids.len() > 1 {
            rounds_with_the_new_key += 1;
        }
    }
    // Tokens from before the rotation still verify everywhere.
    for server in &servers {
        let me = server
            .get("/api/current-user", &token(&before, "accessToken"))
            .await;
        assert_eq!(me.status(), StatusCode::OK, "{}", server.address);
    }
}

/// The sign-in budget is counted in the database: three instances allow what one does.
#[tokio::test]
async fn the_login_limit_is_one_budget_across_instances() {
    let (_, servers) = three_instances(&["--login-rate", "3/1m"]).await;
    for server in &servers {
        assert_eq!(
            server.login("user1", "wrong").await.status(),
            StatusCode::BAD_REQUEST
        );
    }
    for server in &servers {
        let limited = server.login("user1", "wrong").await;
        assert!(limited.headers().contains_key("retry-after"));
        problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    }
}

/// With polling an hour apart, only PostgreSQL's notices can carry a revocation to the other
/// instances in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_notices_reach_every_instance_within_two_seconds() {
    let (_, servers) = three_instances(&["--revocation-poll", "1h"]).await;
    let client = reqwest::Client::new();
    let mut delays = Vec::new();
    for round in 0..6 {
        let signed_in = servers[round % 3].login_ok("user1").await;
        let access = token(&signed_in, "accessToken");
        let body = json!({ "refreshToken": token(&signed_in, "refreshToken") });
        let logout = client
            .post(format!("{}/api/logout", servers[round % 3].address))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let started = Instant::now();
        for server in &servers {
            loop {
                let me = client
                    .get(format!("{}/api/current-user", server.address))
                    .bearer_auth(&access)
                    .send()
                    .await
                    .unwrap();
                if me.status() == StatusCode::UNAUTHORIZED {
                    break;
                }
                assert_eq!(me.status(), StatusCode::OK);
                // The contract's 2 s, and one more for a loaded test machine.
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "accepted {:?} after the revocation",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        delays.push(started.elapsed());
    }
    eprintln!("every instance refused within {delays:?}");
}

#[tokio::test]
async fn disabling_a_user_on_one_instance_ends_their_sessions_on_all() {
    let (_, servers) = three_instances(&[]).await;
    let admin = token(&servers[0].login_ok("user1").await, "accessToken");
    let on_b = servers[1].login_ok("user2").await;
    let on_c = servers[2].login_ok("user2").await;
    let access_b = token(&on_b, "accessToken");
    let access_c = token(&on_c, "accessToken");
    assert_eq!(
        servers[1].get("/api/job-list", &access_b).await.status(),
        StatusCode::OK
    );
    let user2 = decode(&access_b).1["sub"].as_str().unwrap().to_owned();
    let disabled = servers[0]
        .client
        .patch(format!("{}/api/admin/users/{user2}", servers[0].address))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let started = Instant::now();
    for (server, access) in [(&servers[1], &access_b), (&servers[2], &access_c)] {
        while server.get("/api/job-list", access).await.status() != StatusCode::UNAUTHORIZED {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "still accepted on {} after 2 s",
                server.address
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (server, session) in [(&servers[1], &on_b), (&servers[2], &on_c)] {
        problem(
            server.refresh(&token(session, "refreshToken")).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        problem(
            server.login("user2", "password").await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn a_dpop_proof_used_on_one_instance_is_a_replay_on_the_others() {
    // One origin, so that a proof names every instance alike.
    let (_, servers) = three_instances(&["--dpop-origin", "https://auth.example.com"]).await;
    let key = common::dpop::DpopKey::es256();
    let proof = key.proof("POST", "https://auth.example.com/api/login");
    let login = |server: &Server| {
        server
            .client
            .post(format!("{}/api/login", server.address))
            .header("dpop", proof.clone())
            .json(&json!({ "username": "user1", "password": "password" }))
            .send()
    };
    let first = login(&servers[0]).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP");
    for server in &servers[1..] {
        problem(login(server).await.unwrap(), StatusCode::BAD_REQUEST).await;
    }
}
