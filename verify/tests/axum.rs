//! The extractor and the layer answer as Tollgate does: 401 with an RFC 6750 challenge, or
//! the handler's answer with the caller's claims.

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use time::OffsetDateTime;
use tollgate_verify::axum::{Authenticated, RequireAccessToken};
use tollgate_verify::dpop::{Dpop, DpopPolicy};
use tollgate_verify::{Algorithm, Keys, Policy, Verifier, ACCESS_TYP};
use tower::ServiceExt;
use uuid::Uuid;

/// A verifier and a token it accepts.
fn verifier_and_token(sid: Uuid) -> (Arc<Verifier>, String) {
    let (verifier, token) = verifier_and_bound_token(sid, None);
    (Arc::new(verifier), token)
}

/// A verifier and a token it accepts, bound to the DPoP key `jkt` if given.
fn verifier_and_bound_token(sid: Uuid, jkt: Option<&str>) -> (Verifier, String) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let jwks = serde_json::from_value(json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()), "kid": "k1" }]}))
    .expect("jwks");
    let verifier = Verifier::new(
        Policy::new(Algorithm::EdDSA, "tollgate", "tollgate-api"),
        Keys::from_jwks(&jwks, Algorithm::EdDSA).expect("keys"),
    );
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some(ACCESS_TYP.into());
    header.kid = Some("k1".into());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let user = Uuid::new_v4();
    let mut claims = json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": user, "sid": sid,
        "iat": now, "exp": now + 900, "jti": Uuid::new_v4(),
        "user": { "id": user, "email": "ada@example.com", "username": "ada" } });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let token = encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref())).expect("token");
    (verifier, token)
}

/// A client's DPoP key: its thumbprint, and proofs for `GET http://api.test/me`.
struct ClientKey {
    pkcs8: Vec<u8>,
    jwk: jsonwebtoken::jwk::Jwk,
}

impl ClientKey {
    fn new() -> ClientKey {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key")
            .as_ref()
            .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).expect("key");
        let point = pair.public_key().as_ref();
        let jwk = serde_json::from_value(json!({ "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]) }))
        .expect("jwk");
        ClientKey { pkcs8, jwk }
    }

    fn thumbprint(&self) -> String {
        self.jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .expect("thumbprint")
    }

    fn proof(&self, access_token: &str) -> String {
        self.proof_at(access_token, "http://api.test/me")
    }

    fn proof_at(&self, access_token: &str, htu: &str) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = json!({ "jti": Uuid::new_v4(), "htm": "GET", "htu": htu,
            "iat": OffsetDateTime::now_utc().unix_timestamp(),
            "ath": tollgate_verify::dpop::token_hash(access_token) });
        encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8)).expect("proof")
    }
}

async fn whoami(Authenticated(claims): Authenticated) -> String {
    claims.user.username.clone()
}

