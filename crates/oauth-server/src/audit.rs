//! Audit events of the authorization server, in the one schema both servers
//! share ([`auth::audit`]): stable names, only the fields that apply, never a
//! secret or a token.

use std::net::IpAddr;

use auth::audit::{AuditEvent, names, outcome};

/// `auth.token_issued`
pub fn token_issued(
    client_id: &str,
    method: &'static str,
    scope: &str,
    aud: &str,
    jti: &str,
    peer: IpAddr,
) {
    AuditEvent::new(names::TOKEN_ISSUED, outcome::SUCCESS)
        .client(client_id)
        .endpoint("token")
        .auth_method(method)
        .scope(scope)
        .aud(aud)
        .jti(jti)
        .peer(peer)
        .emit();
}

/// `auth.client_rejected`: authentication failed or the request was refused.
pub fn client_rejected(
    client_id: Option<&str>,
    reason: &'static str,
    endpoint: &'static str,
    peer: IpAddr,
) {
    AuditEvent::new(names::CLIENT_REJECTED, outcome::DENIED)
        .client_opt(client_id)
        .reason(reason)
        .endpoint(endpoint)
        .peer(peer)
        .emit();
}

/// `auth.client_registered`: a dynamic registration (RFC 7591) was stored.
pub fn client_registered(client_id: &str, scope: &str, peer: IpAddr) {
    AuditEvent::new(names::CLIENT_REGISTERED, outcome::SUCCESS)
        .client(client_id)
        .endpoint("register")
        .scope(scope)
        .peer(peer)
        .emit();
}

/// `auth.token_revoked`
pub fn token_revoked(client_id: &str, jti: &str, peer: IpAddr) {
    AuditEvent::new(names::TOKEN_REVOKED, outcome::SUCCESS)
        .client(client_id)
        .endpoint("revoke")
        .jti(jti)
        .peer(peer)
        .emit();
}

/// `ratelimit.limited` on the token endpoints.
pub fn rate_limited(
    limiter: &'static str,
    client_id: Option<&str>,
    peer: IpAddr,
    retry_after: std::time::Duration,
) {
    AuditEvent::new(names::RATE_LIMITED, outcome::DENIED)
        .limiter(limiter)
        .client_opt(client_id)
        .peer(peer)
        .retry_after(retry_after)
        .emit();
}
