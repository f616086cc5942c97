//! `get_customer_info(customer_id)`: one customer's record and open tickets.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args, validate};

/// Scope required to call this tool.
pub const SCOPE: &str = "customer:read";

pub const DEF: ToolDef = ToolDef {
    name: "get_customer_info",
    title: "Get customer info",
    description: "Look up one customer by id: name, e-mail, tier, status and their support tickets.",
    scope: SCOPE,
    read_only: true,
    input_schema: rmcp::handler::server::common::schema_for_input::<Params>,
    call,
};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Customer id: 5 to 10 upper-case letters or digits, e.g. "12345" or "ACME001".
    #[schemars(regex(pattern = r"^[A-Z0-9]{5,10}$"), length(min = 5, max = 10))]
    pub customer_id: String,
}

fn call(ctx: ToolCtx<'_>, args: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(run(ctx, args))
}

async fn run(ctx: ToolCtx<'_>, args: JsonObject) -> ToolResult {
    let p: Params = parse_args(args)?;
    validate::customer_id(&p.customer_id)?;
    let store = ctx.state.customers();
    let customer = store
        .customer(&p.customer_id)
        .await?
        .ok_or_else(|| ToolError::NotFound(format!("no customer with id {}", p.customer_id)))?;
    let tickets = store.tickets_for(&p.customer_id).await?;
    Ok(serde_json::json!({ "customer": customer, "tickets": tickets }))
}
