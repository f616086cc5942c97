//! `GET /jwks` and `/.well-known/jwks.json`: every key that may still have
//! live tokens (pre-serialised per key ring).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.keys.ring().jwks_body.clone();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            // Short: verifiers refetch on an unknown kid anyway.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}
