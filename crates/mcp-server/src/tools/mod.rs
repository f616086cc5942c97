//! The tool set. One file per tool; each declares its required scope next to
//! its definition, and everything else (tools/list filtering, the 403
//! challenge, `scopes_supported`, the tool's `_meta["securemcp/scopes"]`) is
//! derived from [`ALL`].
//!
//! A tool parses its arguments into a typed struct (serde + schemars, the
//! same type produces the published JSON Schema), checks the explicit bounds,
//! and returns JSON. Bad input is a [`ToolError::InvalidInput`], which the
//! handler turns into an `isError: true` result that tells the model what to
//! fix; it never panics and never becomes a 500.

use std::sync::{Arc, LazyLock};

use futures::future::BoxFuture;
use rmcp::model::{JsonObject, MetaObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::state::AppState;
use crate::store::StoreError;

pub mod calculate_account_value;
pub mod create_support_ticket;
pub mod get_customer_info;
pub mod get_recent_customers;

/// `_meta` key under which each tool publishes its required scopes.
pub const SCOPES_META_KEY: &str = "securemcp/scopes";

/// Every tool, in the order `tools/list` shows them.
pub const ALL: &[ToolDef] = &[
    get_customer_info::DEF,
    get_recent_customers::DEF,
    create_support_ticket::DEF,
    calculate_account_value::DEF,
];

/// Why a tool call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments break the schema or a bound; the message says which.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The arguments are valid but name something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A back end failed; logged, reported to the caller opaquely.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a tool returns on success: structured JSON.
pub type ToolResult = Result<Value, ToolError>;

/// Static description of one tool.
#[derive(Clone, Copy)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The one OAuth scope a caller needs.
    pub scope: &'static str,
    pub read_only: bool,
    pub input_schema: fn() -> Result<Arc<JsonObject>, String>,
    pub call: for<'a> fn(ToolCtx<'a>, JsonObject) -> BoxFuture<'a, ToolResult>,
}

/// What a running tool may use.
#[derive(Clone, Copy)]
pub struct ToolCtx<'a> {
    pub state: &'a AppState,
    /// The authenticated caller (from the access token).
    pub client_id: &'a str,
}

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ToolDef {
    /// Scopes required to call this tool (one today; a list on the wire so it can grow).
    pub fn scopes(&self) -> [&'static str; 1] {
        [self.scope]
    }

    /// The MCP tool definition, with `_meta["securemcp/scopes"]`. Built once
    /// per process for the tools in [`ALL`]: rmcp asks for it on every
    /// 2026-07-28 `tools/call` (to check the request headers against the
    /// schema), and generating a JSON Schema is not free.
    pub fn to_tool(&self) -> Result<Tool, String> {
        match ALL.iter().position(|t| t.name == self.name) {
            Some(i) => DEFINITIONS[i].clone(),
            None => self.build_tool(),
        }
    }

    fn build_tool(&self) -> Result<Tool, String> {
        let schema = (self.input_schema)()?;
        let mut meta = JsonObject::new();
        meta.insert(SCOPES_META_KEY.to_owned(), serde_json::json!(self.scopes()));
        let annotations = ToolAnnotations::with_title(self.title)
            .read_only(self.read_only)
            .destructive(false)
            .idempotent(self.read_only)
            .open_world(false);
        Ok(Tool::new(self.name, self.description, schema)
            .with_title(self.title)
            .with_annotations(annotations)
            .with_meta(MetaObject(meta)))
    }
}

/// [`ToolDef::to_tool`] of each of [`ALL`], in order.
static DEFINITIONS: LazyLock<Vec<Result<Tool, String>>> =
    LazyLock::new(|| ALL.iter().map(ToolDef::build_tool).collect());

/// The tool called `name`.
pub fn find(name: &str) -> Option<&'static ToolDef> {
    ALL.iter().find(|t| t.name == name)
}

