//! A small HTTP/1.1 load generator on hyper's client connections: N keep-alive connections,
//! each sending its next request as soon as the previous answer is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::percentiles;

/// What each connection sends.
#[derive(Clone)]
pub enum Workload {
    /// The same GET with a bearer token, again and again.
    Get { path: &'static str, token: String },
    /// The same GET with a DPoP-bound token and a fresh proof for each request.
    DpopGet {
        path: &'static str,
        token: String,
        signer: Arc<crate::DpopSigner>,
    },
    /// The same JSON POST again and again.
    Post { path: &'static str, body: String },
    /// Refresh chains: connection `n` starts from `tokens[n]` and always sends the refresh
    /// token the previous answer returned.
    RefreshChain { tokens: Vec<String> },
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `workload` over `connections` connections for `duration`.
pub async fn run(
    address: SocketAddr,
    workload: &Workload,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let deadline = Instant::now() + duration;
    let workload = Arc::new(workload.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..connections {
        let workload = workload.clone();
        tasks.spawn(async move { connection(address, &workload, n, deadline).await });
    }
    let started = Instant::now();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(result) = tasks.join_next().await {
        let (samples, failed) = result??;
        latencies.extend(samples);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(!latencies.is_empty(), "no request completed");
    let requests = latencies.len() as u64;
    let (p50, p99) = percentiles(&mut latencies);
    Ok(Stats {
        requests,
        errors,
        per_second: requests as f64 / elapsed,
        p50,
        p99,
    })
}

async fn connection(
    address: SocketAddr,
    workload: &Workload,
    n: usize,
    deadline: Instant,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let stream = TcpStream::connect(address).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    let mut chain = match workload {
        Workload::RefreshChain { tokens } => tokens
            .get(n)
            .cloned()
            .context("a refresh token per connection")?,
        _ => String::new(),
    };
    let (mut latencies, mut errors) = (Vec::with_capacity(4096), 0);
    while Instant::now() < deadline {
        let request = match workload {
            Workload::Get { path, token } => Request::get(*path)
                .header("host", "bench")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))?,
            Workload::DpopGet {
                path,
                token,
                signer,
            } => Request::get(*path)
                .header("host", "bench")
                .header("authorization", format!("DPoP {token}"))
                .header(
                    "dpop",
                    signer.proof("GET", &format!("http://bench{path}"), Some(token)),
                )
                .body(Full::new(Bytes::new()))?,
            Workload::Post { path, body } => json_post(path, body.clone())?,
            Workload::RefreshChain { .. } => json_post(
                "/api/refresh-token",
                format!(r#"{{"refreshToken":"{chain}"}}"#),
            )?,
        };
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let ok = response.status().is_success();
        let body = response.into_body().collect().await?.to_bytes();
        latencies.push(started.elapsed());
        if !ok {
            errors += 1;
            continue;
        }
        if let Workload::RefreshChain { .. } = workload {
            let pair: serde_json::Value = serde_json::from_slice(&body)?;
            chain = pair["refreshToken"]
                .as_str()
                .context("refreshToken in the answer")?
                .to_owned();
        }
    }
    Ok((latencies, errors))
}

fn json_post(path: &str, body: String) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "bench")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?)
}
