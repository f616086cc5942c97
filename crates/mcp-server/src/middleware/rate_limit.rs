//! Rate limits on `/mcp` (DESIGN.md §6), in two places:
//!
//! - **Before token verification** ([`Limits::auth_failures_exhausted`],
//!   [`Limits::charge_auth_failure`], called by the bearer layer): every
//!   failed authentication costs its address one unit of a small in-process
//!   budget (`rl:ip:{addr}`); once it is spent, that address gets 429 without
//!   its token being parsed, so a flood of forged tokens cannot burn the
//!   signature-verification CPU. It is deliberately per replica: it protects
//!   this process's CPU, and costs no Redis round trip.
//! - **After the scope check** ([`limit`]): the per-client budget
//!   `rl:{client_id}` on the configured limiter (Redis when `REDIS_URL` is
//!   set, so all replicas share one budget), `tools/call` weighing
//!   `RATE_LIMIT_TOOL_CALL_COST`. Every answer carries `RateLimit-Policy` /
//!   `RateLimit`; a denial is HTTP 429 with `Retry-After` and a JSON-RPC error
//!   body (never a JSON-RPC 200), a failed limiter in `closed` mode is 503.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use ratelimit::{
    Decision, Limiter, LimiterError, MemoryLimiter, Policy, RateLimitConfig, TrustedProxies,
    headers,
};
use serde_json::json;

use crate::audit::{AuditEvent, names};
use crate::policy::{Caller, Operation};
use crate::state::AppState;

/// Policy name in the `RateLimit*` headers.
const POLICY_NAME: &str = "mcp";

/// The limiters and their policies.
pub struct Limits {
    limiter: Arc<dyn Limiter>,
    policy: Policy,
    tool_call_cost: u32,
    auth_failures: MemoryLimiter,
    auth_failure_policy: Policy,
    trusted: TrustedProxies,
}

impl Limits {
    pub fn new(
        limiter: Arc<dyn Limiter>,
        config: &RateLimitConfig,
        auth_failure_policy: Policy,
    ) -> Self {
        Self {
            limiter,
            policy: config.policy,
            tool_call_cost: config.tool_call_cost,
            auth_failures: MemoryLimiter::new(),
            auth_failure_policy,
            trusted: config.trusted_proxies.clone(),
        }
    }

    /// The caller's address after `TRUSTED_PROXIES` processing.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted.client_ip(peer, headers)
    }

    /// `Some(decision)` when `ip` has used up its failed-authentication
    /// budget (a zero-cost look, nothing is spent).
    pub async fn auth_failures_exhausted(&self, ip: IpAddr) -> Option<Decision> {
        let key = format!("rl:ip:{ip}");
        match self
            .auth_failures
            .check(&key, 0, &self.auth_failure_policy)
            .await
        {
            Ok(d) if d.allowed && d.remaining > 0 => None,
            Ok(mut d) => {
                // A zero-cost look reports "allowed, 0 left"; the wait for the
                // next unit is the time to full minus the other burst-1 units.
                let p = &self.auth_failure_policy;
                let others = p.emission_interval() * p.burst().saturating_sub(1);
                d.retry_after = d.reset_after.saturating_sub(others).max(d.retry_after);
                d.allowed = false;
                Some(d)
            }
            Err(_) => None,
        }
    }

    /// Charges one failed authentication to `ip`.
    pub async fn charge_auth_failure(&self, ip: IpAddr) {
        let key = format!("rl:ip:{ip}");
        let _ = self
            .auth_failures
            .check(&key, 1, &self.auth_failure_policy)
            .await;
    }

    /// 429 for an address whose failed-authentication budget is spent.
    pub fn auth_failures_response(&self, d: &Decision) -> Response {
        too_many(
            &self.auth_failure_policy,
            d,
            "too many failed authentications from this address",
        )
    }
}

fn too_many(policy: &Policy, d: &Decision, what: &str) -> Response {
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32000,
                "message": format!("{what}; retry after {} s", headers::retry_after_secs(d.retry_after)),
            },
        })),
    )
        .into_response();
    headers::insert(resp.headers_mut(), POLICY_NAME, policy, d);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn unavailable(e: &LimiterError) -> Response {
    tracing::error!(error = %e, "rate limiter unavailable (closed mode); refusing");
    let mut resp = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32000, "message": "rate limiting is unavailable; retry shortly"},
        })),
    )
        .into_response();
    headers::insert_unavailable(resp.headers_mut(), e);
    resp
}

/// Middleware: the per-client budget (after authentication and scope).
pub async fn limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let limits = state.limits();
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        // The bearer layer always runs first; without a caller there is
        // nothing to charge (and nothing will be served).
        return next.run(req).await;
    };
    let op = req.extensions().get::<Operation>();
    let cost = if op.is_some_and(Operation::is_tool_call) {
        limits.tool_call_cost
    } else {
        1
    };
    let key = format!("rl:{}", caller.client_id());
    match limits.limiter.check(&key, cost, &limits.policy).await {
        Ok(d) if d.allowed => {
            let mut resp = next.run(req).await;
            headers::insert(resp.headers_mut(), POLICY_NAME, &limits.policy, &d);
            resp
        }
        Ok(d) => {
            let mut event = AuditEvent::new(names::RATE_LIMITED, "denied")
                .client(caller.client_id())
                .reason("client_budget");
            if let Some(t) = op.and_then(Operation::target) {
                event = event.tool(t);
            }
            state.audit().record(event);
            tracing::debug!(peer = %limits.client_ip(peer, req.headers()), "rate limited");
            too_many(&limits.policy, &d, "rate limit exceeded")
        }
        Err(e) => unavailable(&e),
    }
}
