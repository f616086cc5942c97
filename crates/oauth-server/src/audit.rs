//! Audit events (DESIGN.md §8): stable names, never a secret or a token.
//!
//! Emitted on `target: "audit"` so they can be routed or filtered apart from
//! operational logs (`RUST_LOG=audit=info`).

use std::net::IpAddr;

/// Trims attacker-supplied identifiers before they reach the log.
fn short(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `auth.token_issued`
pub fn token_issued(
    client_id: &str,
    method: &str,
    scope: &str,
    aud: &str,
    jti: &str,
    peer: IpAddr,
) {
    tracing::info!(
        target: "audit",
        event = "auth.token_issued",
        client_id,
        auth_method = method,
        scope,
        aud,
        jti,
        peer = %peer,
        outcome = "success",
    );
}

/// `auth.client_rejected`: authentication failed or the request was refused.
pub fn client_rejected(client_id: Option<&str>, reason: &str, endpoint: &str, peer: IpAddr) {
    tracing::warn!(
        target: "audit",
        event = "auth.client_rejected",
        client_id = client_id.map(short).unwrap_or("-"),
        reason,
        endpoint,
        peer = %peer,
        outcome = "denied",
    );
}

/// `auth.token_revoked`
pub fn token_revoked(client_id: &str, jti: &str, peer: IpAddr) {
    tracing::info!(target: "audit", event = "auth.token_revoked", client_id, jti, peer = %peer);
}
