//! Brute-force protection for the client-authenticated endpoints (`/token`,
//! `/revoke`, `/introspect`), DESIGN.md §6:
//!
//! 1. before anything else, `rl:ip:{ip}` (cost 1) — floods never reach the
//!    secret hashing;
//! 2. a failed client authentication costs its IP `OAUTH_FAILED_AUTH_COST`
//!    more units, so guessing secrets runs out of budget fast;
//! 3. after authentication, `rl:oauth:{client_id}` (cost 1) — one client
//!    cannot monopolise the server from many addresses;
//! 4. at the `/authorize` login form, the same per-IP key, and
//!    `rl:login:{username}` (cost 1 per attempt, `OAUTH_FAILED_AUTH_COST`
//!    more per failure) — one account cannot be guessed at from many
//!    addresses. Those denials are an HTML 429 page (routes/authorize.rs).
//!
//! Denials are `429` with `Retry-After`, the draft IETF `RateLimit` headers
//! and an RFC 6749-style JSON body (`slow_down`); a failed limiter in
//! `closed` mode is `503`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ratelimit::{Decision, Limiter, LimiterError, Policy, TrustedProxies, headers};

use crate::error::{ErrorCode, OAuthError};
use crate::state::AppState;

/// Policy name in the `RateLimit*` headers.
const POLICY_NAME: &str = "oauth";

/// The caller's address after `TRUSTED_PROXIES` processing.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub struct Limits {
    /// Counts every decision (`securemcp_ratelimit_decisions_total`).
    pub metrics: Arc<crate::metrics::OAuthMetrics>,
    pub limiter: Arc<dyn Limiter>,
    pub policy: Policy,
    pub failed_auth_cost: u32,
    pub trusted: TrustedProxies,
    /// `RateLimit-Policy` of `policy`, formatted once: every answer behind
    /// [`ip_limit`] carries it.
    policy_header: HeaderValue,
}

impl Limits {
    /// The limits of one server, `policy` for every oauth budget.
    pub fn new(
        metrics: Arc<crate::metrics::OAuthMetrics>,
        limiter: Arc<dyn Limiter>,
        policy: Policy,
        failed_auth_cost: u32,
        trusted: TrustedProxies,
    ) -> Self {
        let policy_header = headers::policy_value(POLICY_NAME, &policy);
        Self {
            metrics,
            limiter,
            policy,
            failed_auth_cost,
            trusted,
            policy_header,
        }
    }

    /// The `RateLimit-Policy` and `RateLimit` headers of an allowed request
    /// (what [`headers::insert`] writes, the policy not formatted again).
    fn insert_allowed(&self, h: &mut HeaderMap, d: &Decision) {
        h.insert(headers::RATELIMIT_POLICY, self.policy_header.clone());
        h.insert(headers::RATELIMIT, headers::ratelimit_value(POLICY_NAME, d));
    }

    /// One check of `key` against the oauth budget (`/authorize` charges its
    /// per-IP key through it).
    pub async fn check(&self, key: &str, cost: u32) -> Result<Decision, LimiterError> {
        self.limiter.check(key, cost, &self.policy).await
    }

    /// Records one decision of `limiter` (`allowed` / `limited`).
    pub fn record(&self, limiter: &'static str, d: &Decision) {
        self.metrics
            .ratelimit
            .decided(limiter, if d.allowed { "allowed" } else { "limited" });
    }

    /// Charges a failed authentication to the caller's address.
    pub async fn penalize(&self, ip: IpAddr) {
        if let Err(e) = self
            .check(&format!("rl:ip:{ip}"), self.failed_auth_cost)
            .await
        {
            tracing::warn!(error = %e, "rate limiter unavailable while charging a failed authentication");
        }
    }

    /// A sign-in attempt for `username` at /authorize (cost 1), checked
    /// before its password is: a guessed-at account is limited from every
    /// address at once.
    pub async fn check_login(&self, username: &str) -> Result<Decision, LimiterError> {
        let d = self.check(&login_key(username), 1).await?;
        self.record("login", &d);
        Ok(d)
    }

    /// Charges a failed sign-in to the username (the IP pays through
    /// [`Limits::penalize`]).
    pub async fn penalize_login(&self, username: &str) {
        if let Err(e) = self
            .check(&login_key(username), self.failed_auth_cost)
            .await
        {
            tracing::warn!(error = %e, "rate limiter unavailable while charging a failed sign-in");
        }
    }

