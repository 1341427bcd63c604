//! Hostile input, one test per case: every forged, malformed or oversized token is a 401
//! (never a 5xx), and the `Authorization` header is read exactly as RFC 6750 says.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{b64, decode, invalid_token, problem, spawn_app, token, TestApp};

/// A signed-in app, its real signing key, and a valid access token to start forging from.
pub struct Forge {
    pub app: TestApp,
    pub header: Value,
    pub claims: Value,
    pub valid: String,
    key: Ed25519KeyPair,
}

impl Forge {
    pub async fn new() -> Forge {
        let app = spawn_app().await;
        let login = app.login_ok("user1").await;
        let valid = token(&login, "accessToken");
        let (header, claims) = decode(&valid);
        let keys = app.store.keys("EdDSA").await.unwrap();
        let current = keys.iter().find(|key| key.retired_at.is_none()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&current.private_der).unwrap();
        Forge {
            app,
            header,
            claims,
            valid,
            key,
        }
    }

    /// Signs any header and claims, well-formed or not, with our real key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// Our header with `patch` applied (a `null` removes the field), signed with our key.
    pub fn with_header(&self, patch: Value) -> String {
        self.sign(&patched(&self.header, patch), &self.claims)
    }

    /// Our claims with `patch` applied (a `null` removes the field), signed with our key.
    pub fn with_claims(&self, patch: Value) -> String {
        self.sign(&self.header, &patched(&self.claims, patch))
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    pub async fn assert_refused(&self, token: &str) {
        invalid_token(self.app.get("/api/current-user", token).await).await;
        // The real token still works: nothing above changed any state.
        assert_eq!(
            self.app
                .get("/api/current-user", &self.valid)
                .await
                .status(),
            StatusCode::OK
        );
    }
}

fn patched(base: &Value, patch: Value) -> Value {
    let mut value = base.clone();
    for (key, replacement) in patch.as_object().unwrap() {
        if replacement.is_null() {
            value.as_object_mut().unwrap().remove(key);
        } else {
            value[key] = replacement.clone();
        }
    }
    value
}

fn hmac(key: &[u8], input: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

macro_rules! refused {
    ($($name:ident => |$forge:ident| $token:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let $forge = Forge::new().await;
            let forged: String = $token;
            $forge.assert_refused(&forged).await;
        }
    )*};
}

refused! {
    alg_none => |f| format!("{}.{}.", b64(&patched(&f.header, json!({ "alg": "none" }))), b64(&f.claims));
    alg_none_capitalised => |f| format!("{}.{}.", b64(&patched(&f.header, json!({ "alg": "None" }))), b64(&f.claims));
    alg_none_upper_case => |f| format!("{}.{}.", b64(&patched(&f.header, json!({ "alg": "NONE" }))), b64(&f.claims));
    alg_none_mixed_case => |f| format!("{}.{}.", b64(&patched(&f.header, json!({ "alg": "nOnE" }))), b64(&f.claims));
    alg_none_with_our_signature => |f| {
        let signature = f.valid.rsplit('.').next().unwrap().to_owned();
        format!("{}.{}.{signature}", b64(&patched(&f.header, json!({ "alg": "none" }))), b64(&f.claims))
    };
    alg_hs256_keyed_with_our_public_key => |f| {
        let input = format!("{}.{}", b64(&patched(&f.header, json!({ "alg": "HS256" }))), b64(&f.claims));
        format!("{input}.{}", hmac(&f.public_key(), &input))
    };
    alg_hs256_keyed_with_our_public_jwk_text => |f| {
        let input = format!("{}.{}", b64(&patched(&f.header, json!({ "alg": "HS256" }))), b64(&f.claims));
        let x = URL_SAFE_NO_PAD.encode(f.public_key());
        format!("{input}.{}", hmac(x.as_bytes(), &input))
    };
    alg_es256 => |f| f.with_header(json!({ "alg": "ES256" }));
    alg_rs256 => |f| f.with_header(json!({ "alg": "RS256" }));
    alg_ps256 => |f| f.with_header(json!({ "alg": "PS256" }));
    alg_hs512 => |f| f.with_header(json!({ "alg": "HS512" }));
    alg_ed448 => |f| f.with_header(json!({ "alg": "Ed448" }));
    alg_missing => |f| f.with_header(json!({ "alg": null }));
    alg_as_number => |f| f.with_header(json!({ "alg": 7 }));
    empty_signature => |f| format!("{}.", f.valid.rsplit_once('.').unwrap().0);
    broken_signature => |f| {
        let (input, signature) = f.valid.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        format!("{input}.{flipped}{}", &signature[1..])
    };
    truncated_signature => |f| f.valid[..f.valid.len() - 4].to_owned();
    signature_of_another_token => |f| {
        let other = f.with_claims(json!({ "sub": uuid::Uuid::new_v4() }));
        format!("{}.{}", f.valid.rsplit_once('.').unwrap().0, other.rsplit('.').next().unwrap())
    };
    header_jwk_with_our_key => |f| f.with_header(json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(f.public_key()) } }));
    header_jku => |f| f.with_header(json!({ "jku": "http://127.0.0.1:9/jwks.json" }));
    header_x5u => |f| f.with_header(json!({ "x5u": "http://127.0.0.1:9/cert.pem" }));
    header_x5c => |f| f.with_header(json!({ "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"] }));
    kid_unknown => |f| f.with_header(json!({ "kid": "not-ours" }));
    kid_empty => |f| f.with_header(json!({ "kid": "" }));
    kid_path_traversal => |f| f.with_header(json!({ "kid": "../../../../etc/passwd" }));
    kid_sql_injection => |f| f.with_header(json!({ "kid": "' OR 1=1 --" }));
    kid_very_long => |f| f.with_header(json!({ "kid": "k".repeat(4000) }));
    kid_as_number => |f| f.with_header(json!({ "kid": 42 }));
    kid_as_object => |f| f.with_header(json!({ "kid": { "kid": "x" } }));
    kid_missing => |f| f.with_header(json!({ "kid": null }));
    typ_missing => |f| f.with_header(json!({ "typ": null }));
    typ_jwt => |f| f.with_header(json!({ "typ": "JWT" }));
    typ_refresh => |f| f.with_header(json!({ "typ": "rt+jwt" }));
    typ_upper_case => |f| f.with_header(json!({ "typ": "AT+JWT" }));
    exp_as_string => |f| f.with_claims(json!({ "exp": (now() + 600).to_string() }));
    exp_as_null => |f| { let mut claims = f.claims.clone(); claims["exp"] = Value::Null; f.sign(&f.header, &claims) };
    exp_as_array => |f| f.with_claims(json!({ "exp": [now() + 600] }));
    exp_as_object => |f| f.with_claims(json!({ "exp": { "value": now() + 600 } }));
    exp_as_boolean => |f| f.with_claims(json!({ "exp": true }));
    exp_negative => |f| f.with_claims(json!({ "exp": -1 }));
    exp_missing => |f| f.with_claims(json!({ "exp": null }));
    exp_in_the_past => |f| f.with_claims(json!({ "exp": now() - 1 }));
    nbf_in_the_future => |f| f.with_claims(json!({ "nbf": now() + 600 }));
    nbf_as_string => |f| f.with_claims(json!({ "nbf": "soon" }));
    iss_wrong => |f| f.with_claims(json!({ "iss": "someone-else" }));
    iss_missing => |f| f.with_claims(json!({ "iss": null }));
    aud_wrong => |f| f.with_claims(json!({ "aud": "another-api" }));
    aud_missing => |f| f.with_claims(json!({ "aud": null }));
    sub_missing => |f| f.with_claims(json!({ "sub": null }));
    sub_not_a_uuid => |f| f.with_claims(json!({ "sub": "admin" }));
    sid_missing => |f| f.with_claims(json!({ "sid": null }));
    user_missing => |f| f.with_claims(json!({ "user": null }));
    claims_not_an_object => |f| f.sign(&f.header, &json!(["exp", now() + 600]));
    header_not_an_object => |f| f.sign(&json!("EdDSA"), &f.claims);
    one_part => |_f| "eyJhbGciOiJFZERTQSJ9".to_owned();
    two_parts => |f| f.valid.rsplit_once('.').unwrap().0.to_owned();
    four_parts => |f| format!("{}.AAAA", f.valid);
    five_parts => |f| format!("{}.AAAA.BBBB", f.valid);
    empty_parts => |_f| "..".to_owned();
    padding_characters => |f| { let (input, signature) = f.valid.rsplit_once('.').unwrap(); format!("{input}.{signature}==") };
    standard_base64_characters => |f| f.valid.replacen(['-', '_', 'A'], "+", 1);
    non_ascii_characters => |f| format!("{}é", f.valid);
    header_not_base64 => |f| format!("!!!{}", f.valid);
    header_not_json => |f| format!("{}.{}", URL_SAFE_NO_PAD.encode("not json"), f.valid.split_once('.').unwrap().1);
    oversized_token => |f| f.with_claims(json!({ "padding": "x".repeat(9000) }));
}

