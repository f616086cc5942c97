//! Step 2 on `/mcp`: the bearer access token (RFC 6750 header method
//! only).
//!
//! An address whose failed-authentication budget is spent
//! ([`Limits::auth_failures_exhausted`]) gets 429 before its token is parsed.
//!
//! The token goes through `auth::Verifier` (signature with a pre-parsed key
//! from the cached JWKS, `typ`, `iss`, `aud`, `exp`/`nbf`, `scope`; a token
//! already verified under the current key set is a cache hit whose times are
//! checked again) and the revocation set, checked on every request in memory
//! (with Redis, `server_kit::revocations` keeps it in step by push: no
//! Redis round trip here). On success the [`Caller`] is returned; the gate
//! puts it in the request extensions, where rmcp hands it to the tool
//! handlers inside `http::request::Parts`. Any failure is a 401 with the RFC 9728 challenge
//! (a malformed or refused token is charged to the address); the precise reason goes to the audit log
//! only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use auth::Verifier;
use http::HeaderMap;
use server_kit::store::RevocationStore;

use crate::audit::{AuditEvent, AuditLog, names};
use crate::challenge::Challenges;
use crate::error::{Budget, McpHttpError};
use crate::limits::Limits;
use crate::policy::Caller;
use crate::state::AppState;

/// What this step needs.
#[derive(Clone)]
pub struct BearerState {
    verifier: Arc<Verifier>,
    revocations: Arc<dyn RevocationStore>,
    /// `REVOCATION_FAILURE_MODE=open`.
    revocation_fail_open: bool,
    challenges: Arc<Challenges>,
    limits: Arc<Limits>,
    audit: Arc<AuditLog>,
}

impl BearerState {
    pub fn new(state: &AppState) -> Self {
        Self {
            verifier: state.verifier().clone(),
            revocations: state.revocations().clone(),
            revocation_fail_open: state.revocation_fail_open(),
            challenges: state.challenges().clone(),
            limits: state.limits().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// Longest `Authorization` value looked at (a JWT we issue is well under this).
const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// What the `Authorization` header held.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    /// No credentials for us (absent, or another scheme).
    Nothing,
    /// A bearer token (not yet verified).
    Token(&'a str),
    /// Something that claims to be a bearer token but cannot be one.
    Malformed,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Malformed;
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Presented::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Presented::Malformed;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Nothing;
    }
    let token = rest.trim_start_matches(' ');
    // RFC 6750 §2.1 b64token.
    let b64token = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if b64token {
        Presented::Token(token)
    } else {
        Presented::Malformed
    }
}

/// Authenticates a request from `peer` with `headers`, or answers 401 (503
/// when the revocation set is stale beyond `REVOCATION_MAX_STALENESS_SECS`
/// and the failure mode is closed: refusing is safer than guessing).
pub async fn authenticate(
    state: &BearerState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Caller, McpHttpError> {
    let started = Instant::now();
    let reject = |reason: &'static str, token_sent: bool| {
        state.audit.record(
            AuditEvent::new(names::TOKEN_REJECTED, "rejected")
                .reason(reason)
                .latency(started.elapsed()),
        );
        state.challenges.unauthorized(token_sent)
    };
    // Addresses that keep sending bad tokens are refused before any
    // signature is checked (crate::limits).
    let limits = &state.limits;
    let ip = peer.map(|peer| limits.client_ip(peer, headers));
    if let Some(ip) = ip
        && let Some(decision) = limits.auth_failures_exhausted(ip).await
    {
        state
            .audit
            .record(AuditEvent::new(names::RATE_LIMITED, "denied").reason("auth_failures"));
        // The id stays unknown (null): reading an unauthenticated body would
        // spend on the flood what this budget exists to save.
        return Err(McpHttpError::RateLimited {
            budget: Budget::AuthFailures,
            policy: *limits.auth_failure_policy(),
            decision,
            id: None,
        });
    }
    let charge = || async {
        if let Some(ip) = ip {
            limits.charge_auth_failure(ip).await;
        }
    };
    let token = match presented(headers) {
        // Not a failure: a bare request is how discovery starts.
        Presented::Nothing => return Err(reject("missing_token", false)),
        Presented::Malformed => {
            charge().await;
            return Err(reject("malformed_authorization", true));
        }
        Presented::Token(t) => t,
    };
    let claims = match state.verifier.verify_shared(token).await {
        Ok(claims) => claims,
        Err(e) => {
            charge().await;
            return Err(reject(e.reason(), true));
        }
    };
    match state.revocations.is_revoked(&claims.jti).await {
        Ok(false) => {}
        Ok(true) => {
            charge().await;
            state.audit.record(
                AuditEvent::new(names::TOKEN_REJECTED, "rejected")
                    .client(&claims.client_id)
                    .subject(&claims.sub)
                    .reason("revoked")
                    .latency(started.elapsed()),
            );
            return Err(state.challenges.unauthorized(true));
        }
        Err(e) if state.revocation_fail_open => {
            tracing::warn!(error = %e, "revocation check failed; accepting the token (REVOCATION_FAILURE_MODE=open)");
            state.audit.record(
                AuditEvent::new(names::REVOCATION_UNCHECKED, "accepted")
                    .client(&claims.client_id)
                    .subject(&claims.sub)
                    .reason("revocation_store_unavailable"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "revocation check failed; refusing the request");
            state.audit.record(
                AuditEvent::new(names::TOKEN_REJECTED, "unavailable")
                    .client(&claims.client_id)
                    .subject(&claims.sub)
                    .reason("revocation_store_unavailable")
                    .latency(started.elapsed()),
            );
            return Err(McpHttpError::RevocationUnavailable);
        }
    }
    tracing::Span::current().record("client_id", claims.client_id.as_str());
    Ok(Caller::from_shared(claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn parses_the_authorization_header() {
        assert_eq!(presented(&auth(&[])), Presented::Nothing);
        assert_eq!(
            presented(&auth(&["Basic dXNlcjpwYXNz"])),
            Presented::Nothing
        );
        assert_eq!(
            presented(&auth(&["Bearer abc.def.ghi"])),
            Presented::Token("abc.def.ghi")
        );
        assert_eq!(
            presented(&auth(&["bearer abc.def-_~+/=="])),
            Presented::Token("abc.def-_~+/==")
        );
        assert_eq!(presented(&auth(&["BEARER   abc"])), Presented::Token("abc"));
        assert_eq!(presented(&auth(&["Bearer"])), Presented::Malformed);
        assert_eq!(presented(&auth(&["Bearer "])), Presented::Malformed);
        assert_eq!(presented(&auth(&["Bearer a b"])), Presented::Malformed);
        assert_eq!(presented(&auth(&["Bearer a\"b"])), Presented::Malformed);
        assert_eq!(
            presented(&auth(&["Bearer a", "Bearer b"])),
            Presented::Malformed
        );
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(presented(&auth(&[&long])), Presented::Malformed);
    }
}
