use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tollgate::cli::{self, Cli, Failure};
use tollgate::config::{setting_error, LogFormat};
use tracing_subscriber::EnvFilter;

/// Each request makes many small, short-lived allocations; glibc's malloc spent a quarter of
/// the server's time on them (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
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
    init_logging(cli.log_format());
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

/// Log lines on standard error: `RUST_LOG` filters them; colours only where a person reads them
/// (a terminal), never escape codes in files and log shippers; or one JSON object per line.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn,memory_serve=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
