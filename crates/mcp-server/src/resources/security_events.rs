//! `security://events`: the most recent audit events of this server
//! (requires `security:read`).

use futures::future::BoxFuture;

use super::ResourceDef;
use crate::state::AppState;

/// Scope required to read this resource.
pub const SCOPE: &str = "security:read";

/// Events returned per read (the ring may hold more).
pub const MAX_EVENTS: usize = 100;

pub const DEF: ResourceDef = ResourceDef {
    uri: "security://events",
    name: "security-events",
    title: "Recent security events",
    description: "The most recent audit events (token rejections, scope denials, tool calls), oldest first.",
    mime_type: "application/json",
    scope: Some(SCOPE),
    read,
};

fn read(state: &AppState) -> BoxFuture<'_, String> {
    Box::pin(async move {
        let events = state.audit().recent(MAX_EVENTS);
        serde_json::json!({ "events": events }).to_string()
    })
}
