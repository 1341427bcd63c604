//! DPoP (RFC 9449): sessions bound to the key of the sign-in's proof, refreshes and API calls
//! that need a proof by that key, and every check a proof passes.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::common::dpop::{ath, now, DpopKey};
use crate::common::{decode, problem, spawn_app, spawn_app_with, token, TestApp};

const CREDENTIALS: &str = r#"{"username":"user1","password":"password"}"#;

async fn login(app: &TestApp, proof: Option<&str>) -> Response {
    login_with(app, proof, &[]).await
}

/// Signs in as user1 with `proof` and these extra headers.
async fn login_with(app: &TestApp, proof: Option<&str>, headers: &[(&str, &str)]) -> Response {
    let mut request = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body(CREDENTIALS);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

/// Signs in with a proof by `key`; panics unless the session is bound.
async fn bound_login(app: &TestApp, key: &DpopKey) -> Value {
    let response = login(app, Some(&key.proof("POST", &app.url("/api/login")))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP");
    body
}

async fn refresh(app: &TestApp, refresh_token: &str, proof: Option<&str>) -> Response {
    let mut request = app
        .client
        .post(app.url("/api/refresh-token"))
        .json(&json!({ "refreshToken": refresh_token }));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

/// `GET /api/job-list` with `Authorization: <scheme> <token>` and these `DPoP` headers.
async fn jobs(app: &TestApp, scheme: &str, access_token: &str, proofs: &[&str]) -> Response {
    let mut request = app
        .client
        .get(app.url("/api/job-list"))
        .header("authorization", format!("{scheme} {access_token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    request.send().await.unwrap()
}

async fn challenged(response: Response, error: &str) {
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(r#"DPoP error="{error}""#).as_str()
    );
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], error, "the body says it too");
}

#[tokio::test]
async fn a_sign_in_with_a_proof_binds_the_session_and_every_token_to_the_key() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let body = bound_login(&app, &key).await;
    let access = token(&body, "accessToken");
    let (_, claims) = decode(&access);
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(
        app.session_of(&token(&body, "refreshToken")).await.dpop_jkt,
        Some(key.thumbprint())
    );

    // With a proof by the key: the API answers.
    let jobs_url = app.url("/api/job-list");
    let proof = key.proof_for("GET", &jobs_url, &access);
    assert_eq!(
        jobs(&app, "DPoP", &access, &[&proof]).await.status(),
        StatusCode::OK
    );

    // The refresh needs a proof by the same key, and its tokens stay bound.
    let refresh_url = app.url("/api/refresh-token");
    let refreshed = refresh(
        &app,
        &token(&body, "refreshToken"),
        Some(&key.proof("POST", &refresh_url)),
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["tokenType"], "DPoP");
    let access = token(&refreshed, "accessToken");
    assert_eq!(decode(&access).1["cnf"]["jkt"], key.thumbprint().as_str());
    let proof = key.proof_for("GET", &jobs_url, &access);
    assert_eq!(
        jobs(&app, "DPoP", &access, &[&proof]).await.status(),
        StatusCode::OK
    );

    // EdDSA keys work the same.
    let ed = DpopKey::ed25519();
    let body = bound_login(&app, &ed).await;
    let access = token(&body, "accessToken");
    let proof = ed.proof_for("GET", &jobs_url, &access);
    assert_eq!(
        jobs(&app, "DPoP", &access, &[&proof]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn stolen_tokens_are_worthless_without_the_key() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let thief = DpopKey::es256();
    let body = bound_login(&app, &key).await;
    let (access, refresh_token) = (token(&body, "accessToken"), token(&body, "refreshToken"));
    let jobs_url = app.url("/api/job-list");
    let refresh_url = app.url("/api/refresh-token");

    // The access token: as a bearer token, with no proof, with the thief's proof.
    challenged(jobs(&app, "Bearer", &access, &[]).await, "invalid_token").await;
    challenged(jobs(&app, "DPoP", &access, &[]).await, "invalid_dpop_proof").await;
    let forged = thief.proof_for("GET", &jobs_url, &access);
    challenged(
        jobs(&app, "DPoP", &access, &[&forged]).await,
        "invalid_dpop_proof",
    )
    .await;

    // The refresh token: without a proof, with the thief's. Neither ends the session.
    problem(
        refresh(&app, &refresh_token, None).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let forged = thief.proof("POST", &refresh_url);
    problem(
        refresh(&app, &refresh_token, Some(&forged)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let proof = key.proof("POST", &refresh_url);
    assert_eq!(
        refresh(&app, &refresh_token, Some(&proof)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_proof_check_refuses_what_it_guards_against() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let body = bound_login(&app, &key).await;
    let access = token(&body, "accessToken");
    let url = app.url("/api/job-list");
    let claims = || {
        let mut claims = DpopKey::claims("GET", &url);
        claims["ath"] = ath(&access).into();
        claims
    };
    let with = |change: &dyn Fn(&mut Value, &mut Value)| {
        let (mut header, mut claims) = (key.header(), claims());
        change(&mut header, &mut claims);
        key.sign(&header, &claims)
    };
    let hs256 = {
        // A MAC anyone could compute: symmetric algorithms never sign proofs.
        let header = json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk() });
        let input = format!(
            "{}.{}",
            crate::common::b64(&header),
            crate::common::b64(&claims())
        );
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"public"),
            input.as_bytes(),
        );
        format!(
            "{input}.{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac)
        )
    };
    let unsigned = {
        let header = json!({ "typ": "dpop+jwt", "alg": "none", "jwk": key.jwk() });
        format!(
            "{}.{}.",
            crate::common::b64(&header),
            crate::common::b64(&claims())
        )
    };
    let refused: Vec<(&str, String)> = vec![
        ("not a JWT", "not.a.proof".into()),
        ("typ", with(&|header, _| header["typ"] = "JWT".into())),
        ("alg none", unsigned),
        ("HS256", hs256),
        (
            "private key",
            with(&|header, _| header["jwk"]["d"] = "c2VjcmV0".into()),
        ),
        (
            "no key",
            with(&|header, _| {
                header.as_object_mut().unwrap().remove("jwk");
            }),
        ),
        (
            "another key's jwk",
            with(&|header, _| header["jwk"] = DpopKey::es256().jwk()),
        ),
        ("htm", with(&|_, claims| claims["htm"] = "POST".into())),
        (
            "htu",
            with(&|_, claims| claims["htu"] = app.url("/api/current-user").into()),
        ),
        (
            "htu host",
            with(&|_, claims| claims["htu"] = "http://elsewhere.example/api/job-list".into()),
        ),
        (
            "ath",
            with(&|_, claims| claims["ath"] = ath("another token").into()),
        ),
        (
            "no ath",
            with(&|_, claims| {
                claims.as_object_mut().unwrap().remove("ath");
            }),
        ),
        (
            "stale iat",
            with(&|_, claims| claims["iat"] = (now() - 120).into()),
        ),
        (
            "future iat",
            with(&|_, claims| claims["iat"] = (now() + 120).into()),
        ),
        (
            "no jti",
            with(&|_, claims| {
                claims.as_object_mut().unwrap().remove("jti");
            }),
        ),
    ];
    for (name, proof) in &refused {
        let response = jobs(&app, "DPoP", &access, &[proof]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"DPoP error="invalid_dpop_proof""#,
            "{name}"
        );
    }

    // The same checks pass a good proof: the query and fragment are not part of `htu`, nor
    // are the case of the host or a default port.
    let good = with(&|_, claims| {
        claims["htu"] = format!("{}?page=2#top", url.replace("http://", "HTTP://")).into();
    });
    assert_eq!(
        jobs(&app, "DPoP", &access, &[&good]).await.status(),
        StatusCode::OK
    );
    // Used once: the same proof again is a replay.
    challenged(
        jobs(&app, "DPoP", &access, &[&good]).await,
        "invalid_dpop_proof",
    )
    .await;
    // Two proofs at once are refused, good as each may be.
    let (one, two) = (
        key.proof_for("GET", &url, &access),
        key.proof_for("GET", &url, &access),
    );
    challenged(
        jobs(&app, "DPoP", &access, &[&one, &two]).await,
        "invalid_dpop_proof",
    )
    .await;
}

#[tokio::test]
async fn a_sign_in_with_a_bad_proof_is_refused_and_binds_nothing() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let login_url = app.url("/api/login");
    let proof = key.proof("GET", &login_url);
    let refused = login(&app, Some(&proof)).await;
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"DPoP error="invalid_dpop_proof""#
    );
    problem(refused, StatusCode::BAD_REQUEST).await;
    let proof = key.proof("POST", &login_url);
    assert_eq!(login(&app, Some(&proof)).await.status(), StatusCode::OK);
    // Replayed: refused, even with the right password.
    problem(login(&app, Some(&proof)).await, StatusCode::BAD_REQUEST).await;
    // Without a proof the session is unbound, as before DPoP.
    let response = login(&app, None).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert!(decode(&token(&body, "accessToken")).1.get("cnf").is_none());
}

#[tokio::test]
async fn where_dpop_is_required_unbound_sign_ins_refreshes_and_tokens_are_refused() {
    let optional = spawn_app().await;
    let unbound: Value = login(&optional, None).await.json().await.unwrap();
    let required = optional.sibling(&["--dpop", "required"]).await;
    problem(login(&required, None).await, StatusCode::BAD_REQUEST).await;
    challenged(
        jobs(&required, "Bearer", &token(&unbound, "accessToken"), &[]).await,
        "invalid_token",
    )
    .await;
    let refresh_url = required.url("/api/refresh-token");
    let key = DpopKey::es256();
    problem(
        refresh(
            &required,
            &token(&unbound, "refreshToken"),
            Some(&key.proof("POST", &refresh_url)),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // With a proof, all is well.
    let body = bound_login(&required, &key).await;
    let access = token(&body, "accessToken");
    let proof = key.proof_for("GET", &required.url("/api/job-list"), &access);
    assert_eq!(
        jobs(&required, "DPoP", &access, &[&proof]).await.status(),
        StatusCode::OK
    );
    // A fingerprint is not needed where a key binds the session.
    let both = optional
        .sibling(&["--dpop", "required", "--require-fingerprint", "true"])
        .await;
    bound_login(&both, &key).await;
}

#[tokio::test]
async fn where_dpop_is_off_a_proof_binds_nothing() {
    let app = spawn_app_with(&["--dpop", "off"]).await;
    let key = DpopKey::es256();
    let response = login(&app, Some(&key.proof("POST", &app.url("/api/login")))).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert!(decode(&token(&body, "accessToken")).1.get("cnf").is_none());
}

#[tokio::test]
async fn server_nonces_are_asked_for_and_a_proof_with_one_is_accepted() {
    let app = spawn_app_with(&["--dpop-nonce", "true"]).await;
    let key = DpopKey::es256();
    let login_url = app.url("/api/login");
    let challenge = login(&app, Some(&key.proof("POST", &login_url))).await;
    assert_eq!(challenge.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        challenge.headers()["www-authenticate"],
        r#"DPoP error="use_dpop_nonce""#
    );
    let nonce = challenge.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let with_nonce = |method: &str, url: &str, access: Option<&str>, nonce: &str| {
        let mut claims = DpopKey::claims(method, url);
        claims["nonce"] = nonce.into();
        if let Some(access) = access {
            claims["ath"] = ath(access).into();
        }
        key.sign(&key.header(), &claims)
    };
    problem(
        login(&app, Some(&with_nonce("POST", &login_url, None, "made-up"))).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let response = login(&app, Some(&with_nonce("POST", &login_url, None, &nonce))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("dpop-nonce"));
    let body: Value = response.json().await.unwrap();
    let access = token(&body, "accessToken");

    // An API call without the nonce is challenged (401), with the nonce to use.
    let url = app.url("/api/job-list");
    let response = jobs(
        &app,
        "DPoP",
        &access,
        &[&key.proof_for("GET", &url, &access)],
    )
    .await;
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    challenged(response, "use_dpop_nonce").await;
    let proof = with_nonce("GET", &url, Some(&access), &nonce);
    assert_eq!(
        jobs(&app, "DPoP", &access, &[&proof]).await.status(),
        StatusCode::OK
    );

    // A refresh without the nonce is a challenge, not a refusal: the session lives on.
    let refresh_url = app.url("/api/refresh-token");
    let refresh_token = token(&body, "refreshToken");
    let response = refresh(&app, &refresh_token, Some(&key.proof("POST", &refresh_url))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let proof = with_nonce("POST", &refresh_url, None, &nonce);
    assert_eq!(
        refresh(&app, &refresh_token, Some(&proof)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_nonce_challenge_at_sign_in_spends_none_of_the_sign_in_budget() {
    let app = spawn_app_with(&[
        "--dpop-nonce",
        "true",
        "--login-rate",
        "2/1m",
        "--signup",
        "open",
    ])
    .await;
    let key = DpopKey::es256();
    let with_nonce = |url: &str, nonce: &str| {
        let mut claims = DpopKey::claims("POST", url);
        claims["nonce"] = nonce.into();
        key.sign(&key.header(), &claims)
    };
    let register = |proof: String| {
        app.client
            .post(app.url("/api/register"))
            .header("dpop", proof)
            .json(
                &json!({ "username": "newcomer", "password": "a long new passphrase",
                "email": "newcomer@example.com" }),
            )
            .send()
    };
    // More challenges than the budget holds, at login and at registration.
    let login_url = app.url("/api/login");
    let register_url = app.url("/api/register");
    let mut nonce = String::new();
    for _ in 0..3 {
        let response = login(&app, Some(&key.proof("POST", &login_url))).await;
        nonce = response.headers()["dpop-nonce"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "use_dpop_nonce");
        let response = register(key.proof("POST", &register_url)).await.unwrap();
        assert!(response.headers().contains_key("dpop-nonce"));
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "use_dpop_nonce");
    }
    let response = login(&app, Some(&with_nonce(&login_url, &nonce))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = register(with_nonce(&register_url, &nonce)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // The budget still counts real attempts.
    let response = login(&app, Some(&with_nonce(&login_url, &nonce))).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// What a proxy in front says the client called.
const FORWARDED: [(&str, &str); 2] = [
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "id.example.org"),
];

#[tokio::test]
async fn the_proof_names_the_dpop_origin_or_what_a_trusted_proxy_forwarded() {
    let key = DpopKey::es256();
    let public = spawn_app_with(&["--dpop-origin", "https://auth.example.com"]).await;
    let proof = key.proof("POST", &public.url("/api/login"));
    problem(login(&public, Some(&proof)).await, StatusCode::BAD_REQUEST).await;
    let proof = key.proof("POST", "https://auth.example.com/api/login");
    assert_eq!(login(&public, Some(&proof)).await.status(), StatusCode::OK);
    // With it, the Host header counts for nothing.
    let proof = key.proof("POST", "http://elsewhere.example/api/login");
    let response = login_with(&public, Some(&proof), &[("host", "elsewhere.example")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let proxied = spawn_app_with(&["--trusted-proxies", "127.0.0.1"]).await;
    let proof = key.proof("POST", "https://id.example.org/api/login");
    let response = login_with(&proxied, Some(&proof), &FORWARDED).await;
    assert_eq!(response.status(), StatusCode::OK);
    // From a peer that is not a trusted proxy, the same headers count for nothing.
    let direct = spawn_app().await;
    let proof = key.proof("POST", "https://id.example.org/api/login");
    let response = login_with(&direct, Some(&proof), &FORWARDED).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_the_configured_algorithms_may_sign_proofs() {
    let app = spawn_app_with(&["--dpop-algs", "EdDSA"]).await;
    let login_url = app.url("/api/login");
    let es256 = DpopKey::es256().proof("POST", &login_url);
    problem(login(&app, Some(&es256)).await, StatusCode::BAD_REQUEST).await;
    bound_login(&app, &DpopKey::ed25519()).await;
}

#[tokio::test]
async fn a_proof_is_checked_only_for_a_bound_session_and_a_bound_one_needs_it_even_with_dpop_off() {
    let app = spawn_app().await;
    let nonced = app.sibling(&["--dpop-nonce", "true"]).await;
    // An unbound session: whatever DPoP header comes with its refresh is not its business, not
    // even a proof without the nonce the server asks for.
    let unbound: Value = login(&nonced, None).await.json().await.unwrap();
    let refresh_url = nonced.url("/api/refresh-token");
    let without_nonce = DpopKey::es256().proof("POST", &refresh_url);
    let refreshed = refresh(
        &nonced,
        &token(&unbound, "refreshToken"),
        Some(&without_nonce),
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    let refreshed = refresh(
        &nonced,
        &token(&refreshed, "refreshToken"),
        Some("not a proof"),
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // A bound session keeps needing its key where DPoP was turned off since.
    let key = DpopKey::es256();
    let bound = bound_login(&app, &key).await;
    let off = app.sibling(&["--dpop", "off"]).await;
    let refresh_token = token(&bound, "refreshToken");
    problem(
        refresh(&off, &refresh_token, None).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let proof = key.proof("POST", &off.url("/api/refresh-token"));
    let refreshed = refresh(&off, &refresh_token, Some(&proof)).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

async fn introspect(app: &TestApp, secret: &str, token: String) -> Value {
    app.client
        .post(app.url("/api/introspect"))
        .bearer_auth(secret)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn introspection_says_which_key_a_token_is_bound_to() {
    let secret = "an introspection secret of at least 32 bytes";
    let app = spawn_app_with(&["--introspection-secrets", secret]).await;
    let key = DpopKey::es256();
    let body = bound_login(&app, &key).await;
    for name in ["accessToken", "refreshToken"] {
        let answer = introspect(&app, secret, token(&body, name)).await;
        assert_eq!(answer["active"], true, "{name}");
        assert_eq!(answer["cnf"]["jkt"], key.thumbprint().as_str(), "{name}");
    }
    let unbound: Value = login(&app, None).await.json().await.unwrap();
    let answer = introspect(&app, secret, token(&unbound, "accessToken")).await;
    assert_eq!(answer["active"], true);
    assert!(answer.get("cnf").is_none(), "{answer}");
}

#[tokio::test]
async fn a_browser_with_a_dpop_key_stays_a_known_device_for_the_sign_in_limit() {
    let app = spawn_app_with(&["--login-rate", "3/1m", "--trusted-proxies", "127.0.0.1"]).await;
    let key = DpopKey::es256();
    let login_url = app.url("/api/login");
    let sign_in = |from: &str, password: &str, fingerprint: &str, proof: Option<String>| {
        let mut request = app
            .client
            .post(&login_url)
            .header("x-forwarded-for", from)
            .json(
                &json!({ "username": "user1", "password": password, "fingerprint": fingerprint }),
            );
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let owner = sign_in(
        "203.0.113.7",
        "password",
        "owner-laptop",
        Some(key.proof("POST", &login_url)),
    );
    let owner: Value = owner.await.unwrap().json().await.unwrap();
    assert_eq!(owner["tokenType"], "DPoP");
    for n in 0..6 {
        sign_in(
            &format!("198.51.100.{n}"),
            &format!("guess{n}"),
            &format!("bot{n}"),
            None,
        )
        .await
        .unwrap();
    }
    let stranger = sign_in("192.0.2.1", "password", "unknown", None)
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::TOO_MANY_REQUESTS);
    let again = sign_in(
        "203.0.113.7",
        "password",
        "owner-laptop",
        Some(key.proof("POST", &login_url)),
    );
    assert_eq!(again.await.unwrap().status(), StatusCode::OK);
}
