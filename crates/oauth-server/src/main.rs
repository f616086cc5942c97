//! `oauth-server`: see `oauth-server --help`.
//!
//! Exit status: 0 ok, 1 runtime failure, 2 configuration error (one stderr
//! line naming the variable) or usage error (clap).

use std::process::ExitCode;

use clap::Parser as _;
use oauth_server::cli::{self, Cli, Command};
use oauth_server::{App, Config};
use server_kit::cli::{EXIT_CONFIG, EXIT_RUNTIME, config_error_line};
use server_kit::config::ConfigError;

const BIN: &str = "oauth-server";

#[tokio::main]
async fn main() -> ExitCode {
    // Arguments first: `--help` works whatever the environment holds.
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    let result = match command {
        Command::HashSecret { sha256, .. } => cli::hash_secret(sha256),
        Command::GenerateSecret => cli::generate_secret(),
        Command::HashPassword => cli::hash_password(),
        Command::Keys { .. } | Command::Healthcheck | Command::Serve | Command::AddUser { .. } => {
            let config = match load_config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}", config_error_line(BIN, &e));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match command {
                Command::Keys { action } => cli::keys(&config, action),
                Command::Healthcheck => cli::healthcheck(&config).await,
                Command::AddUser {
                    username,
                    scopes,
                    name,
                } => cli::add_user(&config, &username, &scopes, name.as_deref()),
                _ => serve(config).await,
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what failed; the cause chain follows on the same line.
            eprintln!("{BIN}: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn load_config() -> Result<Config, ConfigError> {
    server_kit::config::load_dotenv()?;
    Config::from_env()
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let otel = server_kit::telemetry::OtelSettings::from_env(BIN);
    // Dropped after the server stops: the last spans are flushed.
    let _telemetry = server_kit::telemetry::init(config.log_format, otel.as_ref());
    App::build(config).await?.run_until_stopped().await
}
