//! `GET /health`: liveness for load balancers and the `healthcheck`
//! subcommand. No authentication and no details.
//!
//! `GET /ready`: readiness, whether Redis and the revocation subscription
//! answer ([`server_kit::ready`]): 200 `{"status":"ready",...}` or 503
//! `{"status":"degraded",...}` naming what is down. No authentication, no
//! addresses.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{StatusCode, header};

use crate::state::AppState;

pub async fn health() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"status": "ok"})),
    )
}

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, body) = state.readiness().report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body))
}
