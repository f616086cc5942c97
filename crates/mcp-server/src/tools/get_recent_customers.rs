//! `get_recent_customers(limit)`: customers by most recent activity.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args};

/// Scope required to call this tool.
pub const SCOPE: &str = "customer:read";

/// Bounds of `limit`.
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 50;
pub const DEFAULT_LIMIT: u32 = 10;

pub const DEF: ToolDef = ToolDef {
    name: "get_recent_customers",
    title: "Get recent customers",
    description: "List the customers with the most recent account activity (newest first), \
                  with their number of open tickets.",
    scope: SCOPE,
    read_only: true,
    input_schema: rmcp::handler::server::common::schema_for_input::<Params>,
    call,
};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How many customers to return (1 to 50, default 10).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: u32,
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

fn call(ctx: ToolCtx<'_>, args: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(run(ctx, args))
}

async fn run(ctx: ToolCtx<'_>, args: JsonObject) -> ToolResult {
    let p: Params = parse_args(args)?;
    if !(MIN_LIMIT..=MAX_LIMIT).contains(&p.limit) {
        return Err(ToolError::InvalidInput(format!(
            "limit must be between {MIN_LIMIT} and {MAX_LIMIT}; got {}",
            p.limit
        )));
    }
    let store = ctx.state.customers();
    let customers = store.recent_customers(p.limit as usize).await?;
    let mut out = Vec::with_capacity(customers.len());
    for c in customers {
        let open = store
            .tickets_for(&c.id)
            .await?
            .iter()
            .filter(|t| t.status == "open")
            .count();
        let mut v = serde_json::to_value(&c)
            .map_err(|e| ToolError::Store(crate::store::StoreError(e.to_string())))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("open_tickets".into(), open.into());
        }
        out.push(v);
    }
    Ok(serde_json::json!({ "customers": out }))
}
