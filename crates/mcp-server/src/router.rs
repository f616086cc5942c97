//! Every route and the `/mcp` middleware stack, in one place.
//!
//! ```text
//! GET  /health                                        routes::health            (no auth; liveness)
//! GET  /ready                                         routes::health::ready     (no auth; Redis, revocation set: 200/503)
//! GET  /.well-known/oauth-protected-resource/mcp      routes::protected_resource (RFC 9728)
//! GET  /.well-known/oauth-protected-resource          routes::protected_resource (root form)
//!        both behind middleware::cors::public: any origin (`*`), preflight 204
//! POST|GET|DELETE /mcp                                rmcp StreamableHttpService, behind
//!                                                     middleware::gate::McpGate, one service running:
//!        0. middleware::cors::mcp_preflight   preflight (no token needed)       204, 400/403
//!                                             (MCP_ALLOWED_ORIGINS only); CORS headers on
//!                                             every answer below to a listed origin
//!        1. middleware::host_origin::check    Host/Origin allow-lists            400/403
//!        2. middleware::bearer::authenticate  failed-auth budget of the address  429
//!                                             access token, revocation           401 (503)
//!        3. middleware::scope::require_scope  Content-Type, body size, JSON-RPC  415/413/400
//!                                             scope of tool/resource             403
//!                                             (a body rmcp cannot read: 400 before any later
//!                                             refusal and instead of rmcp's 415: scope::readable)
//!        4. middleware::rate_limit::limit     per-client budget (ratelimit)      429 (503)
//!        5. middleware::session_binding::bind session owned by caller            404
//!        6. direct::DirectCalls               a tools/call that passes all of    200 (JSON-RPC
//!                                             rmcp's checks (stateless 2026-07-28 result/error,
//!                                             or in a live session of the caller): rmcp's message)
//!                                             the tool, answered as rmcp would
//!        7. rmcp                              everything else: its own 400/404/405/406/413/415/500,
//!                                             JSON-RPC errors
//!        then rate_limit::add_headers (answers after step 4) and cors::expose (listed origins)
//! anything else                                       error::not_found / method_not_allowed  404/405
//! ```
//!
//! Every status in the right-hand column except rmcp's and the preflight's 204 is an
//! [`McpHttpError`](crate::error::McpHttpError) variant (the table in
//! `error.rs` says which); its JSON-RPC error bodies echo the request `id`.
//!
//! Around everything: request tracing (a `debug` span per request with the
//! matched route and, once known, the client id; the `Authorization` header
//! marked sensitive), continuing the caller's W3C `traceparent` when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` turns traces on. At the default `info` level a request costs one log
//! line, its audit event: formatting spans for every request cost about a
//! quarter of the server's throughput (BENCHMARKS.md).

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use tower::Layer as _;
use tower::ServiceBuilder;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use server_kit::metrics::HttpMetrics;

use crate::error;
use crate::mcp::McpService;
use crate::middleware::cors;
use crate::middleware::gate::McpGateLayer;
use crate::routes::{health, protected_resource};
use crate::state::AppState;

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// The route table of `securemcp_http_requests_total{route}`: every route
/// above as axum matches it (anything else is `other`). The metadata path
/// follows `MCP_RESOURCE_URL`, so the table is built once at start-up.
pub fn metric_routes(resource: &str) -> &'static [&'static str] {
    const DEFAULT: &[&str] = &[
        MCP_PATH,
        "/health",
        "/ready",
        protected_resource::WELL_KNOWN,
        "/.well-known/oauth-protected-resource/mcp",
    ];
    let path = protected_resource::path_for(resource);
    if DEFAULT.contains(&path.as_str()) {
        return DEFAULT;
    }
    // Another resource path: one table per App built (a few bytes, once).
    let path: &'static str = Box::leak(path.into_boxed_str());
    Box::leak(Box::new([
        MCP_PATH,
        "/health",
        "/ready",
        protected_resource::WELL_KNOWN,
        path,
    ]))
}

/// `http_metrics`: `Some` counts and times every request (outermost layer).
pub fn router(state: AppState, mcp: McpService, http_metrics: Option<Arc<HttpMetrics>>) -> Router {
    let resource_metadata_path = protected_resource::path_for(&state.metadata().resource);

    // Steps 0-5 of the table in one service: its states are taken from the
    // AppState here, once (six `from_fn` layers cloned them per request).
    let mcp_gate = McpGateLayer::new(&state);

    // The OPTIONS route only gives the preflight a method to land on;
    // `cors::public` answers it.
    let metadata = || {
        get(protected_resource::metadata)
            .options(|| async { http::StatusCode::NO_CONTENT })
            .layer(from_fn(cors::public))
    };
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route(protected_resource::WELL_KNOWN, metadata());
    if resource_metadata_path != protected_resource::WELL_KNOWN {
        router = router.route(&resource_metadata_path, metadata());
    }
    let router = router
        .route_service(MCP_PATH, mcp_gate.layer(mcp))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([http::header::AUTHORIZATION]))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
                    let span = tracing::debug_span!("http", method = %req.method(), route, client_id = tracing::field::Empty);
                    // Continue the caller's W3C trace (no-op unless traces are on).
                    server_kit::telemetry::continue_trace(&span, req.headers());
                    span
                })),
        )
        .with_state(state);
    match http_metrics {
        // Outermost: every answer, refusals by inner layers included, is
        // counted under its route (MatchedPath is set before layers run).
        Some(m) => router.layer(from_fn_with_state(m, server_kit::metrics::track)),
        None => router,
    }
}
