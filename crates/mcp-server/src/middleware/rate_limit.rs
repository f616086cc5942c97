//! SEAM(ratelimit): the rate limiter runs here, after the scope check and
//! before rmcp (DESIGN.md §5, §6).
//!
//! At this point the request extensions hold the authenticated
//! [`Caller`](crate::policy::Caller) (key `rl:{client_id}`) and the classified
//! [`Operation`](crate::policy::Operation) (`is_tool_call()` for weighting);
//! `axum::extract::ConnectInfo<SocketAddr>` is available for the peer address.
//! Denials should be recorded with `state.audit().record(..)` under the name
//! `ratelimit.limited`, so they show up in `security://events`.
//!
//! Until the limiter is wired in, this layer passes every request through.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Middleware: currently a pass-through (see the module docs).
pub async fn limit(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    next.run(req).await
}
