//! `GET /health`: liveness for load balancers and the `healthcheck`
//! subcommand. No authentication and no details.

use axum::Json;
use axum::response::IntoResponse;
use http::header;

pub async fn health() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"status": "ok"})),
    )
}
