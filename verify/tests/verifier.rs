//! Every check of `tollgate_verify`, each shown to refuse what it guards against, and the
//! verifier's cache, revocations and key fetching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tollgate_verify::jwk::JwkSet;
use tollgate_verify::{
    Algorithm, BoxFuture, Cause, KeySource, Keys, Policy, Rejection, Verifier, VerifyError,
    ACCESS_TYP,
};
use uuid::Uuid;

const ISSUER: &str = "tollgate";
const AUDIENCE: &str = "tollgate-api";

/// An Ed25519 key pair made for the test, with its JWK Set.
struct TestKey {
    kid: String,
    encoding: EncodingKey,
    jwks: JwkSet,
}

fn test_key(kid: &str) -> TestKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwks = serde_json::from_value(json!({ "keys": [
        { "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" }
    ]}))
    .expect("jwks");
    TestKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwks,
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(sid: Uuid) -> Value {
    let user = Uuid::new_v4();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user, "sid": sid,
        "iat": now(), "exp": now() + 900, "jti": Uuid::new_v4(),
        "user": { "id": user, "email": "ada@example.com", "username": "ada" },
    })
}

fn header(key: &TestKey) -> Header {
    let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some(ACCESS_TYP.into());
    header.kid = Some(key.kid.clone());
    header
}

fn sign(key: &TestKey, header: &Header, claims: &Value) -> String {
    encode(header, claims, &key.encoding).expect("signed")
}

fn verifier(key: &TestKey) -> Verifier {
    let keys = Keys::from_jwks(&key.jwks, Algorithm::EdDSA).expect("keys");
    Verifier::new(Policy::new(Algorithm::EdDSA, ISSUER, AUDIENCE), keys)
}

