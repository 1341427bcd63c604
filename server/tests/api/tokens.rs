use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::hostile::Forge;
use crate::common::{decode, invalid_token, problem, spawn_app, spawn_app_with, token};

#[tokio::test]
async fn the_access_token_carries_the_designed_header_and_claims() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let (header, claims) = decode(&token(&login, "accessToken"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    for claim in ["iss", "aud", "sub", "sid", "iat", "exp", "jti", "user"] {
        assert!(!claims[claim].is_null(), "{claim} in {claims}");
    }
    assert_eq!(claims["iss"], "tollgate");
    assert_eq!(claims["aud"], "tollgate-api");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["user"]["username"], "user1");
    assert_eq!(claims["user"]["email"], "user1@example.com");
    assert_eq!(claims["user"]["id"], claims["sub"]);
}

#[tokio::test]
async fn the_refresh_token_carries_nothing_personal() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let (header, claims) = decode(&token(&login, "refreshToken"));
    assert_eq!(header["typ"], "rt+jwt");
    for claim in ["iss", "aud", "sub", "sid", "gen", "iat", "exp"] {
        assert!(!claims[claim].is_null(), "{claim} in {claims}");
    }
    assert!(
        claims.get("user").is_none() && !claims.to_string().contains("user1"),
        "{claims}"
    );
}

#[tokio::test]
async fn protected_routes_take_the_identity_from_the_token_only() {
    let app = spawn_app().await;
    let login = app.login_ok("user2").await;
    let access = token(&login, "accessToken");
    let me: Value = app
        .get("/api/current-user?id=someone-else", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "user2");
    let jobs: Vec<Value> = app
        .get("/api/job-list", &access)
        .await
        .json()
        .await
        .unwrap();
    assert!(!jobs.is_empty());
    for job in &jobs {
        assert_eq!(job["user_id"], me["id"]);
        for field in [
            "id",
            "company_name",
            "title",
            "first_date",
            "last_date",
            "skills",
            "department",
            "ein",
        ] {
            assert!(job[field].is_string(), "{field} in {job}");
        }
    }
}

