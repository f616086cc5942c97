//! `health://status`: liveness as seen through MCP (any valid token).

use futures::future::BoxFuture;

use super::ResourceDef;
use crate::state::AppState;

pub const DEF: ResourceDef = ResourceDef {
    uri: "health://status",
    name: "health",
    title: "Server health",
    description: "Status of the MCP server: version and the number of tools and resources it serves.",
    mime_type: "application/json",
    scope: None,
    read,
};

fn read(_state: &AppState) -> BoxFuture<'_, String> {
    Box::pin(async {
        serde_json::json!({
            "status": "ok",
            "server": "mcp-server",
            "version": env!("CARGO_PKG_VERSION"),
            "tools": crate::tools::ALL.len(),
            "resources": super::ALL.len(),
        })
        .to_string()
    })
}
