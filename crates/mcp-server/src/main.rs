//! `mcp-server`: see `mcp-server --help`.
//!
//! Exit status: 0 ok, 1 runtime failure (or unhealthy for `healthcheck`), 2
//! configuration error (one stderr line naming the variable) or usage error
//! (clap).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mcp_server::config::ENV_VARS;
use mcp_server::{App, Config};
use server_kit::cli::{EXIT_CONFIG, EXIT_RUNTIME, config_error_line};

const BIN: &str = "mcp-server";

/// MCP resource server: accepts only audience-bound, scoped JWTs from the
/// configured authorization server. Without a command it serves.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-server",
    version,
    after_long_help = server_kit::cli::server_long_help(ENV_VARS),
    after_help = server_kit::cli::SERVER_SHORT_HELP,
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Command {
    /// Run the MCP server (the default).
    Serve,
    /// GET /health on MCP_BIND; exit 0 when healthy, 1 otherwise.
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Arguments first: `--help` works whatever the environment holds.
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", config_error_line(BIN, &e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if command == Command::Healthcheck {
        let healthy = server_kit::healthcheck::check(config.bind, Duration::from_secs(3)).await;
        return if healthy {
            ExitCode::SUCCESS
        } else {
            eprintln!("{BIN}: GET /health on {} did not answer 200", config.bind);
            ExitCode::from(EXIT_RUNTIME)
        };
    }
    let otel = server_kit::telemetry::OtelSettings::from_env(BIN);
    // Dropped after the server stops: the last spans are flushed.
    let _telemetry = server_kit::telemetry::init(config.log_format, otel.as_ref());
    match serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "mcp-server failed");
            eprintln!("{BIN}: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await.context("start-up failed")?;
    app.run_until_stopped().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
