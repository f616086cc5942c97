//! Tracing set-up shared by both servers (`LOG_FORMAT`, `RUST_LOG`, and
//! OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! Audit events use `target: "audit"` and a stable `event` field (DESIGN.md §8),
//! so `LOG_FORMAT=json` gives one machine-readable object per decision.
//!
//! Traces: [`init`] adds a `tracing-opentelemetry` layer exporting OTLP
//! HTTP/protobuf (batch processor, flushed when the [`TelemetryGuard`] drops).
//! Each router's request span continues the caller's W3C `traceparent`
//! ([`continue_trace`]); audit events carry [`current_trace_id`]. Without the
//! variable nothing changes: no layer, no exporter, and the request spans stay
//! disabled at the default `info` level, so the hooks return at once.

use std::io::IsTerminal as _;
use std::str::FromStr;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The standard variable that turns traces on (the OTLP/HTTP base URL, e.g.
/// `http://otel-collector:4318`; spans go to `{it}/v1/traces`).
pub const OTEL_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming this process in traces.
pub const OTEL_SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// What traces go to which spans: our own crates' spans down to `debug`
/// (the per-request `http` spans and the mcp-server's `tool` spans are
/// `debug` so they cost nothing in logs), everything else from `info`.
pub const OTEL_SPAN_FILTER: &str =
    "info,oauth_server=debug,mcp_server=debug,server_kit=debug,client_core=debug,rmcp=warn";

/// Lines queued for the log writer thread before a logging thread waits
/// for it. A line is a few hundred bytes, so a full queue holds ~2-3 MiB
/// (tracing-appender's default, 128,000 lines, could hold ~40 MiB: over the
/// mcp-server's whole memory target).
pub const LOG_QUEUE_LINES: usize = 8192;

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
/// [`filter_for`]), writing to stderr from the thread that logs. Safe to
/// call twice: the second call is a no-op.
pub fn init_tracing(format: LogFormat) {
    init_fmt(format, std::io::stderr);
}

/// [`init_tracing`] with `writer`; false when a subscriber was already set.
fn init_fmt<W>(format: LogFormat, writer: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
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
        .with_writer(writer)
        .with_ansi(ansi)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    }
    .is_ok()
}

/// Traces settings from the environment: `None` unless
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-only
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelSettings {
    /// `OTEL_SERVICE_NAME`, else the binary's default.
    pub service_name: String,
}

impl OtelSettings {
    /// Reads the standard variables through `var`; `default_service` names
    /// the process when `OTEL_SERVICE_NAME` is unset or empty.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, default_service: &str) -> Option<Self> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        set(OTEL_ENDPOINT_VAR).or_else(|| set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))?;
        Some(Self {
            service_name: set(OTEL_SERVICE_NAME_VAR)
                .map_or_else(|| default_service.to_owned(), |s| s.trim().to_owned()),
        })
    }

    /// [`OtelSettings::from_vars`] over the process environment.
    pub fn from_env(default_service: &str) -> Option<Self> {
        Self::from_vars(|n| std::env::var(n).ok(), default_service)
    }
}

/// Flushes and stops the trace exporter and the log writer thread when
/// dropped (keep it alive in `main` until the server has stopped).
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops the trace exporter and the log writer"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// Dropped after the provider's shutdown (fields drop after `drop`):
    /// writes out the queued lines, an exporter's last complaint included.
    _writer: Option<WorkerGuard>,
}

impl TelemetryGuard {
    /// True when spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("traces: the last spans could not be exported: {e}");
        }
    }
}

/// The OTLP HTTP/protobuf tracer provider (endpoint, headers, timeout and
/// batch schedule from the standard `OTEL_*` variables).
pub fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("{OTEL_ENDPOINT_VAR}: cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The log writer thread: lossless, [`LOG_QUEUE_LINES`] deep, one write per
/// batch of lines.
fn log_writer() -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(StderrBatches::default())
}

/// Bytes gathered before the writer thread writes them out even though
/// more lines are queued.
const BATCH_BYTES: usize = 64 * 1024;

/// stderr for the writer thread: lines are gathered (up to [`BATCH_BYTES`])
/// and written out when the queue is empty (tracing-appender's worker calls
/// `flush` then). Write errors are dropped, as `log_internal_errors(false)`
/// does for the fmt layer: with stderr closed, the worker would otherwise
/// `eprintln!` the error, which panics.
#[derive(Default)]
struct StderrBatches {
    buf: Vec<u8>,
}

