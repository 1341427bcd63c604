//! A resource server protected by Tollgate: `GET /api/hello` answers only to a valid access
//! token of a session that was not revoked.
//!
//! Settings (environment): `TOLLGATE_URL` (default `http://localhost:8000`),
//! `TOLLGATE_ISSUER` and `TOLLGATE_AUDIENCE` when Tollgate does not use its defaults, and
//! `ADDR` to listen on (default `127.0.0.1:3000`).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tollgate_verify::axum::Authenticated;
use tollgate_verify::{remote, RemoteConfig, Verifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let setting = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let mut config = RemoteConfig::new(setting("TOLLGATE_URL", "http://localhost:8000"));
    config.issuer = setting("TOLLGATE_ISSUER", &config.issuer);
    config.audience = setting("TOLLGATE_AUDIENCE", &config.audience);
    let verifier = remote(config)?;

    let app = Router::new()
        .route("/api/hello", get(hello))
        .route("/healthz", get(health))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(setting("ADDR", "127.0.0.1:3000")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The protected route: the extractor has verified the token.
async fn hello(Authenticated(claims): Authenticated) -> Json<Value> {
    Json(json!({
        "message": format!("Hello, {}!", claims.user.username),
        "sub": claims.sub,
        "sid": claims.sid,
        "roles": claims.roles,
    }))
}

/// How current this server's view of revocations is.
async fn health(State(verifier): State<Arc<Verifier>>) -> Json<Value> {
    let staleness = verifier.revocations_staleness();
    Json(json!({ "revocationsStalenessMs": staleness.map(|s| s.as_millis() as u64) }))
}
