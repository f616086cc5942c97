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

/// Directive added to every filter unless `RUST_LOG` names rmcp itself:
/// rmcp logs each stateless request's lifecycle at `info` (a span, "Service
/// initialized as server" with the client's whole `peer_info`, "input stream
/// terminated", "serve finished"). On a loaded MCP server that was a third of
/// the CPU (BENCHMARKS.md), and it says nothing our audit events do not.
pub const RMCP_DEFAULT_DIRECTIVE: &str = "rmcp=warn";

/// The filter for `rust_log` (the `RUST_LOG` value; `None`: `info`), with
/// [`RMCP_DEFAULT_DIRECTIVE`] unless it mentions rmcp.
pub fn filter_for(rust_log: Option<&str>) -> String {
    let base = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    if base.contains("rmcp") {
        base.to_owned()
    } else {
        format!("{base},{RMCP_DEFAULT_DIRECTIVE}")
    }
}

/// Installs the global subscriber (`RUST_LOG` filter, default `info`; see
/// [`filter_for`]). Safe to call twice: the second call is a no-op.
pub fn init_tracing(format: LogFormat) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = EnvFilter::try_new(filter_for(rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(filter_for(None)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_is_capped_unless_asked_for() {
        assert_eq!(filter_for(None), "info,rmcp=warn");
        assert_eq!(filter_for(Some("")), "info,rmcp=warn");
        assert_eq!(filter_for(Some("debug")), "debug,rmcp=warn");
        assert_eq!(
            filter_for(Some("info,mcp_server=debug")),
            "info,mcp_server=debug,rmcp=warn"
        );
        assert_eq!(filter_for(Some("info,rmcp=debug")), "info,rmcp=debug");
        for f in [filter_for(None), filter_for(Some("warn,audit=info"))] {
            assert!(EnvFilter::try_new(&f).is_ok(), "{f}");
        }
    }
}
