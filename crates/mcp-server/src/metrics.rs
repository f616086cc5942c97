//! The mcp-server's Prometheus families (`MCP_METRICS_BIND`; the shared
//! ones live in [`server_kit::metrics`]).
//!
//! Built once in [`App::build`](crate::App::build) into one per-process
//! registry. The security and tool counters are derived from the audit events
//! ([`AuditLog::record`](crate::audit::AuditLog::record) calls
//! [`McpMetrics::observe`]): the events already carry `&'static` reasons and
//! outcomes, and tool names are mapped to the static tool table, so no label
//! is ever allocated or taken from the caller (an unknown tool name, or a
//! resource, counts as `other`). Session and token-cache figures are read at
//! scrape time from rmcp's session table and the verifier.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use auth::Verifier;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use server_kit::metrics::latency_family;

use crate::audit::{AuditEvent, names};
use crate::tools;

/// The label of a tool name that is not in the tool table (or a resource).
pub const OTHER: &str = "other";

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    pub tool: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolOutcome {
    pub tool: &'static str,
    pub outcome: &'static str,
}

/// The families derived from audit events.
#[derive(Debug, Clone)]
pub struct McpMetrics {
    token_rejections: Family<ReasonLabel, Counter>,
    scope_denials: Family<ToolLabel, Counter>,
    tool_calls: Family<ToolOutcome, Counter>,
    tool_duration: Family<ToolLabel, Histogram>,
}

/// The static name of tool `name`, or [`OTHER`].
fn tool_label(name: Option<&str>) -> &'static str {
    name.and_then(tools::find).map_or(OTHER, |t| t.name)
}

impl McpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self {
            token_rejections: Family::default(),
            scope_denials: Family::default(),
            tool_calls: Family::default(),
            tool_duration: latency_family(),
        };
        registry.register(
            "token_rejections",
            "Requests refused at token verification (mcp.token_rejected), by audit reason",
            me.token_rejections.clone(),
        );
        registry.register(
            "scope_denials",
            "Tool calls and resource reads refused for a missing scope, by tool (other: a resource)",
            me.scope_denials.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls that reached the tool table (mcp.tool_called), by tool and outcome",
            me.tool_calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Time of each tool call (mcp.tool_called latency), by tool",
            me.tool_duration.clone(),
        );
        me
    }

    /// Counts what `event` says (called for every recorded audit event).
    pub fn observe(&self, event: &AuditEvent<'_>) {
        match event.event {
            names::TOKEN_REJECTED => {
                let reason = event.reason.unwrap_or(OTHER);
                self.token_rejections
                    .get_or_create(&ReasonLabel { reason })
                    .inc();
            }
            names::SCOPE_DENIED => {
                let tool = tool_label(event.tool.as_deref());
                self.scope_denials.get_or_create(&ToolLabel { tool }).inc();
            }
            names::TOOL_CALLED => {
                let tool = tool_label(event.tool.as_deref());
                self.tool_calls
                    .get_or_create(&ToolOutcome {
                        tool,
                        outcome: event.outcome,
                    })
                    .inc();
                if let Some(ms) = event.latency_ms {
                    self.tool_duration
                        .get_or_create(&ToolLabel { tool })
                        .observe(ms / 1000.0);
                }
            }
            _ => {}
        }
    }
}

/// `securemcp_sessions_active`, `securemcp_token_cache_hits_total`,
/// `securemcp_token_cache_misses_total`: read at scrape time.
pub struct LiveCollector {
    sessions: Arc<LocalSessionManager>,
    /// The last count read (the session table is briefly write-locked while
    /// a session opens or closes; a scrape then reports the previous count).
    last_sessions: AtomicI64,
    verifier: Arc<Verifier>,
}

impl LiveCollector {
    pub fn new(sessions: Arc<LocalSessionManager>, verifier: Arc<Verifier>) -> Self {
        Self {
            sessions,
            last_sessions: AtomicI64::new(0),
            verifier,
        }
    }
}

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCollector")
            .field("last_sessions", &self.last_sessions)
            .finish_non_exhaustive()
    }
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sessions = match self.sessions.sessions.try_read() {
            Ok(map) => {
                let n = i64::try_from(map.len()).unwrap_or(i64::MAX);
                self.last_sessions.store(n, Ordering::Relaxed);
                n
            }
            Err(_) => self.last_sessions.load(Ordering::Relaxed),
        };
        let gauge = ConstGauge::new(sessions);
        let m = encoder.encode_descriptor(
            "sessions_active",
            "Open 2025-11-25 MCP sessions (Mcp-Session-Id)",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(m)?;
        for (name, help, value) in [
            (
                "token_cache_hits",
                "Access tokens answered from the verified-token cache (no signature check)",
                self.verifier.cache_hits(),
            ),
            (
                "token_cache_misses",
                "Access tokens verified in full (not in the verified-token cache)",
                self.verifier.cache_misses(),
            ),
        ] {
            let counter = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(m)?;
        }
        Ok(())
    }
}
