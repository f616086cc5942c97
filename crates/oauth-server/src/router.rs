//! Every route and the middleware stack, in one place.

use axum::routing::{get, post};
use axum::{Router, middleware};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{limits, routes};

/// The oauth-server's HTTP surface (DESIGN.md §5).
pub fn router(state: AppState) -> Router {
    // Client-authenticated endpoints: per-IP budget first (limits.rs).
    let authenticated = Router::new()
        .route("/token", post(routes::token::token))
        .route("/revoke", post(routes::revoke::revoke))
        .route("/introspect", post(routes::introspect::introspect))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::ip_limit,
        ));
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
    Router::new()
        .merge(authenticated)
        .route("/authorize", authorize)
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::metadata::metadata),
        )
        .route("/jwks", get(routes::jwks::jwks))
        .route("/.well-known/jwks.json", get(routes::jwks::jwks))
        .route("/health", get(routes::health::health))
        .layer(
            // Spans carry the matched route, never headers or bodies. Debug
            // level, as in mcp-server: at info a request is one audit line.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", axum::extract::MatchedPath::as_str);
                tracing::debug_span!("http", method = %req.method(), route)
            }),
        )
        .with_state(state)
}
