//! Property tests in the role of fuzzing: random and mutated tokens through the verifier,
//! random JSON bodies through the HTTP API. `PROPTEST_CASES` sets the number of cases (the
//! defaults below keep CI quick); seeds live in `corpus/`.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tollgate::config::SigningConfig;
use tollgate::tokens::{Lifetimes, Tokens};
use tollgate_verify::dpop::{Dpop, DpopPolicy};

use crate::common::{spawn_app, spawn_app_with, token, TestApp};

const SEEDS: &str = include_str!("corpus/tokens.txt");

fn runner(default_cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_cases);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A seed token with one edit: a replaced, deleted or doubled character, or a cut.
fn mutated(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "AZaz09-_.=+/ {}\"\\é\0".chars().collect();
    (
        proptest::sample::select(seeds),
        any::<prop::sample::Index>(),
        proptest::sample::select(alphabet),
        0..4u8,
    )
        .prop_map(|(seed, at, replacement, edit)| {
            let mut chars: Vec<char> = seed.chars().collect();
            if chars.is_empty() {
                return replacement.to_string();
            }
            let i = at.index(chars.len());
            match edit {
                0 => chars[i] = replacement,
                1 => {
                    chars.remove(i);
                }
                2 => chars.insert(i, chars[i]),
                _ => chars.truncate(i),
            }
            chars.into_iter().collect()
        })
}

#[test]
fn the_verifier_accepts_nothing_but_the_tokens_it_issued() {
    let runtime = runtime();
    let (app, tokens, valid) = runtime.block_on(async {
        let app = spawn_app().await;
        let login = app.login_ok("user1").await;
        let lifetimes = Lifetimes {
            access: Duration::from_secs(900),
            longest: Duration::from_secs(86_400),
        };
        let signing = SigningConfig {
            algorithm: jsonwebtoken::Algorithm::EdDSA,
            secret: None,
        };
        let tokens = Tokens::load(
            app.store.clone(),
            &signing,
            "tollgate",
            "tollgate-api",
            lifetimes,
            Dpop::new(DpopPolicy::default()),
        )
        .await
        .unwrap();
        (
            app,
            Arc::new(tokens),
            [token(&login, "accessToken"), token(&login, "refreshToken")],
        )
    });
    let mut seeds: Vec<String> = SEEDS.lines().map(str::to_owned).collect();
    seeds.extend(valid.iter().cloned());
    let strategy = prop_oneof![mutated(seeds), ".{0,200}", "[A-Za-z0-9_.-]{0,400}"];
    runner(2000)
        .run(&strategy, |candidate| {
            let access_ok = tokens.verify_access_now(&candidate).is_ok();
            let refresh_ok = tokens.verify_refresh_now(&candidate).is_ok();
            prop_assert_eq!(access_ok, candidate == valid[0], "access: {}", candidate);
            prop_assert_eq!(refresh_ok, candidate == valid[1], "refresh: {}", candidate);
            Ok(())
        })
        .unwrap();
    drop(app);
}

/// Any JSON, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("username".to_owned()),
                    Just("password".to_owned()),
                    Just("refreshToken".to_owned()),
                    Just("fingerprint".to_owned()),
                    Just("useCookie".to_owned()),
                    Just("email".to_owned()),
                    Just("token".to_owned()),
                    Just("newPassword".to_owned()),
                    ".{0,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[test]
fn no_request_body_gets_a_server_error() {
    let runtime = runtime();
    let app: TestApp = runtime.block_on(spawn_app_with(&["--signup", "open"]));
    let path = proptest::sample::select(vec![
        "/api/login",
        "/api/refresh-token",
        "/api/logout",
        "/api/register",
        "/api/password-reset",
        "/api/password-reset/confirm",
    ]);
    let body = prop_oneof![
        json_value().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        (".{0,30}", ".{0,30}").prop_map(|(username, password)| {
            json!({ "username": username, "password": password })
                .to_string()
                .into_bytes()
        }),
    ];
    runner(300)
        .run(&(path, body), |(path, body)| {
            let status = runtime.block_on(async {
                let response = app
                    .client
                    .post(app.url(path))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                response.status()
            });
            prop_assert!(
                status.is_success() || status.is_client_error(),
                "{} {} for {:?}",
                path,
                status,
                String::from_utf8_lossy(&body)
            );
            Ok(())
        })
        .unwrap();
}
