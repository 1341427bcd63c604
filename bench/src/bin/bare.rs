//! The limits of the stack for `make bench`: axum answering `GET /api/job-list` with no
//! authentication and no middleware, either with the bytes Tollgate sends, from memory
//! (`JOBS_FILE`), or by reading the same user's jobs through Tollgate's own store on every
//! request (`JOBS_DATABASE_URL` and `JOBS_USER_ID`): what is left over is the cost of the
//! token check and the middleware.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tollgate::http::job_list_response;
use tollgate::store::{self, Store, StoreOptions};
use uuid::Uuid;

/// The allocator Tollgate runs on, so that the comparison is of the code, not of malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")?.parse()?;
    let app = match std::env::var("JOBS_DATABASE_URL") {
        Ok(url) => {
            let user: Uuid = std::env::var("JOBS_USER_ID")
                .context("JOBS_USER_ID")?
                .parse()?;
            let store = store::connect(&url, &StoreOptions::default()).await?;
            Router::new()
                .route("/api/job-list", get(jobs_from_store))
                .with_state((store, user))
        }
        Err(_) => {
            let jobs: &'static [u8] = std::fs::read(std::env::var("JOBS_FILE")?)?.leak();
            Router::new().route(
                "/api/job-list",
                get(move || async move { ([(CONTENT_TYPE, "application/json")], jobs) }),
            )
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Serialized as Tollgate serializes it, so that only the token check and middleware differ.
async fn jobs_from_store(State((store, user)): State<(Arc<dyn Store>, Uuid)>) -> Response {
    match store.jobs_of(user).await {
        Ok(jobs) => job_list_response(&jobs),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
