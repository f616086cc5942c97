//! Every route and the middleware stack, in one place.

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::routes;
use crate::state::AppState;

/// The oauth-server's HTTP surface (DESIGN.md §5).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/token", post(routes::token::token))
        .route("/revoke", post(routes::revoke::revoke))
        .route("/introspect", post(routes::introspect::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(routes::metadata::metadata),
        )
        .route("/jwks", get(routes::jwks::jwks))
        .route("/.well-known/jwks.json", get(routes::jwks::jwks))
        .route("/health", get(routes::health::health))
        .layer(
            // Spans carry the matched route, never headers or bodies.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or("unmatched", axum::extract::MatchedPath::as_str);
                tracing::info_span!("http", method = %req.method(), route)
            }),
        )
        .with_state(state)
}
