use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tollgate::cli::{self, Cli, Failure};
use tollgate::config::setting_error;
use tracing_subscriber::EnvFilter;

/// Each request makes many small, short-lived allocations; glibc's malloc spent a quarter of
/// the server's time on them (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match setting_error(&error, &Cli::command()) {
            Some(setting) => {
                eprintln!("tollgate: {setting}");
                return ExitCode::from(2);
            }
            None => error.exit(),
        },
    };
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setting(error)) => {
            eprintln!("tollgate: {error}");
            ExitCode::from(2)
        }
        Err(Failure::Other(error)) => {
            eprintln!("tollgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
