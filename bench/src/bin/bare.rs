//! The limit of the stack for `make bench`: axum answering `GET /api/job-list` with the same
//! bytes Tollgate sends, from memory, with no authentication at all.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: &'static [u8] = std::fs::read(std::env::var("JOBS_FILE")?)?.leak();
    let port: u16 = std::env::var("PORT")?.parse()?;
    let app = Router::new().route(
        "/api/job-list",
        get(move || async move { ([(CONTENT_TYPE, "application/json")], jobs) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
