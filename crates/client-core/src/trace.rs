//! OpenTelemetry traces for the clients, opt-in with the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `OTEL_SERVICE_NAME`), as for the servers
//! (`server_kit::telemetry`, which the clients do not link: it brings Redis
//! and axum).
//!
//! Each CLI command is a span, each tool call a child span; every request
//! to the authorization server and the MCP server made inside one carries
//! its W3C `traceparent` ([`inject`], and [`crate::transport::AuthorizedHttp`]
//! for rmcp's requests, which run on rmcp's own task: the tool call's span
//! travels there in the request's `_meta.traceparent`, SEP-414). Unset: no
//! layer, no exporter, the spans are disabled and [`traceparent`] returns
//! `None` at once.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The spans traces get: ours from `debug`, rmcp's none.
const SPAN_FILTER: &str = "info,client_core=debug,rmcp=off";

/// Flushes and stops the exporter when dropped (traces off: empty).
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops the trace exporter"]
pub struct TraceGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("traces: the last spans could not be exported: {e}");
        }
    }
}

/// The service name when traces are on: `None` unless
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// is set; `OTEL_SERVICE_NAME`, else `default_service`.
pub fn service_name(var: impl Fn(&str) -> Option<String>, default_service: &str) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    set("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))?;
    Some(
        set("OTEL_SERVICE_NAME")
            .map_or_else(|| default_service.to_owned(), |s| s.trim().to_owned()),
    )
}

/// Installs the global subscriber: `fmt` (stderr, `filter`) and, when
/// `service` is given, the OTLP HTTP/protobuf exporter.
pub fn init(filter: tracing_subscriber::EnvFilter, service: Option<&str>) -> TraceGuard {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time();
    let provider = service.and_then(|name| {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}; traces are off"))
            .ok()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(name.to_owned())
            .build();
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build(),
        )
    });
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("secure-mcp-client"))
            .with_filter(tracing_subscriber::EnvFilter::new(SPAN_FILTER))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    TraceGuard { provider }
}

/// The W3C `traceparent` of the current span, when it is traced.
pub fn traceparent() -> Option<String> {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// `request` with the current span's `traceparent`, when there is one.
pub fn inject(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match traceparent() {
        Some(value) => request.header("traceparent", value),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_on_only_with_an_endpoint() {
        let none = |_: &str| None;
        assert_eq!(service_name(none, "openai-client"), None);
        let endpoint =
            |n: &str| (n == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".into());
        assert_eq!(
            service_name(endpoint, "openai-client").as_deref(),
            Some("openai-client")
        );
        let named = |n: &str| match n {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".into()),
            "OTEL_SERVICE_NAME" => Some("agent-7".into()),
            _ => None,
        };
        assert_eq!(
            service_name(named, "openai-client").as_deref(),
            Some("agent-7")
        );
    }

    #[test]
    fn an_untraced_span_sends_no_traceparent() {
        let span = tracing::info_span!("call");
        let _entered = span.enter();
        assert_eq!(traceparent(), None);
    }
}
