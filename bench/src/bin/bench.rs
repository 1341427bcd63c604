//! `make bench`: Tollgate against the limit of its stack (bare axum, from memory and reading
//! the same store without a token check or middleware) and against what users
//! would otherwise pick (Express + jsonwebtoken), measured side by side in one run.
//! Prints a Markdown report and writes it to `bench/results/<date>.md`.
//!
//! Needs `target/release/{tollgate,bare}` (the Makefile builds them) and Node.js with
//! `bench/express/node_modules`. `BENCH_SECONDS` sets the length of each measurement (5).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tollgate_bench::load::{run, Stats, Workload};
use tollgate_bench::{machine_description, millis, today};

struct Server {
    name: &'static str,
    child: Child,
    address: SocketAddr,
}

impl Server {
    async fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let port_text = port.to_string();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = Command::new(program)
            .args(args.iter().map(|arg| arg.replace("{port}", &port_text)))
            .envs(env.iter().copied())
            .env("PORT", &port_text)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if Instant::now() > deadline {
                bail!("{name} did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server {
            name,
            child,
            address,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// CPU time the server has used so far, user and system together.
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command name in parentheses: state is field 3, utime and stime 14 and 15.
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, fields)| {
                fields
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        // Linux reports in USER_HZ, 100 per second on every architecture it supports.
        Duration::from_millis(ticks * 10)
    }

    /// Resident memory now and at its peak, in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    scenario: String,
    server: &'static str,
    connections: usize,
    stats: Stats,
    /// Server CPU time per request.
    cpu_per_request: Duration,
    baseline: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("target/release");
    let scratch = std::env::temp_dir().join(format!("tollgate-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let common = [
        "demo",
        "--addr",
        "127.0.0.1:{port}",
        "--login-rate",
        "off",
        "--max-sessions",
        "10000",
        "--access-ttl",
        "1h",
    ];

    let database = |name: &str| format!("sqlite://{}", scratch.join(name).display());
    let eddsa_db = database("eddsa.db");
    let mut eddsa_args = common.to_vec();
    eddsa_args.extend(["--database-url", &eddsa_db]);
    let tollgate = Server::start(
        "Tollgate (EdDSA)",
        &release.join("tollgate"),
        &eddsa_args,
        &[],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = tollgate.memory();
    let hs_db = database("hs256.db");
    let mut hs_args = common.to_vec();
    hs_args.extend([
        "--database-url",
        &hs_db,
        "--jwt-alg",
        "HS256",
        "--jwt-secret",
        &secret,
    ]);
    let tollgate_hs =
        Server::start("Tollgate (HS256)", &release.join("tollgate"), &hs_args, &[]).await?;

    let client = reqwest::Client::new();
    let signed_in = login(&client, &tollgate).await?;
    let jobs = client
        .get(tollgate.url("/api/job-list"))
        .bearer_auth(token(&signed_in, "accessToken")?)
        .send()
        .await?
        .bytes()
        .await?;
    let jobs_file = scratch.join("jobs.json");
    let user_file = scratch.join("user.json");
    std::fs::write(&jobs_file, &jobs)?;
    std::fs::write(&user_file, signed_in["user"].to_string())?;
    let files = [
        ("JOBS_FILE", jobs_file.to_str().context("path")?),
        ("USER_FILE", user_file.to_str().context("path")?),
    ];
    let bare = Server::start("bare axum", &release.join("bare"), &[], &files).await?;
    let user_id = signed_in["user"]["id"].as_str().context("user id")?;
    let bare_reading = Server::start(
        "bare axum + the same store read",
        &release.join("bare"),
        &[],
        &[("JOBS_DATABASE_URL", &eddsa_db), ("JOBS_USER_ID", user_id)],
    )
    .await?;
    let express_script = root.join("bench/express/server.js");
    let mut express_env = files.to_vec();
    express_env.push(("JWT_SECRET", &secret));
    let express = Server::start(
        "Express + jsonwebtoken",
        Path::new("node"),
        &[express_script.to_str().context("path")?],
        &express_env,
    )
    .await?;

    let get = |path: &'static str, token: &str| Workload::Get {
        path,
        token: token.to_owned(),
    };
    let tollgate_token = token(&signed_in, "accessToken")?;
    let signer = std::sync::Arc::new(tollgate_bench::DpopSigner::new()?);
    let dpop_token = {
        let url = tollgate.url("/api/login");
        let response = client
            .post(&url)
            .header("dpop", signer.proof("POST", &url, None))
            .json(&json!({ "username": "user1", "password": "password" }))
            .send()
            .await?;
        let body: Value = response.json().await?;
        anyhow::ensure!(body["tokenType"] == "DPoP", "a DPoP sign-in: {body}");
        token(&body, "accessToken")?
    };
    let hs_token = token(&login(&client, &tollgate_hs).await?, "accessToken")?;
    let express_token = token(&login(&client, &express).await?, "accessToken")?;

    let mut rows = Vec::new();
    for connections in [1, 64] {
        let scenario = "GET /api/job-list";
        let limit = measure(
            &mut rows,
            scenario,
            &bare,
            get("/api/job-list", ""),
            connections,
            duration,
            None,
        )
        .await?;
        let limit_reading = measure(
            &mut rows,
            scenario,
            &bare_reading,
            get("/api/job-list", ""),
            connections,
            duration,
            None,
        )
        .await?;
        let node = measure(
            &mut rows,
            scenario,
            &express,
            get("/api/job-list", &express_token),
            connections,
            duration,
            None,
        )
        .await?;
        let mut bearer = 0.0;
        for (server, token) in [(&tollgate, &tollgate_token), (&tollgate_hs, &hs_token)] {
            let workload = get("/api/job-list", token);
            let per_second = measure(
                &mut rows,
                scenario,
                server,
                workload,
                connections,
                duration,
                Some(node),
            )
            .await?;
            if let Some(row) = rows.last_mut() {
                row.scenario = format!(
                    "{scenario} ({:.0}% of bare axum, {:.0}% of bare axum reading the store)",
                    100.0 * per_second / limit,
                    100.0 * per_second / limit_reading
                );
            }
            if bearer == 0.0 {
                bearer = per_second;
            }
        }
        // The same list with a DPoP-bound token and a fresh proof per request (signed by the
        // load generator, as a browser would), beside the bearer run just above.
        let workload = Workload::DpopGet {
            path: "/api/job-list",
            token: dpop_token.clone(),
            signer: signer.clone(),
        };
        let per_second = measure(
            &mut rows,
            "GET /api/job-list with DPoP",
            &tollgate,
            workload,
            connections,
            duration,
            Some(node),
        )
        .await?;
        if let Some(row) = rows.last_mut() {
            row.scenario = format!(
                "GET /api/job-list with DPoP ({:.0}% of the bearer run)",
                100.0 * per_second / bearer
            );
        }
        against_express(
            &mut rows,
            "GET /api/current-user",
            (&express, get("/api/current-user", &express_token)),
            (&tollgate, get("/api/current-user", &tollgate_token)),
            connections,
            duration,
        )
        .await?;

        against_express(
            &mut rows,
            "refresh chains",
            (
                &express,
                refresh_chains(&client, &express, connections).await?,
            ),
            (
                &tollgate,
                refresh_chains(&client, &tollgate, connections).await?,
            ),
            connections,
            duration,
        )
        .await?;

        let body = json!({ "username": "user1", "password": "password" }).to_string();
        let workload = Workload::Post {
            path: "/api/login",
            body,
        };
        measure(
            &mut rows,
            "POST /api/login (Argon2id, 19 MiB; no baseline: the tutorial compares plain text)",
            &tollgate,
            workload,
            connections,
            duration,
            None,
        )
        .await?;
    }

    // The job list while 200 connections keep signing in.
    let flood = Workload::Post {
        path: "/api/login",
        body: json!({ "username": "user2", "password": "wrong" }).to_string(),
    };
    let reads = get("/api/job-list", &tollgate_token);
    let (under_flood, logins) = tokio::join!(
        run(tollgate.address, &reads, 4, duration),
        run(tollgate.address, &flood, 200, duration)
    );
    let (under_flood, logins) = (under_flood?, logins?);

    // What durable commits cost on SQLite (`TOLLGATE_SQLITE_SYNCHRONOUS`): every refresh is a
    // commit, so refresh chains show it; the two settings side by side.
    let normal_db = database("normal.db");
    let mut normal_args = common.to_vec();
    normal_args.extend([
        "--database-url",
        &normal_db,
        "--sqlite-synchronous",
        "normal",
    ]);
    let tollgate_normal = Server::start(
        "Tollgate (EdDSA, synchronous=normal)",
        &release.join("tollgate"),
        &normal_args,
        &[],
    )
    .await?;
    let mut durability = Vec::new();
    for connections in [1, 64] {
        for server in [&tollgate, &tollgate_normal] {
            let chains = refresh_chains(&client, server, connections).await?;
            let scenario = "refresh chains";
            measure(
                &mut durability,
                scenario,
                server,
                chains,
                connections,
                duration,
                None,
            )
            .await?;
        }
    }

    // What the audit log costs: sign-ins write an event each (failed ones too), refreshes
    // none unless refused; the same workloads with `TOLLGATE_AUDIT_RETENTION=off`.
    // Two fresh servers, started alike: the main one has served every scenario above, and a
    // store grown by them would be compared with an empty one.
    let audit_db = database("audit.db");
    let mut audit_args = common.to_vec();
    audit_args.extend(["--database-url", &audit_db]);
    let tollgate_audit = Server::start(
        "Tollgate (EdDSA, audit on)",
        &release.join("tollgate"),
        &audit_args,
        &[],
    )
    .await?;
    let no_audit_db = database("no-audit.db");
    let mut no_audit_args = common.to_vec();
    no_audit_args.extend(["--database-url", &no_audit_db, "--audit-retention", "off"]);
    let tollgate_no_audit = Server::start(
        "Tollgate (EdDSA, audit off)",
        &release.join("tollgate"),
        &no_audit_args,
        &[],
    )
    .await?;
    let mut auditing = Vec::new();
    // Refreshes write no event: their row is the noise floor. Sign-ins are bound by Argon2id,
    // 16 connections keep them under the hashing queue's limit (no 503s). Each pair is
    // measured on, off, off, on, so that neither setting always runs first.
    for (scenario, connections) in [
        ("refresh chains", 64),
        ("POST /api/login", 16),
        ("POST /api/login, wrong password", 16),
    ] {
        for server in [
            &tollgate_audit,
            &tollgate_no_audit,
            &tollgate_no_audit,
            &tollgate_audit,
        ] {
            let workload = match scenario {
                "refresh chains" => refresh_chains(&client, server, connections).await?,
                "POST /api/login" => Workload::Post {
                    path: "/api/login",
                    body: json!({ "username": "user3", "password": "password" }).to_string(),
                },
                _ => Workload::Post {
                    path: "/api/login",
                    body: json!({ "username": "user3", "password": "wrong" }).to_string(),
                },
            };
            measure(
                &mut auditing,
                scenario,
                server,
                workload,
                connections,
                duration,
                None,
            )
            .await?;
        }
    }

    let mut report = String::new();
    writeln!(report, "# Benchmarks, {}\n", today())?;
    writeln!(
        report,
        "Machine: {}. Release builds; the load generator (`bench/src/load.rs`, keep-alive HTTP/1.1) \
         runs on the same machine and shares its cores. {seconds} s per row. Ratios are against the \
         baseline named, measured in this same run.\n",
        machine_description()
    )?;
    writeln!(
        report,
        "| scenario | server | connections | requests/s | p50 ms | p99 ms | errors | server CPU µs/request | vs Express |"
    )?;
    writeln!(
        report,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for row in &rows {
        let ratio = row.baseline.map_or("".into(), |base| {
            format!("{:.1}×", row.stats.per_second / base)
        });
        writeln!(
            report,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {ratio} |",
            row.scenario,
            row.server,
            row.connections,
            row.stats.per_second,
            millis(row.stats.p50),
            millis(row.stats.p99),
            row.stats.errors,
            row.cpu_per_request.as_secs_f64() * 1e6
        )?;
    }
    writeln!(
        report,
        "\nUnder a sign-in flood (200 connections posting wrong passwords: {:.0} attempts/s, p99 {} ms), \
         `GET /api/job-list` on 4 connections: {:.0} requests/s, p50 {} ms, p99 {} ms.\n",
        logins.per_second,
        millis(logins.p99),
        under_flood.per_second,
        millis(under_flood.p50),
        millis(under_flood.p99)
    )?;
    writeln!(
        report,
        "Durable commits on SQLite: refresh chains (one commit per refresh) with \
         `synchronous=full` (the default) and `normal`.\n\n\
         | connections | full requests/s | normal requests/s | full / normal | full p99 ms | normal p99 ms |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for pair in durability.chunks(2) {
        let (full, normal) = (&pair[0].stats, &pair[1].stats);
        writeln!(
            report,
            "| {} | {:.0} | {:.0} | {:.0}% | {} | {} |",
            pair[0].connections,
            full.per_second,
            normal.per_second,
            100.0 * full.per_second / normal.per_second,
            millis(full.p99),
            millis(normal.p99)
        )?;
    }
    writeln!(
        report,
        "\nThe audit log: each sign-in (and each failed one) queues an event that a background \
         task writes in batches; the same workloads with the audit log off, each measured twice \
         (on, off, off, on; means of the two).\n\n\
         | scenario | connections | audit on requests/s | off requests/s | on / off | on p99 ms | off p99 ms |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for rows in auditing.chunks(4) {
        let (on, off) = (
            [&rows[0].stats, &rows[3].stats],
            [&rows[1].stats, &rows[2].stats],
        );
        let mean = |pair: [&Stats; 2]| (pair[0].per_second + pair[1].per_second) / 2.0;
        let worst_p99 = |pair: [&Stats; 2]| millis(pair[0].p99.max(pair[1].p99));
        writeln!(
            report,
            "| {} | {} | {:.0} | {:.0} | {:.0}% | {} | {} |",
            rows[0].scenario,
            rows[0].connections,
            mean(on),
            mean(off),
            100.0 * mean(on) / mean(off),
            worst_p99(on),
            worst_p99(off)
        )?;
    }
    writeln!(
        report,
        "\n| server | idle RSS MiB | peak RSS MiB |\n| --- | ---: | ---: |"
    )?;
    for server in [&tollgate, &tollgate_hs, &bare, &express] {
        let (now, peak) = server.memory();
        let idle = if server.name == tollgate.name {
            format!("{idle_rss:.1}")
        } else {
            format!("({now:.1} now)")
        };
        writeln!(report, "| {} | {idle} | {peak:.1} |", server.name)?;
    }
    println!("{report}");
    let path = root.join(format!("bench/results/{}.md", today()));
    std::fs::write(&path, &report)?;
    eprintln!("written to {}", path.display());
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    rows: &mut Vec<Row>,
    scenario: &str,
    server: &Server,
    workload: Workload,
    connections: usize,
    duration: Duration,
    baseline: Option<f64>,
) -> anyhow::Result<f64> {
    let cpu_before = server.cpu_time();
    let stats = run(server.address, &workload, connections, duration).await?;
    let cpu_per_request = (server.cpu_time() - cpu_before).div_f64(stats.requests.max(1) as f64);
    eprintln!(
        "{scenario} · {} · {connections}: {:.0}/s, p99 {} ms",
        server.name,
        stats.per_second,
        millis(stats.p99)
    );
    rows.push(Row {
        scenario: scenario.to_owned(),
        server: server.name,
        connections,
        stats,
        cpu_per_request,
        baseline,
    });
    Ok(stats.per_second)
}

/// The Express baseline, then Tollgate with its ratio against it.
async fn against_express(
    rows: &mut Vec<Row>,
    scenario: &str,
    (express, express_workload): (&Server, Workload),
    (tollgate, tollgate_workload): (&Server, Workload),
    connections: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let node = measure(
        rows,
        scenario,
        express,
        express_workload,
        connections,
        duration,
        None,
    )
    .await?;
    measure(
        rows,
        scenario,
        tollgate,
        tollgate_workload,
        connections,
        duration,
        Some(node),
    )
    .await?;
    Ok(())
}

/// One chain per connection, each starting from its own sign-in.
async fn refresh_chains(
    client: &reqwest::Client,
    server: &Server,
    connections: usize,
) -> anyhow::Result<Workload> {
    let mut tokens = Vec::new();
    for _ in 0..connections {
        tokens.push(token(&login(client, server).await?, "refreshToken")?);
    }
    Ok(Workload::RefreshChain { tokens })
}

async fn login(client: &reqwest::Client, server: &Server) -> anyhow::Result<Value> {
    let response = client
        .post(server.url("/api/login"))
        .json(&json!({ "username": "user1", "password": "password" }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{} login: {}",
        server.name,
        response.status()
    );
    Ok(response.json().await?)
}

fn token(body: &Value, name: &str) -> anyhow::Result<String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{name} in {body}"))
}
