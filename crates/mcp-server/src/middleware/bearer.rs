//! Second wall: the bearer access token (RFC 6750 header method only).
//!
//! The token goes through `auth::Verifier` (signature with a pre-parsed key
//! from the cached JWKS, `typ`, `iss`, `aud`, `exp`/`nbf`, `scope`; a token
//! already verified under the current key set is a cache hit whose times are
//! checked again) and the revocation denylist, which is asked on every
//! request. On success the [`Caller`] is put in the request
//! extensions, where rmcp hands it to the tool handlers inside
//! `http::request::Parts`. Any failure is a 401 with the RFC 9728 challenge;
//! the precise reason goes to the audit log only.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::audit::{AuditEvent, names};
use crate::middleware::challenge;
use crate::policy::Caller;
use crate::state::AppState;

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

/// Middleware: authenticates the request or answers 401 (503 when the
/// revocation store cannot be asked: refusing is safer than guessing).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let reject = |reason: &'static str, token_sent: bool| {
        state.audit().record(
            AuditEvent::new(names::TOKEN_REJECTED, "rejected")
                .reason(reason)
                .latency(started.elapsed()),
        );
        challenge::unauthorized(&state, token_sent)
    };
    // Addresses that keep sending bad tokens are refused before any
    // signature is checked (rate_limit.rs).
    let limits = state.limits();
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| limits.client_ip(c.0, req.headers()));
    if let Some(ip) = ip
        && let Some(d) = limits.auth_failures_exhausted(ip).await
    {
        state
            .audit()
            .record(AuditEvent::new(names::RATE_LIMITED, "denied").reason("auth_failures"));
        return limits.auth_failures_response(&d);
    }
    let charge = || async {
        if let Some(ip) = ip {
            limits.charge_auth_failure(ip).await;
        }
    };
    let token = match presented(req.headers()) {
        // Not a failure: a bare request is how discovery starts.
        Presented::Nothing => return reject("missing_token", false),
        Presented::Malformed => {
            charge().await;
            return reject("malformed_authorization", true);
        }
        Presented::Token(t) => t,
    };
    let claims = match state.verifier().verify_shared(token).await {
        Ok(claims) => claims,
        Err(e) => {
            charge().await;
            return reject(e.reason(), true);
        }
    };
    match state.revocations().is_revoked(&claims.jti).await {
        Ok(false) => {}
        Ok(true) => {
            charge().await;
            state.audit().record(
                AuditEvent::new(names::TOKEN_REJECTED, "rejected")
                    .client(&claims.client_id)
                    .reason("revoked")
                    .latency(started.elapsed()),
            );
            return challenge::unauthorized(&state, true);
        }
        Err(e) if state.revocation_fail_open() => {
            tracing::warn!(error = %e, "revocation check failed; accepting the token (REVOCATION_FAILURE_MODE=open)");
            state.audit().record(
                AuditEvent::new(names::REVOCATION_UNCHECKED, "accepted")
                    .client(&claims.client_id)
                    .reason("revocation_store_unavailable"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "revocation check failed; refusing the request");
            state.audit().record(
                AuditEvent::new(names::TOKEN_REJECTED, "unavailable")
                    .client(&claims.client_id)
                    .reason("revocation_store_unavailable")
                    .latency(started.elapsed()),
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (http::header::RETRY_AFTER, "5"),
                    (http::header::CACHE_CONTROL, "no-store"),
                ],
                axum::Json(serde_json::json!({
                    "error": "temporarily_unavailable",
                    "error_description": "The token could not be checked; retry shortly",
                })),
            )
                .into_response();
        }
    }
    tracing::Span::current().record("client_id", claims.client_id.as_str());
    req.extensions_mut().insert(Caller::from_shared(claims));
    next.run(req).await
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
