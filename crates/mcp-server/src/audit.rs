//! Audit events (DESIGN.md §8) in the schema both servers share
//! ([`auth::audit`]): every security decision is logged through `tracing`
//! (`target: "audit"`) and kept in a bounded in-memory ring that the
//! `security://events` resource reads.
//!
//! The ring belongs to one [`AppState`](crate::state::AppState) (no global),
//! so two servers in one test process never see each other's events. Events
//! never carry a token or a secret: only the client id, the tool or resource,
//! the outcome, a stable reason and the latency.

use std::collections::VecDeque;
use std::sync::Mutex;

pub use auth::audit::{AuditEvent, names, outcome};

use crate::metrics::McpMetrics;

/// Default number of events kept.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The bounded ring of recent events.
#[derive(Debug)]
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEvent<'static>>>,
    capacity: usize,
    /// Counters derived from the events (`None`: metrics off).
    metrics: Option<McpMetrics>,
}

impl AuditLog {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            metrics: None,
        }
    }

    /// Also counts every recorded event in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: McpMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Logs `event` and keeps it, dropping the oldest when full.
    pub fn record(&self, event: AuditEvent<'_>) {
        let event = event.trace_id(server_kit::telemetry::current_trace_id());
        event.emit();
        if let Some(m) = &self.metrics {
            m.observe(&event);
        }
        // The lock is never held across an await and never panics while held.
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event.into_owned());
    }

    /// The newest `limit` events, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<AuditEvent<'static>> {
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
}