    /// The per-client check after a successful authentication.
    pub async fn check_client(&self, client_id: &str, ip: IpAddr) -> Result<(), OAuthError> {
        let decision = self.check(&format!("rl:oauth:{client_id}"), 1).await;
        if let Ok(d) = &decision {
            self.record("client", d);
        }
        match decision {
            Ok(d) if d.allowed => Ok(()),
            Ok(d) => {
                limited("client", Some(client_id), ip, &d);
                Err(self.too_many(&d))
            }
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// The per-IP registration budget (`rl:reg:{ip}`), apart from the token
    /// endpoints' so registering cannot starve sign-ins or the other way round.
    /// Answers only `Retry-After`: the policy is kept in cost-scaled units
    /// (see `RegistrationConfig::rate_policy`) that `RateLimit` headers
    /// would misstate.
    pub async fn check_registration(
        &self,
        ip: IpAddr,
        policy: &Policy,
        cost: u32,
    ) -> Result<(), OAuthError> {
        let decision = self
            .limiter
            .check(&format!("rl:reg:{ip}"), cost, policy)
            .await;
        if let Ok(d) = &decision {
            self.record("registration", d);
        }
        match decision {
            Ok(d) if d.allowed => Ok(()),
            Ok(d) => {
                limited("registration", None, ip, &d);
                let mut h = HeaderMap::new();
                h.insert(
                    axum::http::header::RETRY_AFTER,
                    headers::retry_after_value(d.retry_after),
                );
                Err(OAuthError::new(
                    ErrorCode::SlowDown,
                    format!(
                        "too many registrations from this address; retry after {} s",
                        headers::retry_after_secs(d.retry_after)
                    ),
                )
                .with_status(StatusCode::TOO_MANY_REQUESTS)
                .with_headers(h))
            }
            Err(e) => Err(unavailable(&e)),
        }
    }

    fn too_many(&self, d: &Decision) -> OAuthError {
        let mut h = HeaderMap::new();
        headers::insert(&mut h, POLICY_NAME, &self.policy, d);
        OAuthError::new(
            ErrorCode::SlowDown,
            format!(
                "too many requests; retry after {} s",
                headers::retry_after_secs(d.retry_after)
            ),
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_headers(h)
    }
}

/// `rl:login:{username}`, the name cut to 64 characters (the key stays small
/// whatever is typed; longer names are never valid users).
fn login_key(username: &str) -> String {
    let cut: String = username.chars().take(64).collect();
    format!("rl:login:{cut}")
}

fn unavailable(e: &LimiterError) -> OAuthError {
    tracing::error!(error = %e, "rate limiter unavailable (closed mode)");
    let mut h = HeaderMap::new();
    headers::insert_unavailable(&mut h, e);
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "temporarily unavailable; retry later",
    )
    .with_headers(h)
}

fn limited(limiter: &'static str, client_id: Option<&str>, ip: IpAddr, d: &Decision) {
    crate::audit::rate_limited(limiter, client_id, ip, d.retry_after);
}

/// Middleware (`/introspect`): resolve the client address, apply the
/// per-IP budget, and add the `RateLimit` headers to whatever the handler
/// answers. `/token` and `/revoke` take the same steps in [`crate::gate`].
pub async fn ip_limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let limits = &state.limits;
    let ip = limits.trusted.client_ip(peer, req.headers());
    req.extensions_mut().insert(ClientIp(ip));
    match limits.check_ip(ip).await {
        Ok(d) => {
            let mut resp = next.run(req).await;
            limits.add_headers(&mut resp, &d);
            resp
        }
        Err(refused) => refused,
    }
}

impl Limits {
    /// The per-IP budget (`rl:ip:{ip}`, cost 1): the decision of an allowed
    /// request, or the answer to a refused one (429, or 503 in `closed` mode).
    pub async fn check_ip(&self, ip: IpAddr) -> Result<Decision, Response> {
        let decision = self.check(&format!("rl:ip:{ip}"), 1).await;
        if let Ok(d) = &decision {
            self.record("ip", d);
        }
        match decision {
            Ok(d) if d.allowed => Ok(d),
            Ok(d) => {
                limited("ip", None, ip, &d);
                Err(self.too_many(&d).into_response())
            }
            Err(e) => Err(unavailable(&e).into_response()),
        }
    }

    /// The `RateLimit` headers of an allowed per-IP check on the answer
    /// behind it, unless that answer has its own (the per-client 429).
    pub fn add_headers(&self, resp: &mut Response, d: &Decision) {
        if !resp.headers().contains_key(headers::RATELIMIT) {
            self.insert_allowed(resp.headers_mut(), d);
        }
    }
}
