//! Shared pieces of the benchmark programs: a load generator, latency summaries, the machine.

pub mod load;

use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, Executor};

/// p50 and p99 of a set of samples.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

pub fn millis(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// What this machine is, for the results file.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .map(|line| line.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(
            || "unknown memory".into(),
            |kib| format!("{} GiB", kib / 1024 / 1024),
        );
    format!("{cpu}, {cores} cores, {memory}")
}

pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// A new, empty PostgreSQL database on the server `TOLLGATE_TEST_DATABASE_URL` names.
pub async fn fresh_postgres() -> anyhow::Result<String> {
    let admin_url = std::env::var("TOLLGATE_TEST_DATABASE_URL")
        .context("TOLLGATE_TEST_DATABASE_URL names the PostgreSQL server")?;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    let name = format!("tollgate_bench_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let (server, _) = admin_url.rsplit_once('/').context("URL with a database")?;
    Ok(format!("{server}/{name}"))
}

/// A Tollgate instance running in this process on `database` (rate limits off, room for many
/// sessions), with the demo users when `seed`; its address and store.
pub async fn start_instance(
    database: &str,
    seed: bool,
) -> anyhow::Result<(String, std::sync::Arc<dyn tollgate::store::Store>)> {
    use clap::Parser;
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        args: tollgate::config::ServerArgs,
    }
    let flags = Flags::try_parse_from([
        "tollgate",
        "--addr",
        "127.0.0.1:0",
        "--database-url",
        database,
        "--login-rate",
        "off",
        "--max-sessions",
        "10000",
    ])?;
    let config = tollgate::config::Config::from_args(&flags.args, database)?;
    let app = tollgate::app::Application::build(config).await?;
    if seed {
        let passwords = tollgate::users::Passwords::new().await?;
        tollgate::users::seed_demo(app.store().as_ref(), &passwords).await?;
    }
    let address = format!("http://{}", app.local_addr());
    let store = app.store();
    tokio::spawn(app.run_until(std::future::pending()));
    Ok((address, store))
}

/// A DPoP client key for the load generator and the micro-benchmarks: ES256, a proof per
/// request, as a browser with `withDpop()` signs them.
pub struct DpopSigner {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    header: String,
}

impl DpopSigner {
    pub fn new() -> anyhow::Result<DpopSigner> {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("key generation"))?;
        let point = pair.public_key().as_ref();
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": {
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]) } });
        Ok(DpopSigner {
            pair,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
        })
    }

    /// A fresh proof for `method` on `htu`, with the hash of `access_token` if given.
    pub fn proof(&self, method: &str, htu: &str, access_token: Option<&str>) -> String {
        use aws_lc_rs::digest::{digest, SHA256};
        use aws_lc_rs::rand::SystemRandom;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": htu,
            "iat": time::OffsetDateTime::now_utc().unix_timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(digest(&SHA256, token.as_bytes()))
                .into();
        }
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("signing never fails for a valid key");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}
