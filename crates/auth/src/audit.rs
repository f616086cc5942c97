//! The audit event schema (DESIGN.md §8), one for both servers.
//!
//! Every security decision is one [`AuditEvent`]: a stable `event` name from
//! [`names`], an `outcome`, and only the fields that apply. Absent fields are
//! left out — in the log line and in JSON alike — never written as `"-"` or
//! `""`. Events never carry a token or a secret: identifiers (client id,
//! subject, `jti`), the tool or resource, a stable reason and the latency.
//!
//! [`AuditEvent::emit`] writes the event through `tracing` on
//! `target: "audit"` (`RUST_LOG=audit=info` routes them apart from
//! operational logs); the mcp-server also keeps recent events in memory for
//! the `security://events` resource.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Stable event names (a rename is a breaking change for dashboards and alerts).
pub mod names {
    /// oauth-server issued an access token.
    pub const TOKEN_ISSUED: &str = "auth.token_issued";
    /// Client authentication failed or a token request was refused.
    pub const CLIENT_REJECTED: &str = "auth.client_rejected";
    /// A client registered itself (RFC 7591 `POST /register`).
    pub const CLIENT_REGISTERED: &str = "auth.client_registered";
    /// A client ID metadata document was refused (fetch, address or content).
    pub const CLIENT_METADATA_REFUSED: &str = "auth.client_metadata_refused";
    /// An access token was revoked (RFC 7009).
    pub const TOKEN_REVOKED: &str = "auth.token_revoked";
    /// An authorization code was presented again: what was issued from it is revoked.
    pub const CODE_REPLAYED: &str = "auth.code_replayed";
    /// A rotated refresh token was presented again: its family is revoked.
    pub const REFRESH_REUSE: &str = "auth.refresh_reuse";
    /// A person signed in at /authorize (outcome `success`), or failed to
    /// (`failure`, reason `unknown_user` / `bad_password` / `limited`).
    pub const LOGIN: &str = "auth.login";
    /// A person approved or denied a client's access (/authorize consent page).
    pub const CONSENT: &str = "auth.consent";
    /// An authorization code was issued (never the code itself).
    pub const CODE_ISSUED: &str = "auth.code_issued";
    /// A request's token was missing or refused (401), or could not be
    /// checked against the revocation list (503, outcome `unavailable`).
    pub const TOKEN_REJECTED: &str = "mcp.token_rejected";
    /// A token lacked the scope of the requested tool or resource (403).
    pub const SCOPE_DENIED: &str = "mcp.scope_denied";
    /// A tool ran (or refused its input).
    pub const TOOL_CALLED: &str = "mcp.tool_called";
    /// A client used a session another client opened (answered 404).
    pub const SESSION_REFUSED: &str = "mcp.session_refused";
    /// The revocation denylist could not be read and `REVOCATION_FAILURE_MODE=open` let the token through.
    pub const REVOCATION_UNCHECKED: &str = "mcp.revocation_unchecked";
    /// A replica's in-memory revocation set lost (or never had) its Redis
    /// subscription; it serves from memory until `REVOCATION_MAX_STALENESS_SECS`.
    /// Once per outage.
    pub const REVOCATION_STALE: &str = "revocation.stale";
    /// The revocation set is subscribed and rescanned again after an outage.
    pub const REVOCATION_SYNCED: &str = "revocation.synced";
    /// A request was refused by a rate limit (429).
    pub const RATE_LIMITED: &str = "ratelimit.limited";
    /// The shared limiter is unreachable; answers follow `RATE_LIMIT_FAILURE_MODE`.
    pub const RATE_LIMIT_DEGRADED: &str = "ratelimit.degraded";
    /// The shared limiter answers again.
    pub const RATE_LIMIT_RECOVERED: &str = "ratelimit.recovered";
}

/// Stable outcomes.
pub mod outcome {
    pub const SUCCESS: &str = "success";
    pub const OK: &str = "ok";
    pub const DENIED: &str = "denied";
    /// A sign-in that did not succeed (`auth.login`).
    pub const FAILURE: &str = "failure";
    /// A person approved a client's access (`auth.consent`).
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const TOOL_ERROR: &str = "tool_error";
    pub const INVALID_INPUT: &str = "invalid_input";
    pub const DEGRADED: &str = "degraded";
    pub const UNAVAILABLE: &str = "unavailable";
}