async fn send(app: Router, authorization: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::get("/me");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_extractor_admits_a_valid_token_and_answers_401_otherwise() {
    let sid = Uuid::new_v4();
    let (verifier, token) = verifier_and_token(sid);
    let app = Router::new()
        .route("/me", get(whoami))
        .with_state(verifier.clone());
    let bearer = format!("Bearer {token}");
    assert_eq!(
        send(app.clone(), Some(&bearer)).await,
        (StatusCode::OK, String::new(), "ada".into())
    );
    let (status, challenge, body) = send(app.clone(), None).await;
    assert_eq!(
        (status, challenge.as_str()),
        (StatusCode::UNAUTHORIZED, "Bearer")
    );
    assert!(body.contains("\"status\":401"), "{body}");
    let (status, challenge, _) = send(app.clone(), Some("Bearer not-a-token")).await;
    assert_eq!(
        (status, challenge.as_str()),
        (StatusCode::UNAUTHORIZED, r#"Bearer error="invalid_token""#)
    );
    let (status, _, _) = send(app.clone(), Some(&format!("Basic {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    verifier
        .revoked_sessions()
        .insert(sid, OffsetDateTime::now_utc());
    let (status, challenge, _) = send(app, Some(&bearer)).await;
    assert_eq!(
        (status, challenge.as_str()),
        (StatusCode::UNAUTHORIZED, r#"Bearer error="invalid_token""#)
    );
}

#[tokio::test]
async fn unread_revocations_answer_503_with_retry_after_never_401() {
    let (verifier, token) = verifier_and_token(Uuid::new_v4());
    let verifier = Arc::into_inner(verifier)
        .expect("sole owner")
        .requiring_revocations(None);
    let app = Router::new()
        .route("/me", get(whoami))
        .with_state(Arc::new(verifier));
    let response = app
        .oneshot(
            Request::get("/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn the_layer_guards_every_route_under_it_and_hands_over_the_claims() {
    let (verifier, token) = verifier_and_token(Uuid::new_v4());
    let app = Router::new()
        .route(
            "/me",
            get(
                |Extension(Authenticated(claims)): Extension<Authenticated>| async move {
                    claims.user.email.clone()
                },
            ),
        )
        .route_layer(RequireAccessToken::new(verifier));
    assert_eq!(
        send(app.clone(), Some(&format!("Bearer {token}"))).await,
        (StatusCode::OK, String::new(), "ada@example.com".into())
    );
    let (status, challenge, _) = send(app, Some("Bearer x.y.z")).await;
    assert_eq!(
        (status, challenge.as_str()),
        (StatusCode::UNAUTHORIZED, r#"Bearer error="invalid_token""#)
    );
}

/// `GET http://api.test/me` with these headers: the status and the challenge.
async fn send_with(app: Router, headers: &[(&str, &str)]) -> (StatusCode, String) {
    send_to(app, "/me", headers).await
}

/// `GET http://api.test{path}` with these headers: the status and the challenge.
async fn send_to(app: Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = Request::get(path).header(header::HOST, "api.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|value| value.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

#[tokio::test]
async fn a_token_bound_to_a_key_is_accepted_only_with_a_proof_by_that_key() {
    let key = ClientKey::new();
    let (verifier, token) = verifier_and_bound_token(Uuid::new_v4(), Some(&key.thumbprint()));
    let verifier = Arc::new(verifier.with_dpop(Dpop::new(DpopPolicy::default())));
    let app = Router::new().route("/me", get(whoami)).with_state(verifier);
    let dpop = format!("DPoP {token}");
    let proof = key.proof(&token);
    let ok = send_with(app.clone(), &[("authorization", &dpop), ("dpop", &proof)]).await;
    assert_eq!(ok, (StatusCode::OK, String::new()));
    let invalid_token = (
        StatusCode::UNAUTHORIZED,
        r#"DPoP error="invalid_token""#.to_owned(),
    );
    let invalid_proof = (
        StatusCode::UNAUTHORIZED,
        r#"DPoP error="invalid_dpop_proof""#.to_owned(),
    );
    // As a bearer token, even with the proof.
    let bearer = format!("Bearer {token}");
    let fresh = key.proof(&token);
    let stolen = send_with(app.clone(), &[("authorization", &bearer), ("dpop", &fresh)]).await;
    assert_eq!(stolen, invalid_token);
    // Without a proof, with a replayed one, with another key's.
    assert_eq!(
        send_with(app.clone(), &[("authorization", &dpop)]).await,
        invalid_proof
    );
    let replayed = send_with(app.clone(), &[("authorization", &dpop), ("dpop", &proof)]).await;
    assert_eq!(replayed, invalid_proof);
    let other = ClientKey::new().proof(&token);
    let forged = send_with(app, &[("authorization", &dpop), ("dpop", &other)]).await;
    assert_eq!(forged, invalid_proof);

    // A verifier without DPoP cannot check the proof, so it refuses the token.
    let (verifier, token) = verifier_and_bound_token(Uuid::new_v4(), Some(&key.thumbprint()));
    let app = Router::new()
        .route("/me", get(whoami))
        .with_state(Arc::new(verifier));
    let dpop = format!("DPoP {token}");
    let proof = key.proof(&token);
    let refused = send_with(app, &[("authorization", &dpop), ("dpop", &proof)]).await;
    assert_eq!(refused, invalid_token);
}

#[tokio::test]
async fn a_proof_names_the_whole_path_under_a_nested_router() {
    let key = ClientKey::new();
    let (verifier, token) = verifier_and_bound_token(Uuid::new_v4(), Some(&key.thumbprint()));
    let verifier = Arc::new(verifier.with_dpop(Dpop::new(DpopPolicy::default())));
    let by_extractor = Router::new()
        .nest("/v1", Router::new().route("/me", get(whoami)))
        .with_state(verifier.clone());
    let by_layer = Router::new().nest(
        "/v1",
        Router::new()
            .route("/me", get(|| async { "ok" }))
            .layer(RequireAccessToken::new(verifier)),
    );
    let dpop = format!("DPoP {token}");
    for app in [by_extractor, by_layer] {
        // The client called /v1/me, whatever the inner router sees.
        let whole = key.proof_at(&token, "http://api.test/v1/me");
        let ok = send_to(
            app.clone(),
            "/v1/me",
            &[("authorization", &dpop), ("dpop", &whole)],
        )
        .await;
        assert_eq!(ok, (StatusCode::OK, String::new()));
        let inner = key.proof_at(&token, "http://api.test/me");
        let refused = send_to(app, "/v1/me", &[("authorization", &dpop), ("dpop", &inner)]).await;
        let invalid_proof = r#"DPoP error="invalid_dpop_proof""#.to_owned();
        assert_eq!(refused, (StatusCode::UNAUTHORIZED, invalid_proof));
    }
}
