//! The two rate limits of `/mcp` (DESIGN.md §6) and their policies; the
//! [`rate_limit`](crate::middleware::rate_limit) layer and the
//! [`bearer`](crate::middleware::bearer) layer ask them.
//!
//! - **Failed authentications per address** (`rl:ip:{addr}`): a small
//!   in-process budget, deliberately per replica: it protects this process's
//!   signature-verification CPU and costs no Redis round trip.
//! - **Per client** (`rl:{client_id}`, and `rl:{client_id}:{sub}` for a
//!   user token, each part percent-encoded:
//!   [`Caller::principal`](crate::policy::Caller::principal)): the configured
//!   limiter (Redis when `REDIS_URL` is set, so all replicas share one
//!   budget), `tools/call` weighing `RATE_LIMIT_TOOL_CALL_COST`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use ratelimit::{
    Decision, Limiter, LimiterError, MemoryLimiter, Policy, RateLimitConfig, TrustedProxies,
};
use server_kit::metrics::RateLimitMetrics;

/// Policy name in the `RateLimit-Policy` / `RateLimit` headers.
pub const POLICY_NAME: &str = "mcp";

/// The limiters and their policies.
pub struct Limits {
    limiter: Arc<dyn Limiter>,
    policy: Policy,
    /// `RateLimit-Policy` of `policy`, on every served answer: built once.
    policy_header: HeaderValue,
    tool_call_cost: u32,
    auth_failures: MemoryLimiter,
    auth_failure_policy: Policy,
    trusted: TrustedProxies,
    /// Counts the failed-authentication budget's decisions (the per-client
    /// limiter counts its own: `server_kit::redis::build_limiter_metered`).
    metrics: Option<RateLimitMetrics>,
}

/// The `limiter` label of the per-client budget.
pub const CLIENT_LIMITER: &str = "client";
/// The `limiter` label of the failed-authentication budget.
pub const AUTH_FAILURES_LIMITER: &str = "auth_failures";

impl Limits {
    pub fn new(
        limiter: Arc<dyn Limiter>,
        config: &RateLimitConfig,
        auth_failure_policy: Policy,
    ) -> Self {
        Self {
            limiter,
            policy: config.policy,
            policy_header: ratelimit::headers::policy_value(POLICY_NAME, &config.policy),
            tool_call_cost: config.tool_call_cost,
            auth_failures: MemoryLimiter::new(),
            auth_failure_policy,
            trusted: config.trusted_proxies.clone(),
            metrics: None,
        }
    }

    /// Counts each failed-authentication budget look in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: RateLimitMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The per-client policy (`RATE_LIMIT_PER_MINUTE`, `RATE_LIMIT_BURST`).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The `RateLimit-Policy` value of [`Limits::policy`].
    pub fn policy_header(&self) -> &HeaderValue {
        &self.policy_header
    }

    /// The failed-authentication policy.
    pub fn auth_failure_policy(&self) -> &Policy {
        &self.auth_failure_policy
    }

    /// The caller's address after `TRUSTED_PROXIES` processing.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted.client_ip(peer, headers)
    }

    /// Charges one request of `principal` (a
    /// [`Caller::principal`](crate::policy::Caller::principal); a `tools/call`
    /// weighs more).
    pub async fn check_client(
        &self,
        principal: &str,
        tool_call: bool,
    ) -> Result<Decision, LimiterError> {
        let cost = if tool_call { self.tool_call_cost } else { 1 };
        let mut key = String::with_capacity(3 + principal.len());
        key.push_str("rl:");
        key.push_str(principal);
        self.limiter.check(&key, cost, &self.policy).await
    }

    /// `Some(decision)` when `ip` has used up its failed-authentication
    /// budget (a zero-cost look, nothing is spent).
    pub async fn auth_failures_exhausted(&self, ip: IpAddr) -> Option<Decision> {
        let exhausted = self.auth_failures_look(ip);
        if let Some(m) = &self.metrics {
            let decision = if exhausted.is_some() {
                "limited"
            } else {
                "allowed"
            };
            m.decided(AUTH_FAILURES_LIMITER, decision);
        }
        exhausted
    }

    fn auth_failures_look(&self, ip: IpAddr) -> Option<Decision> {
        let key = format!("rl:ip:{ip}");
        // The in-memory limiter's own call, not the `Limiter` trait's boxed
        // future: this look runs on every request.
        let mut d = self
            .auth_failures
            .check_now(&key, 0, &self.auth_failure_policy);
        if d.allowed && d.remaining > 0 {
            return None;
        }
        // A zero-cost look reports "allowed, 0 left"; the wait for the
        // next unit is the time to full minus the other burst-1 units.
        let p = &self.auth_failure_policy;
        let others = p.emission_interval() * p.burst().saturating_sub(1);
        d.retry_after = d.reset_after.saturating_sub(others).max(d.retry_after);
        d.allowed = false;
        Some(d)
    }

    /// Charges one failed authentication to `ip`.
    pub async fn charge_auth_failure(&self, ip: IpAddr) {
        let key = format!("rl:ip:{ip}");
        let _ = self
            .auth_failures
            .check(&key, 1, &self.auth_failure_policy)
            .await;
    }
}
