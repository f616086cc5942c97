//! Tracing set-up shared by every binary (`LOG_FORMAT`, `RUST_LOG`).
//!
//! Audit events use `target: "audit"` and a stable `event` field (DESIGN.md §8),
//! so `LOG_FORMAT=json` gives one machine-readable object per decision.

use std::io::IsTerminal as _;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// `LOG_FORMAT`: human text or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// Installs the global subscriber (`RUST_LOG` filter, default `info`).
/// Safe to call twice: the second call is a no-op.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // log_internal_errors(false): with stderr closed (a pipeline whose reader
    // died), the subscriber would otherwise `eprintln!` its write error, which
    // panics inside whatever task happened to log — e.g. the one that turns
    // SIGTERM into a shutdown.
    // Colour only for a person at a terminal: escape codes in a log file or
    // journald are noise, and formatting them costs CPU on every event.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