/// One audit event. Its strings borrow from the request by default, so an
/// event that is only logged allocates nothing (measured: owned strings cost
/// the token endpoint ~10 % of its ES256 throughput at `RUST_LOG=info`);
/// [`AuditEvent::into_owned`] makes one that outlives the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent<'a> {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub event: &'static str,
    /// The OAuth client (absent when the caller could not be identified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Cow<'a, str>>,
    /// The user, for user tokens (`sub` ≠ `client_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Cow<'a, str>>,
    /// The endpoint that decided (`token`, `revoke`, `introspect`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<&'static str>,
    /// `success`, `ok`, `tool_error`, `invalid_input`, `denied`, `rejected`, ...
    pub outcome: &'static str,
    /// Stable machine-readable reason (e.g. `expired`, `insufficient_scope`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Scope that was required, for denials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<&'static str>,
    /// Scope granted, for issued tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Cow<'a, str>>,
    /// Audience of an issued token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Cow<'a, str>>,
    /// Token id (never the token itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<Cow<'a, str>>,
    /// Client authentication method at the token endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    /// The rate-limit key class (`ip`, `client`, ...), for limiter events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limiter: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// `RATE_LIMIT_FAILURE_MODE` in force, for degraded/recovered events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<&'static str>,
    /// The caller's address (after trusted-proxy resolution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The W3C trace id (32 hex digits) of the request, when traces are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
}

/// Attacker-supplied identifiers are cut to this many characters before
/// they reach the log.
pub const MAX_ID_CHARS: usize = 64;

fn short(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_ID_CHARS) {
        Some((i, _)) => Cow::Borrowed(&s[..i]),
        None => Cow::Borrowed(s),
    }
}

fn owned(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    c.map(|c| Cow::Owned(c.into_owned()))
}