impl StderrBatches {
    fn write_out(&mut self) {
        use std::io::Write as _;
        if !self.buf.is_empty() {
            let _ = std::io::stderr().lock().write_all(&self.buf);
            self.buf.clear();
        }
    }
}

impl std::io::Write for StderrBatches {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + line.len() > BATCH_BYTES {
            self.write_out();
        }
        self.buf.extend_from_slice(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out();
        Ok(())
    }
}

/// What [`init_tracing`] sets up, but writing through the log writer thread
/// (see the module docs), plus the OpenTelemetry layer when `otel` is given.
/// An exporter that cannot be built is reported on stderr and traces stay
/// off (logs must not depend on the collector). The servers' `main` calls
/// it and keeps the guard until the server has stopped.
pub fn init(format: LogFormat, otel: Option<&OtelSettings>) -> TelemetryGuard {
    let provider = otel.and_then(|otel| match tracer_provider(&otel.service_name) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("{e}; traces are off");
            None
        }
    });
    let (writer, writer_guard) = log_writer();
    let Some(provider) = provider else {
        // No traces: exactly init_tracing's subscriber (one global filter,
        // so disabled spans cost nothing), on the writer thread.
        return TelemetryGuard {
            provider: None,
            _writer: init_fmt(format, writer).then_some(writer_guard),
        };
    };
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = EnvFilter::try_new(filter_for(rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(filter_for(None)));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    };
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("secure-mcp"))
        .with_filter(EnvFilter::new(OTEL_SPAN_FILTER));
    match tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init()
    {
        Ok(()) => TelemetryGuard {
            provider: Some(provider),
            _writer: Some(writer_guard),
        },
        // Already initialised (a second call): keep the first subscriber.
        Err(_) => {
            let _ = provider.shutdown();
            TelemetryGuard::default()
        }
    }
}

/// Makes `span` continue the trace named by the request's W3C `traceparent`
/// (and `tracestate`) header. A no-op when the span is not recorded (traces
/// off) or the header is absent or malformed (the span starts a new trace).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The current span's trace id (32 hex digits), when traces are on and
/// the code runs inside a recorded span.
pub fn current_trace_id() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_ref = context.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The `traceparent` value for the current span (to send downstream).
pub fn current_traceparent() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
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
        assert!(EnvFilter::try_new(OTEL_SPAN_FILTER).is_ok());
    }

    #[test]
    fn traces_are_on_only_with_an_endpoint() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(OtelSettings::from_vars(vars(&[]), "mcp-server"), None);
        assert_eq!(
            OtelSettings::from_vars(vars(&[(OTEL_ENDPOINT_VAR, " ")]), "mcp-server"),
            None
        );
        assert_eq!(
            OtelSettings::from_vars(vars(&[(OTEL_ENDPOINT_VAR, "http://c:4318")]), "mcp-server"),
            Some(OtelSettings {
                service_name: "mcp-server".into()
            })
        );
        assert_eq!(
            OtelSettings::from_vars(
                vars(&[
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://c:4318/v1/traces"
                    ),
                    (OTEL_SERVICE_NAME_VAR, "mcp-eu-1")
                ]),
                "mcp-server"
            ),
            Some(OtelSettings {
                service_name: "mcp-eu-1".into()
            })
        );
    }

    #[test]
    fn without_a_recorded_span_there_is_no_trace() {
        let span = tracing::info_span!("request");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        continue_trace(&span, &headers);
        let _entered = span.enter();
        assert_eq!(current_trace_id(), None);
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn a_recorded_span_continues_the_callers_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
            );
            let span = tracing::debug_span!("http");
            continue_trace(&span, &headers);
            let entered = span.enter();
            assert_eq!(
                current_trace_id().as_deref(),
                Some("0af7651916cd43dd8448eb211c80319c")
            );
            let sent = current_traceparent().unwrap_or_default();
            assert!(
                sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{sent}"
            );
            assert!(
                !sent.contains("b7ad6b7169203331"),
                "a child span id: {sent}"
            );
            assert!(sent.ends_with("-01"), "{sent}");
            drop(entered);

            // A malformed header starts a new trace.
            headers.insert("traceparent", http::HeaderValue::from_static("00-zz-01"));
            let fresh = tracing::debug_span!("http");
            continue_trace(&fresh, &headers);
            let _entered = fresh.enter();
            let id = current_trace_id().unwrap_or_default();
            assert_eq!(id.len(), 32);
            assert_ne!(id, "0af7651916cd43dd8448eb211c80319c");
        });
    }
}
