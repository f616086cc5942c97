//! `create_support_ticket(customer_id, subject, description, priority)`:
//! stores a ticket (visible to later calls).

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args, validate};
use crate::store::{NewTicket, Priority};

/// Scope required to call this tool.
pub const SCOPE: &str = "ticket:create";

pub const SUBJECT_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2000;

pub const DEF: ToolDef = ToolDef {
    name: "create_support_ticket",
    title: "Create support ticket",
    description: "Open a support ticket for a customer. Returns the stored ticket with its id.",
    scope: SCOPE,
    read_only: false,
    input_schema: rmcp::handler::server::common::schema_for_input::<Params>,
    call,
};

/// Arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Customer id: 5 to 10 upper-case letters or digits.
    #[schemars(regex(pattern = r"^[A-Z0-9]{5,10}$"), length(min = 5, max = 10))]
    pub customer_id: String,
    /// One-line summary, 1 to 200 characters, no control characters.
    #[schemars(length(min = 1, max = 200))]
    pub subject: String,
    /// Details, 1 to 2000 characters; line breaks and tabs allowed, other control characters not.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
    /// Urgency.
    pub priority: Priority,
}

fn call(ctx: ToolCtx<'_>, args: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(run(ctx, args))
}

async fn run(ctx: ToolCtx<'_>, args: JsonObject) -> ToolResult {
    let p: Params = parse_args(args)?;
    validate::customer_id(&p.customer_id)?;
    validate::text("subject", &p.subject, 1, SUBJECT_MAX, false)?;
    validate::text("description", &p.description, 1, DESCRIPTION_MAX, true)?;
    let customer_id = p.customer_id.clone();
    let ticket = ctx
        .state
        .customers()
        .create_ticket(NewTicket {
            customer_id: p.customer_id,
            subject: p.subject,
            description: p.description,
            priority: p.priority,
            created_by: ctx.client_id.to_owned(),
        })
        .await?
        .ok_or_else(|| ToolError::NotFound(format!("no customer with id {customer_id}")))?;
    Ok(serde_json::json!({ "ticket": ticket }))
}
