//! Rate limits on `/mcp` (DESIGN.md §6; the budgets are
//! [`crate::limits::Limits`]), in two places:
//!
//! - **Before token verification** (in the [`bearer`](super::bearer) layer):
//!   every failed authentication costs its address one unit of a small
//!   in-process budget (`rl:ip:{addr}`); once it is spent, that address gets
//!   429 without its token being parsed, so a flood of forged tokens cannot
//!   burn the signature-verification CPU.
//! - **After the scope check** ([`limit`], this step): the per-client budget
//!   `rl:{client_id}` (`rl:{client_id}:{sub}` for a user token, so the users
//!   of one public host each get a budget), `tools/call` weighing `RATE_LIMIT_TOOL_CALL_COST`.
//!   Every answer carries `RateLimit-Policy` / `RateLimit`; a denial is HTTP
//!   429 with `Retry-After` and a JSON-RPC error body echoing the request id
//!   (never a JSON-RPC 200), a failed limiter in `closed` mode is 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use ratelimit::{Decision, headers};

use crate::audit::{AuditEvent, AuditLog, names};
use crate::error::{Budget, McpHttpError};
use crate::jsonrpc;
use crate::limits::{Limits, POLICY_NAME};
use crate::middleware::{body, scope};
use crate::policy::{Caller, Operation};
use crate::state::AppState;

/// What this step needs.
#[derive(Clone)]
pub struct RateLimitState {
    limits: Arc<Limits>,
    audit: Arc<AuditLog>,
}

impl RateLimitState {
    pub fn new(state: &AppState) -> Self {
        Self {
            limits: state.limits().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// Charges `caller`'s budget (its `principal`, [`Caller::principal`]) for
/// `op` (after authentication and scope).
/// `Ok`: served, with [`add_headers`] on whatever answer follows; a denial
/// echoes the request id, from `body` when step 3 read it (a POST), else
/// from the first bytes of `req`'s body.
pub async fn limit(
    state: &RateLimitState,
    caller: &Caller,
    principal: &str,
    op: &Operation,
    peer: Option<SocketAddr>,
    req: &mut Request,
    read: Option<&Bytes>,
) -> Result<Decision, McpHttpError> {
    let limits = &state.limits;
    let refused = match limits.check_client(principal, op.is_tool_call()).await {
        Ok(d) if d.allowed => return Ok(d),
        refused => refused,
    };
    // A body rmcp cannot read gets that answer before any refusal, as when
    // it was checked first (scope::readable); it is not a rate-limit event.
    scope::readable(read)?;
    match refused {
        Ok(decision) => {
            let mut event = AuditEvent::new(names::RATE_LIMITED, "denied")
                .client(caller.client_id())
                .subject(caller.sub())
                .reason("client_budget");
            if let Some(t) = op.target() {
                event = event.tool(t);
            }
            state.audit.record(event);
            if let Some(peer) = peer {
                tracing::debug!(peer = %limits.client_ip(peer, req.headers()), "rate limited");
            }
            // Looked for only now: a served request never pays for the id.
            let id = request_id(req, read).await;
            Err(McpHttpError::RateLimited {
                budget: Budget::Client,
                policy: *limits.policy(),
                decision,
                id,
            })
        }
        Err(error) => {
            tracing::error!(error = %error, "rate limiter unavailable (closed mode); refusing");
            let id = request_id(req, read).await;
            Err(McpHttpError::RateLimiterUnavailable { error, id })
        }
    }
}

/// `RateLimit-Policy` / `RateLimit` on a served request's answer (what
/// `ratelimit::headers::insert` writes for an allowed decision, with the
/// policy's value built once).
pub fn add_headers(state: &RateLimitState, resp: &mut Response, decision: &Decision) {
    let h = resp.headers_mut();
    h.insert(
        headers::RATELIMIT_POLICY,
        state.limits.policy_header().clone(),
    );
    h.insert(
        headers::RATELIMIT,
        headers::ratelimit_value(POLICY_NAME, decision),
    );
}

async fn request_id(req: &mut Request, read: Option<&Bytes>) -> Option<jsonrpc::RequestId> {
    match read {
        Some(bytes) => body::buffered_request_id(bytes),
        None => body::request_id(std::mem::take(req.body_mut())).await,
    }
}
