//! How long after a revocation its access token is refused elsewhere: by another Tollgate
//! instance on the same PostgreSQL (LISTEN/NOTIFY) and by the example resource servers
//! (`examples/axum` with `tollgate-verify`, `examples/express` with the Node package, both
//! reading the revocation feed every second). p50 and p99 over many logouts.
//!
//! Needs `TOLLGATE_TEST_DATABASE_URL`, `target/release/tollgate-example-axum` and
//! `examples/express/node_modules` (the Makefile's `bench` prepares them).
//! `REVOCATIONS` sets how many (200).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate_bench::{
    fresh_postgres, machine_description, millis, percentiles, start_instance, today,
};

/// How long a refusal may take before the run fails.
const GIVE_UP: Duration = Duration::from_secs(10);

/// One place that answers `GET path` with a bearer token.
struct Target {
    name: &'static str,
    url: String,
    samples: Vec<Duration>,
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example resource server on a free port, following `tollgate`.
async fn example(mut command: Command, tollgate: &str) -> anyhow::Result<(Process, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = command
        .env("TOLLGATE_URL", tollgate)
        .env("ADDR", format!("127.0.0.1:{port}"))
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting an example")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("an example did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((Process(child), format!("http://127.0.0.1:{port}")))
}

async fn status(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<StatusCode> {
    Ok(client.get(url).bearer_auth(token).send().await?.status())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let revocations: usize = std::env::var("REVOCATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let database = fresh_postgres().await?;
    let (first, _) = start_instance(&database, true).await?;
    let (second, _) = start_instance(&database, false).await?;
    let (_axum, axum) = example(
        Command::new(root.join("target/release/tollgate-example-axum")),
        &first,
    )
    .await?;
    let mut node = Command::new("node");
    node.arg(root.join("examples/express/server.js"));
    let (_express, express) = example(node, &first).await?;
    let mut targets = [
        Target {
            name: "another Tollgate instance (PostgreSQL LISTEN/NOTIFY)",
            url: format!("{second}/api/current-user"),
            samples: Vec::new(),
        },
        Target {
            name: "Rust resource server (tollgate-verify, feed read every 1 s)",
            url: format!("{axum}/api/hello"),
            samples: Vec::new(),
        },
        Target {
            name: "Node.js resource server (Express + tollgate-verify, feed read every 1 s)",
            url: format!("{express}/api/hello"),
            samples: Vec::new(),
        },
    ];

    let client = reqwest::Client::new();
    for round in 0..revocations {
        let login: Value = client
            .post(format!("{first}/api/login"))
            .json(&json!({ "username": "user1", "password": "password" }))
            .send()
            .await?
            .json()
            .await?;
        let access = login["accessToken"].as_str().context("access token")?;
        let refresh = login["refreshToken"].as_str().context("refresh token")?;
        // Every target accepts the token before it is revoked (the examples may still be
        // fetching keys on the first round).
        for target in &targets {
            let deadline = Instant::now() + GIVE_UP;
            while status(&client, &target.url, access).await? != StatusCode::OK {
                if Instant::now() > deadline {
                    bail!("{} does not accept a fresh token", target.name);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Spread the revocations over the feed's poll cycle.
        tokio::time::sleep(Duration::from_millis(137 * (round as u64 % 8))).await;
        let revoked_at = Instant::now();
        let logout = client
            .post(format!("{first}/api/logout"))
            .json(&json!({ "refreshToken": refresh }))
            .send()
            .await?;
        anyhow::ensure!(logout.status() == StatusCode::NO_CONTENT, "logout failed");
        let mut pending: Vec<usize> = (0..targets.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for index in pending {
                let target = &mut targets[index];
                if status(&client, &target.url, access).await? == StatusCode::UNAUTHORIZED {
                    target.samples.push(revoked_at.elapsed());
                } else {
                    still.push(index);
                }
            }
            pending = still;
            if revoked_at.elapsed() > GIVE_UP {
                bail!("not refused within {GIVE_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let mut report = format!(
        "\n## Revocation to refusal, {}\n\nMachine: {}. Release builds. {revocations} logouts on one \
         instance; each target polled every 2 ms until it refused the session's access token.\n\n\
         | refused by | p50 ms | p99 ms | longest ms |\n| --- | ---: | ---: | ---: |\n",
        today(),
        machine_description()
    );
    for target in &mut targets {
        let longest = target.samples.iter().max().copied().unwrap_or_default();
        let (p50, p99) = percentiles(&mut target.samples);
        report.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            target.name,
            millis(p50),
            millis(p99),
            millis(longest)
        ));
    }
    println!("{report}");
    Ok(())
}
