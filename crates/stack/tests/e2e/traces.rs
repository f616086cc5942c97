//! OpenTelemetry traces end to end: the built `openai-client` (`call`), nginx,
//! and the built `oauth-server` and `mcp-server`, each exporting OTLP
//! HTTP/protobuf to a collector stand-in (an axum `POST /v1/traces` decoding
//! `ExportTraceServiceRequest`). One `tools/call` is one trace across the
//! three services, each span's parent is the one that sent the request, and
//! the audit events name the trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

use crate::helpers::CLIENT;

/// One exported span, as the collector saw it.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

impl Seen {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Seen>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

async fn collect(State(spans): State<Spans>, body: Bytes) -> axum::http::StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut seen = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            seen.push(Seen {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                    .collect(),
            });
        }
    }
    axum::http::StatusCode::OK
}

/// The collector stand-in: its base URL (for `OTEL_EXPORTER_OTLP_ENDPOINT`)
/// and what it received.
async fn collector() -> (String, Spans) {
    let spans = Spans::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// Waits until `found` holds for the spans received (the servers export on
/// their batch schedule, 50 ms here); fails naming what arrived.
async fn wait_for(spans: &Spans, what: &str, found: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if found(&spans.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} arrived; spans: {:#?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tool_call_is_one_trace_across_client_nginx_and_both_servers() {
    let mut bins = Vec::new();
    for bin in ["oauth-server", "mcp-server", "openai-client"] {
        match stack::child::binary(bin, None) {
            Ok(path) => bins.push(path),
            Err(e) => {
                assert!(!testkit::services_required(), "{e:#}");
                eprintln!("SKIPPED: {e:#}");
                return;
            }
        }
    }
    let (endpoint, spans) = collector().await;
    let Some(mut stack) = stack::Stack::builder()
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .nginx()
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .oauth_env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .oauth_env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .mcp_env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .mcp_env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .mcp_env("LOG_FORMAT", "json")
        .start_or_skip()
        .await
    else {
        return;
    };
    let ca = stack.ca_pem().unwrap().display().to_string();
    let cwd = tempfile::tempdir().unwrap();
    // The client's spans arrive only through the flush at exit: its batch
    // schedule (default 5 s) is longer than the command.
    let out = tokio::process::Command::new(&bins[2])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd.path())
        .env("MCP_SERVER_URL", stack.mcp_url())
        .env("OAUTH_ISSUER", stack.issuer())
        .env("OAUTH_CLIENT_ID", CLIENT.0)
        .env("OAUTH_CLIENT_SECRET", CLIENT.1)
        .env("SSL_CERT_FILE", &ca)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .args(["call", "get_customer_info", r#"{"customer_id":"12345"}"#])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Alice Johnson"), "{stdout}");

    let all = spans.lock().unwrap().clone();
    let client = |name: &str| {
        all.iter()
            .find(|s| s.service == "openai-client" && s.name == name)
            .unwrap_or_else(|| panic!("no client span {name}: {all:#?}"))
            .clone()
    };
    let command = client("command");
    let call = client("tools/call");
    assert_eq!(command.attr("command"), Some("call"));
    assert_eq!(command.parent_span_id, "", "the command starts the trace");
    assert_eq!(call.attr("tool"), Some("get_customer_info"));
    assert_eq!(call.trace_id, command.trace_id);
    assert_eq!(call.parent_span_id, command.span_id);
    let trace = command.trace_id.clone();
    assert_eq!(trace.len(), 32);

    // The mcp-server's request span for the call is the client's call span's
    // child (traceparent came through nginx); the token request's span at the
    // oauth-server is the command's child.
    wait_for(&spans, "mcp-server span of the call", |s| {
        s.iter().any(|s| {
            s.service == "mcp-server" && s.name == "http" && s.parent_span_id == call.span_id
        })
    })
    .await;
    wait_for(&spans, "oauth-server span of the token request", |s| {
        s.iter().any(|s| {
            s.service == "oauth-server"
                && s.name == "http"
                && s.attr("route") == Some("/token")
                && s.parent_span_id == command.span_id
        })
    })
    .await;
    let all = spans.lock().unwrap().clone();
    let mcp_call = all
        .iter()
        .find(|s| s.service == "mcp-server" && s.parent_span_id == call.span_id)
        .unwrap();
    assert_eq!(mcp_call.trace_id, trace);
    assert_eq!(mcp_call.attr("route"), Some("/mcp"));
    assert_eq!(mcp_call.attr("method"), Some("POST"));
    let token = all
        .iter()
        .find(|s| s.service == "oauth-server" && s.attr("route") == Some("/token"))
        .unwrap();
    assert_eq!(token.trace_id, trace);
    // Every server span of this run belongs to the command's trace, but the
    // stack's health polls and the mcp-server's JWKS fetch at start-up.
    let served: Vec<&Seen> = all
        .iter()
        .filter(|s| s.service != "openai-client")
        .filter(|s| !matches!(s.attr("route"), Some("/health" | "/jwks")))
        .collect();
    for s in &served {
        assert_eq!(s.trace_id, trace, "{s:#?}");
    }
    // The tool's own span is inside the request's.
    let tool = served
        .iter()
        .find(|s| s.service == "mcp-server" && s.name == "tool")
        .unwrap_or_else(|| panic!("no tool span: {served:#?}"));
    assert_eq!(tool.attr("tool"), Some("get_customer_info"));
    assert_eq!(tool.attr("client_id"), Some(CLIENT.0));
    assert_eq!(tool.parent_span_id, mcp_call.span_id);

    // The audit events name the trace (whichever replica nginx chose).
    let files: Vec<String> = (0..stack.replicas().len())
        .map(|i| format!("mcp-server-{i}.log"))
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let log = stack
        .logs_until(&files, |l| l.contains("mcp.tool_called"))
        .await;
    let called: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "mcp.tool_called")
        .collect();
    assert_eq!(called.len(), 1, "{log}");
    assert_eq!(called[0]["trace_id"], trace.as_str(), "{log}");
    assert_eq!(called[0]["tool"], "get_customer_info");
    stack.stop().await.unwrap();
}