/// Deserializes arguments into the tool's parameter type; serde's message
/// (missing field, wrong type, unknown field, unknown variant) goes to the model.
pub fn parse_args<T: DeserializeOwned>(args: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// Validation helpers shared by the tools.
pub mod validate {
    use super::ToolError;

    /// Customer ids: 5 to 10 upper-case ASCII letters or digits (`^[A-Z0-9]{5,10}$`).
    pub const CUSTOMER_ID_PATTERN: &str = "^[A-Z0-9]{5,10}$";

    pub fn customer_id(id: &str) -> Result<(), ToolError> {
        let ok = (5..=10).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(ToolError::InvalidInput(format!(
                "customer_id must be 5 to 10 upper-case letters or digits ({CUSTOMER_ID_PATTERN}); got {}",
                preview(id)
            )))
        }
    }

    /// Free text of `min..=max` characters (Unicode scalar values), not blank,
    /// without control characters; `multiline` admits `\n`, `\r` and `\t`.
    pub fn text(
        field: &str,
        value: &str,
        min: usize,
        max: usize,
        multiline: bool,
    ) -> Result<(), ToolError> {
        let len = value.chars().count();
        if len < min || len > max {
            return Err(ToolError::InvalidInput(format!(
                "{field} must be {min} to {max} characters long; got {len}"
            )));
        }
        if value.trim().is_empty() {
            return Err(ToolError::InvalidInput(format!(
                "{field} must not be blank"
            )));
        }
        let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
        if let Some(c) = value.chars().find(|&c| c.is_control() && !allowed(c)) {
            return Err(ToolError::InvalidInput(format!(
                "{field} must not contain control characters (found U+{:04X})",
                u32::from(c)
            )));
        }
        Ok(())
    }

    /// A short, safe rendering of user input for error messages.
    pub fn preview(s: &str) -> String {
        let short: String = s.chars().take(32).collect();
        let suffix = if s.chars().count() > 32 { "…" } else { "" };
        format!("{:?}{suffix}", short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_valid_definition() {
        let mut names = std::collections::HashSet::new();
        for def in ALL {
            assert!(names.insert(def.name), "duplicate tool {}", def.name);
            let tool = def.to_tool().unwrap();
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&serde_json::json!("object")),
                "{}",
                def.name
            );
            assert_eq!(
                tool.meta.as_ref().and_then(|m| m.0.get(SCOPES_META_KEY)),
                Some(&serde_json::json!([def.scope]))
            );
            auth::scope::validate_token(def.scope).unwrap();
        }
    }

    #[test]
    fn customer_id_bounds() {
        for ok in ["ABCDE", "ABCDE12345", "12345"] {
            validate::customer_id(ok).unwrap();
        }
        for bad in [
            "ABCD",
            "ABCDE123456",
            "abcde",
            "ABC-D",
            "ABCDÉ",
            "",
            "ABCDE\n",
        ] {
            assert!(validate::customer_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_bounds() {
        assert!(validate::text("s", "a", 1, 3, false).is_ok());
        assert!(validate::text("s", "abc", 1, 3, false).is_ok());
        assert!(
            validate::text("s", "éé", 1, 2, false).is_ok(),
            "characters, not bytes"
        );
        assert!(validate::text("s", "", 1, 3, false).is_err());
        assert!(validate::text("s", "abcd", 1, 3, false).is_err());
        assert!(validate::text("s", "   ", 1, 3, false).is_err());
        assert!(validate::text("s", "a\u{0}", 1, 3, false).is_err());
        assert!(validate::text("s", "a\u{1b}", 1, 3, false).is_err());
        assert!(validate::text("s", "a\u{7f}", 1, 3, false).is_err());
        assert!(validate::text("s", "a\nb", 1, 3, false).is_err());
        assert!(validate::text("s", "a\nb", 1, 3, true).is_ok());
        assert!(validate::text("s", "a\u{85}", 1, 3, true).is_err());
    }
}
