//! Micro-benchmarks: signing and verifying an access token per algorithm (through
//! `tollgate-verify`, as Tollgate and resource servers do, beside `jsonwebtoken` used
//! directly), the revocation check every authenticated request makes, and one Argon2id hash.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::Algorithm;
use time::OffsetDateTime;
use tollgate::config::{Secret, SigningConfig};
use tollgate::store::{StoreOptions, User};
use tollgate::tokens::{Lifetimes, Tokens};
use tollgate::users::Passwords;
use tollgate_verify::dpop::{check_proof, Dpop, DpopPolicy, ProofTarget};
use tollgate_verify::RevokedSessions;

fn user() -> User {
    User {
        id: uuid::Uuid::new_v4(),
        username: "user1".into(),
        email: "user1@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        gender: "female".into(),
        phone: "+44 20 7946 0101".into(),
        city: "London".into(),
        roles: Vec::new(),
        disabled_at: None,
    }
}

const HMAC_SECRET: &str = "a benchmark secret of 32 bytes!!";

fn tokens(runtime: &tokio::runtime::Runtime, algorithm: Algorithm) -> Tokens {
    runtime.block_on(async {
        let file = std::env::temp_dir().join(format!("tollgate-bench-{}.db", uuid::Uuid::new_v4()));
        let store = tollgate::store::connect(
            &format!("sqlite://{}", file.display()),
            &StoreOptions::default(),
        )
        .await
        .expect("store");
        let secret = (algorithm == Algorithm::HS256).then(|| Secret::from(HMAC_SECRET.to_owned()));
        let signing = SigningConfig { algorithm, secret };
        let lifetimes = Lifetimes {
            access: Duration::from_secs(900),
            longest: Duration::from_secs(86_400),
        };
        Tokens::load(
            Arc::clone(&store),
            &signing,
            "tollgate",
            "tollgate-api",
            lifetimes,
            Dpop::new(DpopPolicy::default()),
        )
        .await
        .expect("keys")
    })
}

fn sign_and_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let user = user();
    for algorithm in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ] {
        let tokens = tokens(&runtime, algorithm);
        let sid = uuid::Uuid::new_v4();
        c.bench_function(&format!("sign {algorithm:?}"), |b| {
            b.iter(|| {
                tokens
                    .issue_access(
                        &user,
                        sid,
                        None,
                        OffsetDateTime::now_utc(),
                        OffsetDateTime::now_utc() + time::Duration::days(1),
                    )
                    .expect("signed")
            })
        });
        c.bench_function(&format!("verify {algorithm:?} (first sight)"), |b| {
            b.iter_batched(
                || {
                    tokens
                        .issue_access(
                            &user,
                            sid,
                            None,
                            OffsetDateTime::now_utc(),
                            OffsetDateTime::now_utc() + time::Duration::days(1),
                        )
                        .expect("signed")
                        .0
                },
                |token| tokens.verify_access_now(&token).expect("valid"),
                BatchSize::SmallInput,
            )
        });
        let (token, _) = tokens
            .issue_access(
                &user,
                sid,
                None,
                OffsetDateTime::now_utc(),
                OffsetDateTime::now_utc() + time::Duration::days(1),
            )
            .expect("signed");
        c.bench_function(&format!("verify {algorithm:?} (seen before)"), |b| {
            b.iter(|| tokens.verify_access_now(&token).expect("valid"))
        });
        c.bench_function(
            &format!("jsonwebtoken::decode {algorithm:?} (direct)"),
            |b| {
                let jwks: jsonwebtoken::jwk::JwkSet =
                    serde_json::from_value(tokens.jwks()).expect("jwks");
                let key = match jwks.keys.first() {
                    Some(jwk) => jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
                    None => {
                        jsonwebtoken::DecodingKey::from_secret(HMAC_SECRET.as_bytes()).expect("key")
                    }
                };
                let mut validation = jsonwebtoken::Validation::new(algorithm);
                validation.leeway = 0;
                validation.set_issuer(&["tollgate"]);
                validation.set_audience(&["tollgate-api"]);
                b.iter(|| {
                    jsonwebtoken::decode::<tollgate::tokens::AccessClaims>(
                        &token,
                        &key,
                        &validation,
                    )
                    .expect("valid")
                })
            },
        );
    }
}

/// The revocation check with 10,000 sessions revoked within the access lifetime: a token of
/// one of them, and of a live session (the usual case).
fn revocation_check(c: &mut Criterion) {
    let revocations = RevokedSessions::new();
    let now = OffsetDateTime::now_utc();
    let revoked: Vec<uuid::Uuid> = (0..10_000).map(|_| uuid::Uuid::new_v4()).collect();
    for &sid in &revoked {
        revocations.insert(sid, now);
    }
    let live = uuid::Uuid::new_v4();
    c.bench_function("revocation check (live session, 10k revoked)", |b| {
        b.iter(|| assert!(!revocations.contains(std::hint::black_box(live))))
    });
    c.bench_function("revocation check (revoked session, 10k revoked)", |b| {
        b.iter(|| assert!(revocations.contains(std::hint::black_box(revoked[4321]))))
    });
}

fn argon2id(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let passwords = runtime.block_on(Passwords::new()).expect("passwords");
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    group.bench_function("hash (19 MiB, 2 iterations)", |b| {
        b.iter(|| {
            runtime
                .block_on(passwords.hash("correct horse battery staple".into()))
                .expect("hashed")
        })
    });
    group.finish();
}

/// What a DPoP-bound request costs the server beyond a bearer one: the proof's checks (header,
/// signature, claims, thumbprint), then the same with its `jti` remembered.
fn dpop_proof(c: &mut Criterion) {
    let signer = tollgate_bench::DpopSigner::new().expect("key");
    let htu = "http://bench/api/job-list";
    let target = ProofTarget {
        method: "GET",
        uri: htu,
        access_token: Some("an access token"),
    };
    let policy = DpopPolicy::default();
    let proof = signer.proof("GET", htu, Some("an access token"));
    c.bench_function("DPoP proof check (ES256)", |b| {
        b.iter(|| {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            check_proof(&proof, &target, &policy, now).expect("a valid proof")
        })
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dpop = Dpop::new(DpopPolicy::default());
    c.bench_function("DPoP proof check and replay cache (ES256)", |b| {
        b.iter_batched(
            || signer.proof("GET", htu, Some("an access token")),
            |proof| {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                runtime
                    .block_on(dpop.check(&proof, &target, now))
                    .expect("a fresh proof")
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    sign_and_verify,
    revocation_check,
    argon2id,
    dpop_proof
);
criterion_main!(benches);
