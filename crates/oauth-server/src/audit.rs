//! Audit events of the authorization server, in the one schema both servers
//! share ([`auth::audit`]): stable names, only the fields that apply, never a
//! secret or a token.

use std::net::IpAddr;

use auth::audit::{AuditEvent, names, outcome};

/// `auth.token_issued`; `sub` is recorded when it is a user (not the client).
pub fn token_issued(
    client_id: &str,
    sub: &str,
    method: &'static str,
    scope: &str,
    aud: &str,
    jti: &str,
    peer: IpAddr,
) {
    AuditEvent::new(names::TOKEN_ISSUED, outcome::SUCCESS)
        .client(client_id)
        .subject(sub)
        .endpoint("token")
        .auth_method(method)
        .scope(scope)
        .aud(aud)
        .jti(jti)
        .peer(peer)
        .trace_id(server_kit::telemetry::current_trace_id())
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
        .trace_id(server_kit::telemetry::current_trace_id())
        .emit();
}

/// `auth.client_registered`: a dynamic registration (RFC 7591) was stored.
pub fn client_registered(client_id: &str, scope: &str, peer: IpAddr) {
    AuditEvent::new(names::CLIENT_REGISTERED, outcome::SUCCESS)
        .client(client_id)
        .endpoint("register")
        .scope(scope)
        .peer(peer)
        .trace_id(server_kit::telemetry::current_trace_id())
        .emit();
}

/// `auth.token_revoked`
pub fn token_revoked(client_id: &str, jti: &str, peer: IpAddr) {
    AuditEvent::new(names::TOKEN_REVOKED, outcome::SUCCESS)
        .client(client_id)
        .endpoint("revoke")
        .jti(jti)
        .peer(peer)
        .trace_id(server_kit::telemetry::current_trace_id())
        .emit();
}

/// `auth.code_replayed`: a redeemed code came back; `jti` is the access
/// token issued from it (now revoked), when the first exchange got that far.
pub fn code_replayed(client_id: &str, jti: Option<&str>, peer: IpAddr) {
    let mut e = AuditEvent::new(names::CODE_REPLAYED, outcome::DENIED)
        .client(client_id)
        .endpoint("token")
        .reason("code_replayed")
        .peer(peer);
    if let Some(jti) = jti {
        e = e.jti(jti);
    }
    e.trace_id(server_kit::telemetry::current_trace_id()).emit();
}

/// `auth.refresh_reuse`: a rotated (or foreign) refresh token was presented;
/// its family is revoked. `jti` is the family's last access token.
pub fn refresh_reuse(client_id: &str, reason: &'static str, jti: Option<&str>, peer: IpAddr) {
    let mut e = AuditEvent::new(names::REFRESH_REUSE, outcome::DENIED)
        .client(client_id)
        .endpoint("token")
        .reason(reason)
        .peer(peer);
    if let Some(jti) = jti {
        e = e.jti(jti);
    }
    e.trace_id(server_kit::telemetry::current_trace_id()).emit();
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
        .trace_id(server_kit::telemetry::current_trace_id())
        .emit();
}

/// `auth.login`: a sign-in at /authorize. `user_id` only for a known user
/// (an unknown username may be a mistyped password: it is not logged).
pub fn login(
    success: bool,
    reason: Option<&'static str>,
    client_id: &str,
    user_id: Option<&str>,
    peer: IpAddr,
) {
    let mut e = AuditEvent::new(
        names::LOGIN,
        if success {
            outcome::SUCCESS
        } else {
            outcome::FAILURE
        },
    )
    .client(client_id)
    .endpoint("authorize")
    .peer(peer);
    if let Some(u) = user_id {
        e = e.subject(u);
    }
    if let Some(r) = reason {
        e = e.reason(r);
    }
    e.trace_id(server_kit::telemetry::current_trace_id()).emit();
}

/// `auth.consent`: the user approved or denied the client's request.
pub fn consent(approved: bool, client_id: &str, sub: &str, scope: &str, peer: IpAddr) {
    AuditEvent::new(
        names::CONSENT,
        if approved {
            outcome::APPROVED
        } else {
            outcome::DENIED
        },
    )
    .client(client_id)
    .subject(sub)
    .endpoint("authorize")
    .scope(scope)
    .peer(peer)
    .trace_id(server_kit::telemetry::current_trace_id())
    .emit();
}

/// `auth.code_issued` (never the code).
pub fn code_issued(client_id: &str, sub: &str, scope: &str, aud: &str, peer: IpAddr) {
    AuditEvent::new(names::CODE_ISSUED, outcome::SUCCESS)
        .client(client_id)
        .subject(sub)
        .endpoint("authorize")
        .scope(scope)
        .aud(aud)
        .peer(peer)
        .trace_id(server_kit::telemetry::current_trace_id())
        .emit();
}
