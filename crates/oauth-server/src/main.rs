//! `oauth-server`: see `oauth-server --help`.

use std::process::ExitCode;

use oauth_server::{App, Config, cli};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what to fix; the cause chain follows on the same line.
            eprintln!("oauth-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("serve", &[][..]),
    };
    match cmd {
        "-h" | "--help" | "help" => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        "hash-secret" => cli::hash_secret(rest),
        "generate-secret" => cli::generate_secret(),
        "keys" | "healthcheck" | "serve" => {
            server_kit::config::load_dotenv()?;
            let config = Config::from_env()?;
            match cmd {
                "keys" => cli::keys(&config, rest),
                "healthcheck" => cli::healthcheck(&config).await,
                _ => {
                    server_kit::telemetry::init_tracing(config.log_format);
                    App::build(config).await?.run_until_stopped().await
                }
            }
        }
        other => anyhow::bail!("unknown command {other:?}\n{}", cli::USAGE),
    }
}
