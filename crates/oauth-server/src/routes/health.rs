//! `GET /health`: liveness, no details.
//!
//! `GET /ready`: readiness, whether Redis answers ([`server_kit::ready`]):
//! 200 `{"status":"ready",...}` or 503 `{"status":"degraded","redis":"down"}`.
//! No addresses, never the Redis URL.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, body) = state.readiness.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body))
}
