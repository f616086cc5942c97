//! Audit events (DESIGN.md §8): every security decision is logged with a
//! stable name through `tracing` (`target: "audit"`) and kept in a bounded
//! in-memory ring that the `security://events` resource reads.
//!
//! The ring belongs to one [`AppState`](crate::state::AppState) (no global),
//! so two servers in one test process never see each other's events. Events
//! never carry a token or a secret: only the client id, the tool or resource,
//! the outcome, a stable reason and the latency.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Stable event names.
pub mod names {
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
    /// A request was refused by a rate limit (429).
    pub const RATE_LIMITED: &str = "ratelimit.limited";
}

/// Default number of events kept.
pub const DEFAULT_CAPACITY: usize = 1024;

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `ok`, `tool_error`, `invalid_input`, `denied`, `rejected`, ...
    pub outcome: &'static str,
    /// Stable machine-readable reason (e.g. `expired`, `insufficient_scope`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Scope that was required, for denials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl AuditEvent {
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
            tool: None,
            resource: None,
            outcome,
            reason: None,
            required_scope: None,
            latency_ms: None,
        }
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn tool(mut self, tool: &str) -> Self {
        self.tool = Some(tool.to_owned());
        self
    }

    pub fn resource(mut self, uri: &str) -> Self {
        self.resource = Some(uri.to_owned());
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

    pub fn latency(mut self, elapsed: Duration) -> Self {
        // Microsecond precision is plenty and keeps the JSON short.
        self.latency_ms = Some((elapsed.as_micros() as f64) / 1000.0);
        self
    }
}

/// The bounded ring of recent events.
#[derive(Debug)]
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEvent>>,
    capacity: usize,
}

impl AuditLog {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// Logs `event` and keeps it, dropping the oldest when full.
    pub fn record(&self, event: AuditEvent) {
        tracing::info!(
            target: "audit",
            event = event.event,
            client_id = event.client_id.as_deref().unwrap_or(""),
            tool = event.tool.as_deref().unwrap_or(""),
            resource = event.resource.as_deref().unwrap_or(""),
            outcome = event.outcome,
            reason = event.reason.unwrap_or(""),
            required_scope = event.required_scope.unwrap_or(""),
            latency_ms = event.latency_ms.unwrap_or(0.0),
            "audit"
        );
        // The lock is never held across an await and never panics while held.
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// The newest `limit` events, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEvent> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let skip = ring.len().saturating_sub(limit);
        ring.iter().skip(skip).cloned().collect()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_ordered() {
        let log = AuditLog::new(3);
        for i in 0..5 {
            log.record(AuditEvent::new(names::TOOL_CALLED, "ok").client(&format!("c{i}")));
        }
        let ids: Vec<_> = log
            .recent(10)
            .into_iter()
            .filter_map(|e| e.client_id)
            .collect();
        assert_eq!(ids, ["c2", "c3", "c4"]);
        let ids: Vec<_> = log
            .recent(2)
            .into_iter()
            .filter_map(|e| e.client_id)
            .collect();
        assert_eq!(ids, ["c3", "c4"]);
    }

    #[test]
    fn serializes_without_empty_fields() {
        let mut e = AuditEvent::new(names::SCOPE_DENIED, "denied")
            .client("c")
            .tool("t")
            .required_scope("s");
        e.ts_ms = 1;
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"ts_ms":1,"event":"mcp.scope_denied","client_id":"c","tool":"t","outcome":"denied","required_scope":"s"})
        );
    }
}
