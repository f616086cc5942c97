//! `get_customer_info(customer_id, limit?, cursor?)`: one customer's record
//! and one page of their support tickets, newest first.
//!
//! Tickets are paged so a customer with thousands of them never produces a
//! huge result (issue 13: 1,000 tickets were a 16.4 MB answer): at most
//! [`MAX_LIMIT`] per call, and `next_cursor` (opaque) asks for the next,
//! older page. A cursor names the customer and the last ticket shown, so
//! tickets created meanwhile never shift a page and a cursor is refused for
//! another customer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args, validate};

/// Scope required to call this tool.
pub const SCOPE: &str = "customer:read";

/// Bounds of `limit` (tickets per page).
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 50;
pub const DEFAULT_LIMIT: u32 = 20;
/// Longest `cursor` accepted (the ones we hand out are far shorter).
pub const MAX_CURSOR_LEN: usize = 128;

pub const DEF: ToolDef = ToolDef {
    name: "get_customer_info",
    title: "Get customer info",
    description: "Look up one customer by id: name, e-mail, tier, status and their support \
                  tickets, newest first, at most `limit` (1 to 50, default 20) per call. When \
                  more tickets exist the result has `next_cursor`: pass it as `cursor` (with the \
                  same customer_id) for the next, older page.",
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
    /// How many tickets to return (1 to 50, default 20).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 50))]
    pub limit: u32,
    /// The `next_cursor` of a previous result for the same customer: continue
    /// with older tickets. Omit it to start with the newest.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub cursor: Option<String>,
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

fn call(ctx: ToolCtx<'_>, args: JsonObject) -> BoxFuture<'_, ToolResult> {
    Box::pin(run(ctx, args))
}

/// The cursor after ticket `seq` of `customer_id`.
fn encode_cursor(customer_id: &str, seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("t1:{customer_id}:{seq}"))
}

/// The ticket number a cursor resumes after; an error that says what to do
/// for a cursor we did not hand out for this customer.
fn decode_cursor(customer_id: &str, cursor: &str) -> Result<i64, ToolError> {
    let bad = || {
        ToolError::InvalidInput(
            "cursor is not a next_cursor this tool returned for this customer_id; \
             omit it to start with the newest tickets"
                .into(),
        )
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let rest = text.strip_prefix("t1:").ok_or_else(bad)?;
    let (id, seq) = rest.rsplit_once(':').ok_or_else(bad)?;
    if id != customer_id {
        return Err(bad());
    }
    seq.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(bad)
}

async fn run(ctx: ToolCtx<'_>, args: JsonObject) -> ToolResult {
    let p: Params = parse_args(args)?;
    validate::customer_id(&p.customer_id)?;
    if !(MIN_LIMIT..=MAX_LIMIT).contains(&p.limit) {
        return Err(ToolError::InvalidInput(format!(
            "limit must be between {MIN_LIMIT} and {MAX_LIMIT}; got {}",
            p.limit
        )));
    }
    let before = match p.cursor.as_deref() {
        Some(c) => Some(decode_cursor(&p.customer_id, c)?),
        None => None,
    };
    let store = ctx.state.customers();
    let customer = store
        .customer(&p.customer_id)
        .await?
        .ok_or_else(|| ToolError::NotFound(format!("no customer with id {}", p.customer_id)))?;
    let page = store
        .ticket_page(&p.customer_id, before, p.limit as usize)
        .await?;
    let next = match page.tickets.last() {
        Some(last) if page.more => Some(encode_cursor(&p.customer_id, last.seq)),
        _ => None,
    };
    let mut out = serde_json::json!({ "customer": customer, "tickets": page.tickets });
    if let (Some(next), Some(obj)) = (next, out.as_object_mut()) {
        obj.insert("next_cursor".into(), next.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = encode_cursor("ACME001", 42);
        assert_eq!(decode_cursor("ACME001", &c).unwrap(), 42);
        let other = decode_cursor("12345", &c).unwrap_err().to_string();
        assert_eq!(
            other,
            "invalid input: cursor is not a next_cursor this tool returned for this customer_id; \
             omit it to start with the newest tickets"
        );
        for bad in [
            "".to_owned(),
            "!!".to_owned(),
            URL_SAFE_NO_PAD.encode("t1:ACME001:x"),
            URL_SAFE_NO_PAD.encode("t1:ACME001:-3"),
            URL_SAFE_NO_PAD.encode("t2:ACME001:3"),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
            "A".repeat(MAX_CURSOR_LEN + 1),
        ] {
            assert!(
                matches!(
                    decode_cursor("ACME001", &bad),
                    Err(ToolError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
    }
}
