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
use tollgate_verify::{Algorithm, Keys, Policy, Verifier, ACCESS_TYP};
use tower::ServiceExt;
use uuid::Uuid;

/// A verifier and a token it accepts.
fn verifier_and_token(sid: Uuid) -> (Arc<Verifier>, String) {
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
    let claims = json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": user, "sid": sid,
        "iat": now, "exp": now + 900, "jti": Uuid::new_v4(),
        "user": { "id": user, "email": "ada@example.com", "username": "ada" } });
    let token = encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref())).expect("token");
    (Arc::new(verifier), token)
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
