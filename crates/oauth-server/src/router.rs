//! Every route and the middleware stack, in one place.
//!
//! | routes | layers, outermost first | may answer |
//! |---|---|---|
//! | `/token`, `/revoke` | one service ([`crate::gate`]): CORS (any origin) → per-IP limit → handler | preflight 200, 429, 405, RFC 6749 errors |
//! | `/register` | CORS (any origin) → handler (its own per-IP budget inside) | preflight 200, 201, RFC 7591 errors, 429, 404 when off |
//! | `/introspect` | per-IP limit → handler (no CORS: resource servers call it, not browsers) | 429, RFC 6749 errors |
//! | `/authorize` | GET: handler; POST: per-IP budget → handler (no CORS: pages for people) | HTML pages, 302 to the client, 429 page |
//! | RFC 8414 metadata, `/jwks`, `/.well-known/jwks.json` | CORS (any origin) → handler | preflight 200 |
//! | `/health` | handler (liveness) | 200 |
//! | `/ready` | handler (readiness: Redis) | 200, 503 naming what is down |
//!
//! A trace span (matched route only) wraps everything; outside it,
//! `server_kit::metrics::track` counts and times every request by route
//! ([`crate::metrics::ROUTES`]; anything else is `other`).

use std::time::Duration;

use axum::http::{HeaderName, Method, header};
use axum::routing::{get, post};
use axum::{Router, middleware};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::gate::{BrowserGate, Endpoint};
use crate::state::AppState;
use crate::{limits, routes};

/// How long a browser may cache a preflight answer (Chromium caps it at 2 h).
pub const CORS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The request headers a browser may send cross-origin (a preflight's
/// `access-control-allow-headers`).
pub const CORS_ALLOW_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("mcp-protocol-version"),
];

/// CORS for endpoints a browser-based MCP host calls directly (discovery,
/// JWKS, token, revocation, registration): any origin, and never
/// credentials — these endpoints authenticate with what the request body
/// or `Authorization` header carries, not cookies, so `*` grants a page
/// nothing it could not do from a server. `/authorize` (cookies, a person)
/// and `/introspect` (resource servers only) never get it.
pub fn browser_cors(methods: &[Method]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(methods.to_vec())
        .allow_headers(CORS_ALLOW_HEADERS)
        .max_age(CORS_MAX_AGE)
}

/// The oauth-server's HTTP surface (DESIGN.md §5).
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    let ip_limit = || middleware::from_fn_with_state(state.clone(), limits::ip_limit);
    // Client-authenticated endpoints a browser may call (a public client in
    // a web page): CORS outside the per-IP budget, so a preflight costs
    // nothing and a 429 is readable by the page. One service each
    // (gate.rs): the hot path of issue 15.
    let browser_api = Router::new()
        .route_service("/token", BrowserGate::new(state.clone(), Endpoint::Token))
        .route_service("/revoke", BrowserGate::new(state.clone(), Endpoint::Revoke));
    // RFC 7591 registration from browser-based hosts too; its own per-IP
    // budget inside (rl:reg:{ip}); 404 when OAUTH_REGISTRATION=off.
    let registration = Router::new()
        .route("/register", post(routes::register::register))
        .layer(browser_cors(&[Method::POST, Method::OPTIONS]));
    let introspection = Router::new()
        .route("/introspect", post(routes::introspect::introspect))
        .route_layer(ip_limit());
    // The interactive flow: pages for people, outside the client-authenticated
    // group. A per-IP budget on both methods (GET stores a pending request,
    // POST checks passwords), answered with an HTML 429 page; failed
    // sign-ins cost the IP and the username more (routes/authorize.rs).
    let authorize = get(routes::authorize::show)
        .post(routes::authorize::submit)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            routes::authorize::ip_budget,
        ));
    let documents = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::metadata::metadata),
        )
        .route("/jwks", get(routes::jwks::jwks))
        .route("/.well-known/jwks.json", get(routes::jwks::jwks))
        .layer(browser_cors(&[Method::GET, Method::OPTIONS]));
    Router::new()
        .merge(browser_api)
        .merge(registration)
        .merge(introspection)
        .merge(documents)
        .route("/authorize", authorize)
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .layer(
            // Spans carry the matched route, never headers or bodies. Debug
            // level, as in mcp-server: at info a request is one audit line.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", axum::extract::MatchedPath::as_str);
                let span = tracing::debug_span!("http", method = %req.method(), route);
                // Continue the caller's W3C trace (no-op unless traces are on).
                server_kit::telemetry::continue_trace(&span, req.headers());
                span
            }),
        )
        .layer(server_kit::metrics::TrackLayer::new(http_metrics))
        .with_state(state)
}