impl<'a> AuditEvent<'a> {
    /// A new event stamped now.
    pub fn new(event: &'static str, outcome: &'static str) -> Self {
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            ts_ms,
            event,
            client_id: None,
            sub: None,
            tool: None,
            resource: None,
            endpoint: None,
            outcome,
            reason: None,
            required_scope: None,
            scope: None,
            aud: None,
            jti: None,
            auth_method: None,
            limiter: None,
            retry_after_ms: None,
            failure_mode: None,
            peer: None,
            latency_ms: None,
            trace_id: None,
        }
    }

    /// The client id (cut to [`MAX_ID_CHARS`]: it may come from the caller).
    pub fn client(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(short(client_id));
        self
    }

    /// The client id when known.
    pub fn client_opt(self, client_id: Option<&'a str>) -> Self {
        match client_id {
            Some(id) => self.client(id),
            None => self,
        }
    }

    /// The subject, recorded only when it differs from the client id (user tokens).
    pub fn subject(mut self, sub: &'a str) -> Self {
        if self.client_id.as_deref() != Some(sub) {
            self.sub = Some(short(sub));
        }
        self
    }

    pub fn tool(mut self, tool: &'a str) -> Self {
        self.tool = Some(short(tool));
        self
    }

    pub fn resource(mut self, uri: &'a str) -> Self {
        self.resource = Some(Cow::Borrowed(uri));
        self
    }

    pub fn endpoint(mut self, endpoint: &'static str) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn required_scope(mut self, scope: &'static str) -> Self {
        self.required_scope = Some(scope);
        self
    }

    pub fn scope(mut self, scope: &'a str) -> Self {
        self.scope = Some(Cow::Borrowed(scope));
        self
    }

    pub fn aud(mut self, aud: &'a str) -> Self {
        self.aud = Some(Cow::Borrowed(aud));
        self
    }

    pub fn jti(mut self, jti: &'a str) -> Self {
        self.jti = Some(short(jti));
        self
    }

    pub fn auth_method(mut self, method: &'static str) -> Self {
        self.auth_method = Some(method);
        self
    }

    pub fn limiter(mut self, limiter: &'static str) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
        self
    }

    pub fn failure_mode(mut self, mode: &'static str) -> Self {
        self.failure_mode = Some(mode);
        self
    }

    pub fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    pub fn latency(mut self, elapsed: Duration) -> Self {
        // Microsecond precision is plenty and keeps the JSON short.
        self.latency_ms = Some((elapsed.as_micros() as f64) / 1000.0);
        self
    }

    /// The trace id, when the request is traced (`None` leaves it out).
    pub fn trace_id(mut self, trace_id: Option<String>) -> Self {
        if trace_id.is_some() {
            self.trace_id = trace_id.map(Cow::Owned);
        }
        self
    }

    /// The same event owning its strings (to keep it past the request).
    pub fn into_owned(self) -> AuditEvent<'static> {
        AuditEvent {
            client_id: owned(self.client_id),
            sub: owned(self.sub),
            tool: owned(self.tool),
            resource: owned(self.resource),
            scope: owned(self.scope),
            aud: owned(self.aud),
            jti: owned(self.jti),
            ts_ms: self.ts_ms,
            event: self.event,
            endpoint: self.endpoint,
            outcome: self.outcome,
            reason: self.reason,
            required_scope: self.required_scope,
            auth_method: self.auth_method,
            limiter: self.limiter,
            retry_after_ms: self.retry_after_ms,
            failure_mode: self.failure_mode,
            peer: self.peer,
            latency_ms: self.latency_ms,
            trace_id: owned(self.trace_id),
        }
    }

    /// True for outcomes that refuse something (logged at `warn`).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.outcome,
            outcome::DENIED
                | outcome::FAILURE
                | outcome::REJECTED
                | outcome::DEGRADED
                | outcome::UNAVAILABLE
        )
    }

    /// Writes the event on `target: "audit"`: `warn` for refusals, `info`
    /// otherwise. Absent fields are not recorded.
    pub fn emit(&self) {
        macro_rules! emit_at {
            ($level:expr) => {
                tracing::event!(
                    target: "audit",
                    $level,
                    event = self.event,
                    client_id = self.client_id.as_deref(),
                    sub = self.sub.as_deref(),
                    tool = self.tool.as_deref(),
                    resource = self.resource.as_deref(),
                    endpoint = self.endpoint,
                    outcome = self.outcome,
                    reason = self.reason,
                    required_scope = self.required_scope,
                    scope = self.scope.as_deref(),
                    aud = self.aud.as_deref(),
                    jti = self.jti.as_deref(),
                    auth_method = self.auth_method,
                    limiter = self.limiter,
                    retry_after_ms = self.retry_after_ms,
                    failure_mode = self.failure_mode,
                    peer = self.peer.map(tracing::field::display),
                    latency_ms = self.latency_ms,
                    trace_id = self.trace_id.as_deref(),
                    "audit"
                )
            };
        }
        if self.is_refusal() {
            emit_at!(tracing::Level::WARN);
        } else {
            emit_at!(tracing::Level::INFO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_only_present_fields() {
        let mut e = AuditEvent::new(names::SCOPE_DENIED, outcome::DENIED)
            .client("c")
            .tool("t")
            .required_scope("s");
        e.ts_ms = 1;
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"ts_ms":1,"event":"mcp.scope_denied","client_id":"c","tool":"t","outcome":"denied","required_scope":"s"})
        );
        let mut e = AuditEvent::new(names::CLIENT_REJECTED, outcome::DENIED)
            .client_opt(None)
            .endpoint("token")
            .peer(IpAddr::from([127, 0, 0, 1]));
        e.ts_ms = 2;
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"ts_ms":2,"event":"auth.client_rejected","endpoint":"token","outcome":"denied","peer":"127.0.0.1"})
        );
        let e = e
            .trace_id(Some("0af7651916cd43dd8448eb211c80319c".into()))
            .trace_id(None);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"ts_ms":2,"event":"auth.client_rejected","endpoint":"token","outcome":"denied","peer":"127.0.0.1","trace_id":"0af7651916cd43dd8448eb211c80319c"})
        );
    }

    #[test]
    fn identifiers_are_cut_and_sub_only_when_distinct() {
        let long = "x".repeat(500);
        let same = "x".repeat(64);
        let e = AuditEvent::new(names::TOKEN_ISSUED, outcome::SUCCESS)
            .client(&long)
            .subject(&same);
        assert_eq!(e.client_id.as_deref().map(str::len), Some(MAX_ID_CHARS));
        assert_eq!(e.sub, None, "sub equal to client_id is not repeated");
        let e = AuditEvent::new(names::TOKEN_ISSUED, outcome::SUCCESS)
            .client("app")
            .subject("alice");
        assert_eq!(e.sub.as_deref(), Some("alice"));
    }

    #[test]
    fn refusals_are_warnings() {
        assert!(AuditEvent::new(names::RATE_LIMITED, outcome::DENIED).is_refusal());
        assert!(!AuditEvent::new(names::TOOL_CALLED, outcome::OK).is_refusal());
    }
}
