//! `mcp-server` (serve) and `mcp-server healthcheck` (exit 0 when healthy).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use mcp_server::{App, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("healthcheck") => {
            let healthy = server_kit::healthcheck::check(config.bind, Duration::from_secs(3)).await;
            return if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some(other) => {
            eprintln!("mcp-server: unknown command {other:?} (expected: serve, healthcheck)");
            return ExitCode::from(2);
        }
    }
    server_kit::telemetry::init_tracing(config.log_format);
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "mcp-server failed");
            eprintln!("mcp-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await.context("start-up failed")?;
    app.run_until_stopped().await
}
