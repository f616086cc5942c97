//! `get_recent_customers(limit?, cursor?)`: customers by most recent
//! activity, [`MAX_LIMIT`] per call at most; `next_cursor` (opaque) asks for
//! the next page. A cursor names the position of the last customer shown
//! (activity time, order, id), so a page never repeats one; a customer whose
//! activity changes meanwhile moves to the front and is not shown again.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{ToolCtx, ToolDef, ToolError, ToolResult, parse_args};
use crate::store::RecentKey;

/// Scope required to call this tool.
pub const SCOPE: &str = "customer:read";

/// Bounds of `limit`.
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 50;
pub const DEFAULT_LIMIT: u32 = 10;
/// Longest `cursor` accepted (the ones we hand out are far shorter).
const MAX_CURSOR_LEN: usize = 256;

pub const DEF: ToolDef = ToolDef {
    name: "get_recent_customers",
    title: "Get recent customers",
    description: "List the customers with the most recent account activity (newest first), \
                  with their number of open tickets. At most 50 per call; when more exist the \
                  result has `next_cursor`: pass it as `cursor` for the next page.",
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
    /// The `next_cursor` of a previous result: continue after its last customer.
    #[serde(default)]
    pub cursor: Option<String>,
}

fn encode_cursor(key: &RecentKey) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "r1:{}:{}:{}",
        key.last_activity, key.activity_seq, key.id
    ))
}

fn decode_cursor(cursor: &str) -> Result<RecentKey, ToolError> {
    let bad = || {
        ToolError::InvalidInput(
            "cursor is not a next_cursor this tool returned; omit it to start with the most \
             recent customers"
                .into(),
        )
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.strip_prefix("r1:").ok_or_else(bad)?.splitn(3, ':');
    let (Some(at), Some(seq), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok(RecentKey {
        last_activity: at.parse().map_err(|_| bad())?,
        activity_seq: seq.parse().map_err(|_| bad())?,
        id: id.to_owned(),
    })
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
    let after = p.cursor.as_deref().map(decode_cursor).transpose()?;
    let store = ctx.state.customers();
    let page = store
        .recent_customers(after.as_ref(), p.limit as usize)
        .await?;
    let next = match page.customers.last() {
        Some(last) if page.more => Some(encode_cursor(&RecentKey::of(last))),
        _ => None,
    };
    let mut out = Vec::with_capacity(page.customers.len());
    for c in page.customers {
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
    let mut result = serde_json::json!({ "customers": out });
    if let (Some(next), Some(obj)) = (next, result.as_object_mut()) {
        obj.insert("next_cursor".into(), next.into());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let key = RecentKey {
            last_activity: 1_700_000_000,
            activity_seq: 3,
            id: "ACME:001".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&key)).unwrap(), key);
        for bad in [
            "",
            "not base64!",
            &URL_SAFE_NO_PAD.encode("t1:12345:3"),
            &URL_SAFE_NO_PAD.encode("r1:x:3:id"),
            &URL_SAFE_NO_PAD.encode("r1:1:2"),
            &"A".repeat(300),
        ] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().to_string(),
                "invalid input: cursor is not a next_cursor this tool returned; omit it to start \
                 with the most recent customers",
                "{bad}"
            );
        }
    }
}