/// A request with these `Authorization` header values (none, one or several).
async fn with_authorization(app: &TestApp, values: &[&str]) -> reqwest::Response {
    let mut request = app.client.get(app.url("/api/current-user"));
    for value in values {
        request = request.header("authorization", *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn authorization_without_a_space_after_bearer_is_refused() {
    let f = Forge::new().await;
    let response = with_authorization(&f.app, &[&format!("Bearer{}", f.valid)]).await;
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn authorization_with_a_lower_case_scheme_is_accepted_as_rfc_7235_says() {
    let f = Forge::new().await;
    let response = with_authorization(&f.app, &[&format!("bearer {}", f.valid)]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let f = Forge::new().await;
    let bearer = format!("Bearer {}", f.valid);
    let response = with_authorization(&f.app, &[&bearer, &bearer]).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn basic_authorization_gets_a_plain_bearer_challenge() {
    let f = Forge::new().await;
    let response = with_authorization(&f.app, &["Basic dXNlcjE6cGFzc3dvcmQ="]).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn an_empty_bearer_token_is_refused() {
    let f = Forge::new().await;
    for value in ["Bearer ", "Bearer", "Bearer  "] {
        let response = with_authorization(&f.app, &[value]).await;
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_bearer_token_after_two_spaces_is_refused() {
    let f = Forge::new().await;
    let response = with_authorization(&f.app, &[&format!("Bearer  {}", f.valid)]).await;
    problem(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_refresh_token_forged_with_hostile_claims_is_refused_with_403() {
    let f = Forge::new().await;
    let mut header = f.header.clone();
    header["typ"] = json!("rt+jwt");
    for claims in [
        json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": f.claims["sub"], "sid": f.claims["sid"], "gen": "0", "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4() }),
        json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": f.claims["sub"], "sid": "not-a-uuid", "gen": 0, "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4() }),
        json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": f.claims["sub"], "sid": f.claims["sid"], "gen": 0, "iat": now(), "exp": now() + 60, "nbf": now() + 600, "jti": uuid::Uuid::new_v4() }),
        json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": f.claims["sub"], "sid": uuid::Uuid::new_v4(), "gen": 0, "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4() }),
    ] {
        let response = f.app.refresh(&f.sign(&header, &claims)).await;
        problem(response, StatusCode::FORBIDDEN).await;
    }
    // The same claims with `nbf` gone and the real session: accepted, so each case above was
    // refused for its own flaw, not for a missing claim.
    let well_formed = json!({ "iss": "tollgate", "aud": "tollgate-api", "sub": f.claims["sub"], "sid": f.claims["sid"], "gen": 0, "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4() });
    let response = f.app.refresh(&f.sign(&header, &well_formed)).await;
    assert_eq!(response.status(), StatusCode::OK);
}
