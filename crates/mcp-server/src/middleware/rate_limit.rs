//! Rate limits on `/mcp` (DESIGN.md §6; the budgets are
//! [`crate::limits::Limits`]), in two places:
//!
//! - **Before token verification** (in the [`bearer`](super::bearer) layer):
//!   every failed authentication costs its address one unit of a small
//!   in-process budget (`rl:ip:{addr}`); once it is spent, that address gets
//!   429 without its token being parsed, so a flood of forged tokens cannot
//!   burn the signature-verification CPU.
//! - **After the scope check** ([`limit`], this layer): the per-client budget
//!   `rl:{client_id}` (`rl:{client_id}:{sub}` for a user token, so the users
//!   of one public host each get a budget), `tools/call` weighing `RATE_LIMIT_TOOL_CALL_COST`.
//!   Every answer carries `RateLimit-Policy` / `RateLimit`; a denial is HTTP
//!   429 with `Retry-After` and a JSON-RPC error body echoing the request id
//!   (never a JSON-RPC 200), a failed limiter in `closed` mode is 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ratelimit::headers;

use crate::audit::{AuditEvent, AuditLog, names};
use crate::error::{Budget, McpHttpError};
use crate::limits::{Limits, POLICY_NAME};
use crate::middleware::body;
use crate::policy::{Caller, Operation};
use crate::state::AppState;

/// What this layer needs.
#[derive(Clone)]
pub struct RateLimitState {
    limits: Arc<Limits>,
    audit: Arc<AuditLog>,
}

impl FromRef<AppState> for RateLimitState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            limits: state.limits().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// Middleware: the per-client budget (after authentication and scope).
pub async fn limit(
    State(state): State<RateLimitState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Result<Response, McpHttpError> {
    let limits = &state.limits;
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        // The bearer layer always runs first; without a caller there is
        // nothing to charge (and nothing will be served).
        return Ok(next.run(req).await);
    };
    let op = req.extensions().get::<Operation>();
    let tool_call = op.is_some_and(Operation::is_tool_call);
    match limits.check_client(&caller.principal(), tool_call).await {
        Ok(d) if d.allowed => {
            let mut resp = next.run(req).await;
            headers::insert(resp.headers_mut(), POLICY_NAME, limits.policy(), &d);
            Ok(resp)
        }
        Ok(decision) => {
            let mut event = AuditEvent::new(names::RATE_LIMITED, "denied")
                .client(caller.client_id())
                .subject(caller.sub())
                .reason("client_budget");
            if let Some(t) = op.and_then(Operation::target) {
                event = event.tool(t);
            }
            state.audit.record(event);
            tracing::debug!(peer = %limits.client_ip(peer, req.headers()), "rate limited");
            // Read only now: a served request never pays for the id.
            let id = body::request_id(req.into_body()).await;
            Err(McpHttpError::RateLimited {
                budget: Budget::Client,
                policy: *limits.policy(),
                decision,
                id,
            })
        }
        Err(error) => {
            tracing::error!(error = %error, "rate limiter unavailable (closed mode); refusing");
            let id = body::request_id(req.into_body()).await;
            Err(McpHttpError::RateLimiterUnavailable { error, id })
        }
    }
}