#[tokio::test]
async fn no_token_gets_a_plain_bearer_challenge_and_a_bad_one_invalid_token() {
    let app = spawn_app().await;
    for path in ["/api/current-user", "/api/job-list", "/api/sessions"] {
        let none = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        problem(none, StatusCode::UNAUTHORIZED).await;
        let bad = app.get(path, "not-a-token").await;
        assert_eq!(
            bad.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        problem(bad, StatusCode::UNAUTHORIZED).await;
    }
}

/// A refresh token whose claims would also pass as an access token's: only `typ` tells them
/// apart, so this fails if the access check stops looking at it.
#[tokio::test]
async fn a_refresh_token_is_refused_as_an_access_token() {
    let f = Forge::new().await;
    let login = f.app.login_ok("user1").await;
    let (header, mut claims) = decode(&token(&login, "refreshToken"));
    assert_eq!(header["typ"], "rt+jwt");
    claims["user"] = f.claims["user"].clone();
    let both_shapes = f.sign(&header, &claims);
    invalid_token(f.app.get("/api/current-user", &both_shapes).await).await;
}

/// An access token whose claims would also pass as a refresh token's (a `gen`, a live
/// session): only `typ` tells them apart.
#[tokio::test]
async fn an_access_token_is_refused_as_a_refresh_token() {
    let f = Forge::new().await;
    let login = f.app.login_ok("user1").await;
    let (header, mut claims) = decode(&token(&login, "accessToken"));
    assert_eq!(header["typ"], "at+jwt");
    claims["gen"] = serde_json::json!(0);
    let both_shapes = f.sign(&header, &claims);
    problem(f.app.refresh(&both_shapes).await, StatusCode::FORBIDDEN).await;
    // The session is untouched: its real refresh token still rotates.
    assert_eq!(
        f.app.refresh(&token(&login, "refreshToken")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_access_token_gets_401() {
    let app = spawn_app_with(&["--access-ttl", "1s"]).await;
    let login = app.login_ok("user1").await;
    assert_eq!(login["expiresIn"], 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = app
        .get("/api/current-user", &token(&login, "accessToken"))
        .await;
    invalid_token(response).await;
}

#[tokio::test]
async fn tokens_for_another_issuer_or_audience_are_refused() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    // Same keys (same database), different issuer: the signature is good, the claims are not.
    for flags in [["--issuer", "someone-else"], ["--audience", "another-api"]] {
        let mut other = app.sibling(&flags).await;
        let foreign = other.login_ok("user1").await;
        let response = other
            .get("/api/current-user", &token(&login, "accessToken"))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{flags:?}");
        let response = app
            .get("/api/current-user", &token(&foreign, "accessToken"))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{flags:?}");
        other.shutdown().await;
    }
}

#[tokio::test]
async fn every_signing_algorithm_works_end_to_end() {
    for (alg, extra) in [
        ("ES256", vec![]),
        ("RS256", vec![]),
        (
            "HS256",
            vec!["--jwt-secret", "an HS256 secret of at least 32 bytes!"],
        ),
    ] {
        let mut flags = vec!["--jwt-alg", alg];
        flags.extend(extra);
        let mut app = spawn_app_with(&flags).await;
        let login = app.login_ok("user1").await;
        assert_eq!(decode(&token(&login, "accessToken")).0["alg"], alg);
        assert_eq!(
            app.get("/api/current-user", &token(&login, "accessToken"))
                .await
                .status(),
            StatusCode::OK,
            "{alg}"
        );
        assert_eq!(
            app.refresh(&token(&login, "refreshToken")).await.status(),
            StatusCode::OK,
            "{alg}"
        );
        let jwks: Value = app.jwks().await;
        let keys = jwks["keys"].as_array().unwrap();
        if alg == "HS256" {
            assert!(keys.is_empty(), "HS256 publishes no keys");
        } else {
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0]["alg"], alg);
            assert_eq!(
                keys[0]["kid"],
                decode(&token(&login, "accessToken")).0["kid"]
            );
            assert!(keys[0].get("d").is_none(), "no private part");
        }
        app.shutdown().await;
    }
}

#[tokio::test]
async fn the_jwks_verifies_access_tokens_offline() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).unwrap();
    let access = token(&login, "accessToken");
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["tollgate-api"]);
    validation.set_issuer(&["tollgate"]);
    let verified = jsonwebtoken::decode::<Value>(&access, &key, &validation).unwrap();
    assert_eq!(verified.claims["user"]["username"], "user1");
    // Verifiers may keep it a while (and fetch again on a key id they do not know).
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
}

#[tokio::test]
async fn a_restart_keeps_sessions_and_keys() {
    let app = spawn_app().await;
    let login = app.login_ok("user1").await;
    let jwks_before: Value = app.jwks().await;
    let app = app.restart().await;
    let jwks_after: Value = app.jwks().await;
    assert_eq!(jwks_before, jwks_after);
    assert_eq!(
        app.get("/api/current-user", &token(&login, "accessToken"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&token(&login, "refreshToken")).await.status(),
        StatusCode::OK
    );
}

/// A key taken out of the store (say, after a leak) stops verifying at the next reload, also
/// for tokens verified before and remembered in the cache.
#[tokio::test]
async fn a_removed_key_stops_verifying_even_cached_tokens() {
    let app = spawn_app_with(&["--sweep-interval", "1s"]).await;
    let login = app.login_ok("user1").await;
    let access = token(&login, "accessToken");
    assert_eq!(
        app.get("/api/current-user", &access).await.status(),
        StatusCode::OK,
        "verified once, now cached"
    );
    let old_kid = decode(&access).0["kid"].as_str().unwrap().to_owned();
    tollgate::tokens::rotate_key(
        app.store.as_ref(),
        jsonwebtoken::Algorithm::EdDSA,
        Duration::ZERO,
    )
    .await
    .unwrap();
    app.execute_sql(&[&format!("DELETE FROM signing_keys WHERE kid = '{old_kid}'")])
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.jwks().await.to_string().contains(&old_kid) {
        assert!(std::time::Instant::now() < deadline, "keys not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    invalid_token(app.get("/api/current-user", &access).await).await;
    let fresh = app.login_ok("user1").await;
    assert_eq!(
        app.get("/api/current-user", &token(&fresh, "accessToken"))
            .await
            .status(),
        StatusCode::OK
    );
}
