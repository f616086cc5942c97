//! `calculate_account_value(customer_id, amounts)`: totals and value tier of
//! a list of purchase amounts.

use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args, validate};

/// Scope required to call this tool.
pub const SCOPE: &str = "account:calculate";

pub const MIN_AMOUNTS: usize = 1;
pub const MAX_AMOUNTS: usize = 100;
pub const MAX_AMOUNT: f64 = 1_000_000.0;

pub const DEF: ToolDef = ToolDef {
    name: "calculate_account_value",
    title: "Calculate account value",
    description: "Compute total, average, min and max of a customer's purchase amounts and the \
                  resulting value tier (bronze < 1,000 ≤ silver < 10,000 ≤ gold < 100,000 ≤ platinum).",
    scope: SCOPE,
    read_only: true,
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
    /// 1 to 100 purchase amounts, each between 0 and 1,000,000.
    #[schemars(length(min = 1, max = 100), inner(range(min = 0.0, max = 1_000_000.0)))]
    pub amounts: Vec<f64>,
}

fn call(ctx: ToolCtx<'_>, args: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(run(ctx, args))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn tier(total: f64) -> &'static str {
    match total {
        t if t >= 100_000.0 => "platinum",
        t if t >= 10_000.0 => "gold",
        t if t >= 1_000.0 => "silver",
        _ => "bronze",
    }
}

async fn run(ctx: ToolCtx<'_>, args: JsonObject) -> ToolResult {
    let p: Params = parse_args(args)?;
    validate::customer_id(&p.customer_id)?;
    let n = p.amounts.len();
    if !(MIN_AMOUNTS..=MAX_AMOUNTS).contains(&n) {
        return Err(ToolError::InvalidInput(format!(
            "amounts must hold {MIN_AMOUNTS} to {MAX_AMOUNTS} numbers; got {n}"
        )));
    }
    if let Some((i, a)) = p
        .amounts
        .iter()
        .enumerate()
        .find(|(_, a)| !a.is_finite() || !(0.0..=MAX_AMOUNT).contains(*a))
    {
        return Err(ToolError::InvalidInput(format!(
            "amounts[{i}] must be a finite number between 0 and 1000000; got {a}"
        )));
    }
    if ctx
        .state
        .customers()
        .customer(&p.customer_id)
        .await?
        .is_none()
    {
        return Err(ToolError::NotFound(format!(
            "no customer with id {}",
            p.customer_id
        )));
    }
    let total: f64 = p.amounts.iter().sum();
    let min = p.amounts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = p.amounts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(serde_json::json!({
        "customer_id": p.customer_id,
        "count": n,
        "total": round2(total),
        "average": round2(total / n as f64),
        "min": round2(min),
        "max": round2(max),
        "tier": tier(total),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        assert_eq!(tier(0.0), "bronze");
        assert_eq!(tier(999.99), "bronze");
        assert_eq!(tier(1_000.0), "silver");
        assert_eq!(tier(10_000.0), "gold");
        assert_eq!(tier(100_000.0), "platinum");
    }
}