fn rejection(verifier: &Verifier, token: &str) -> Rejection {
    match verifier.verify_access_now(token) {
        Err(VerifyError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// `header.payload.signature` with the parts given, for tokens `jsonwebtoken` will not make.
fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn a_token_from_the_key_is_accepted_with_its_typed_claims() {
    let key = test_key("k1");
    let mut body = claims(Uuid::new_v4());
    body["roles"] = json!(["admin"]);
    let verified = verifier(&key)
        .verify_access_now(&sign(&key, &header(&key), &body))
        .expect("valid");
    assert_eq!(verified.user.username, "ada");
    assert!(verified.has_role("admin"));
    assert!(!verified.has_role("auditor"));
    let without_roles = verifier(&key)
        .verify_access_now(&sign(&key, &header(&key), &claims(Uuid::new_v4())))
        .expect("valid");
    assert!(without_roles.roles.is_empty());
}

#[test]
fn each_check_refuses_what_it_guards_against() {
    let key = test_key("k1");
    let verifier = verifier(&key);
    let good = claims(Uuid::new_v4());

    let other_key = test_key("k1");
    assert_eq!(
        rejection(&verifier, &sign(&other_key, &header(&key), &good)),
        Rejection::BadSignature
    );
    let mut refresh = header(&key);
    refresh.typ = Some("rt+jwt".into());
    assert_eq!(
        rejection(&verifier, &sign(&key, &refresh, &good)),
        Rejection::WrongType
    );
    let mut untyped = header(&key);
    untyped.typ = None;
    assert_eq!(
        rejection(&verifier, &sign(&key, &untyped, &good)),
        Rejection::WrongType
    );
    let mut hs256 = Header::new(jsonwebtoken::Algorithm::HS256);
    hs256.typ = Some(ACCESS_TYP.into());
    hs256.kid = Some("k1".into());
    let hmac = encode(
        &hs256,
        &good,
        &EncodingKey::from_secret(b"guessable").expect("key"),
    )
    .expect("signed");
    assert_eq!(rejection(&verifier, &hmac), Rejection::WrongAlgorithm);
    let none = raw(
        &json!({ "alg": "none", "typ": ACCESS_TYP, "kid": "k1" }),
        &good,
        b"",
    );
    assert_eq!(rejection(&verifier, &none), Rejection::BadHeader);
    let mut unknown = header(&key);
    unknown.kid = Some("k2".into());
    assert_eq!(
        rejection(&verifier, &sign(&key, &unknown, &good)),
        Rejection::UnknownKey
    );
    let mut no_kid = header(&key);
    no_kid.kid = None;
    assert_eq!(
        rejection(&verifier, &sign(&key, &no_kid, &good)),
        Rejection::NoKeyId
    );
    let mut with_key = header(&key);
    with_key.jku = Some("https://attacker.example/jwks.json".into());
    assert_eq!(
        rejection(&verifier, &sign(&key, &with_key, &good)),
        Rejection::HeaderKey
    );
    let mut with_jwk = header(&key);
    with_jwk.jwk = Some(key.jwks.keys[0].clone());
    assert_eq!(
        rejection(&verifier, &sign(&key, &with_jwk, &good)),
        Rejection::HeaderKey
    );

    let changed = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        sign(&key, &header(&key), &body)
    };
    assert_eq!(
        rejection(&verifier, &changed("iss", json!("someone-else"))),
        Rejection::WrongIssuer
    );
    assert_eq!(
        rejection(&verifier, &changed("aud", json!("another-api"))),
        Rejection::WrongAudience
    );
    assert_eq!(
        rejection(&verifier, &changed("exp", json!(now() - 1))),
        Rejection::Expired
    );
    assert_eq!(
        rejection(&verifier, &changed("nbf", json!(now() + 60))),
        Rejection::NotYetValid
    );
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    // Refused whether the spec check or the typed claims notice first.
    assert!(matches!(
        rejection(&verifier, &sign(&key, &header(&key), &no_exp)),
        Rejection::MissingClaim | Rejection::Malformed
    ));
    assert_eq!(
        rejection(&verifier, &changed("user", json!("not a user"))),
        Rejection::Malformed
    );
    let oversized = changed("pad", json!("x".repeat(9000)));
    assert_eq!(rejection(&verifier, &oversized), Rejection::Oversized);
    assert_eq!(rejection(&verifier, "not.a.token"), Rejection::BadHeader);
}

#[test]
fn leeway_is_at_most_five_seconds_and_applies_to_expiry() {
    let key = test_key("k1");
    let policy = Policy::new(Algorithm::EdDSA, ISSUER, AUDIENCE);
    assert!(policy.clone().with_leeway(Duration::from_secs(6)).is_err());
    let lenient = Verifier::new(
        policy.with_leeway(Duration::from_secs(5)).expect("leeway"),
        Keys::from_jwks(&key.jwks, Algorithm::EdDSA).expect("keys"),
    );
    let mut body = claims(Uuid::new_v4());
    body["exp"] = json!(now() - 2);
    let just_expired = sign(&key, &header(&key), &body);
    assert!(lenient.verify_access_now(&just_expired).is_ok());
    // And from the cache, too.
    assert!(lenient.verify_access_now(&just_expired).is_ok());
    assert_eq!(
        rejection(&verifier(&key), &just_expired),
        Rejection::Expired
    );
}

#[test]
fn a_revoked_session_is_refused_even_when_its_token_was_verified_before() {
    let key = test_key("k1");
    let verifier = verifier(&key);
    let sid = Uuid::new_v4();
    let token = sign(&key, &header(&key), &claims(sid));
    assert!(verifier.verify_access_now(&token).is_ok());
    verifier
        .revoked_sessions()
        .insert(sid, OffsetDateTime::now_utc());
    assert_eq!(rejection(&verifier, &token), Rejection::Revoked);
    // Pruned once its tokens are dead: then it is not refused for revocation any more.
    verifier
        .revoked_sessions()
        .prune(OffsetDateTime::now_utc() + Duration::from_secs(1));
    assert!(verifier.verify_access_now(&token).is_ok());
}

#[test]
fn a_verifier_requiring_revocations_refuses_until_they_were_read_and_while_stale() {
    let key = test_key("k1");
    let token = sign(&key, &header(&key), &claims(Uuid::new_v4()));
    let strict = verifier(&key).requiring_revocations(Some(Duration::from_millis(300)));
    assert!(matches!(
        strict.verify_access_now(&token),
        Err(VerifyError::RevocationsStale)
    ));
    strict.revoked_sessions().mark_caught_up();
    assert!(strict.verify_access_now(&token).is_ok());
    std::thread::sleep(Duration::from_millis(600));
    assert!(matches!(
        strict.verify_access_now(&token),
        Err(VerifyError::RevocationsStale)
    ));
    // Without a bound, once read is enough.
    let lenient = verifier(&key).requiring_revocations(None);
    lenient.revoked_sessions().mark_caught_up();
    std::thread::sleep(Duration::from_millis(60));
    assert!(lenient.verify_access_now(&token).is_ok());
}

/// Hands out `keys` (or fails when `None`), counting the fetches.
struct CountingSource {
    keys: Option<Keys>,
    fetches: Arc<AtomicUsize>,
}

impl KeySource for CountingSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Keys, Cause>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let keys = self.keys.clone();
        Box::pin(async move { keys.ok_or_else(|| Cause::from("unreachable")) })
    }
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_keys_at_most_once_a_second() {
    let old = test_key("old");
    let new = test_key("new");
    let fetches = Arc::new(AtomicUsize::new(0));
    let verifier = verifier(&old).with_key_source(CountingSource {
        keys: Some(Keys::from_jwks(&new.jwks, Algorithm::EdDSA).expect("keys")),
        fetches: fetches.clone(),
    });
    let token = sign(&new, &header(&new), &claims(Uuid::new_v4()));
    assert!(verifier.verify_access(&token).await.is_ok(), "fetched");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Made-up kids within the second cost no fetch.
    for kid in ["a", "b", "c"] {
        let mut made_up = header(&new);
        made_up.kid = Some(kid.into());
        let forged = sign(&new, &made_up, &claims(Uuid::new_v4()));
        assert!(matches!(
            verifier.verify_access(&forged).await,
            Err(VerifyError::Rejected(Rejection::UnknownKey))
        ));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_keys_are_not_now_rather_than_no() {
    let held = test_key("held");
    let unseen = test_key("unseen");
    let verifier = verifier(&held).with_key_source(CountingSource {
        keys: None,
        fetches: Arc::new(AtomicUsize::new(0)),
    });
    let token = sign(&unseen, &header(&unseen), &claims(Uuid::new_v4()));
    assert!(matches!(
        verifier.verify_access(&token).await,
        Err(VerifyError::KeysUnavailable)
    ));
    // The keys held keep verifying.
    let held_token = sign(&held, &header(&held), &claims(Uuid::new_v4()));
    assert!(verifier.verify_access(&held_token).await.is_ok());
}

#[test]
fn a_key_that_goes_away_stops_verifying_tokens_cached_under_it() {
    let key = test_key("k1");
    let verifier = verifier(&key);
    let token = sign(&key, &header(&key), &claims(Uuid::new_v4()));
    assert!(verifier.verify_access_now(&token).is_ok());
    let other = test_key("k2");
    verifier.set_keys(Keys::from_jwks(&other.jwks, Algorithm::EdDSA).expect("keys"));
    assert_eq!(rejection(&verifier, &token), Rejection::UnknownKey);
}

#[test]
fn a_jwks_yields_only_keys_of_the_configured_algorithm() {
    let key = test_key("k1");
    let mut set = key.jwks.clone();
    let mut foreign: Value = serde_json::to_value(&set.keys[0]).expect("jwk");
    foreign["kid"] = json!("k-es");
    foreign["alg"] = json!("ES256");
    set.keys.push(serde_json::from_value(foreign).expect("jwk"));
    let keys = Keys::from_jwks(&set, Algorithm::EdDSA).expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys.get("k-es").is_none());
    assert!(Keys::from_jwks(&set, Algorithm::RS256).is_err());
}
