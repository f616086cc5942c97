//! Just enough JSON-RPC to authorize a request before rmcp sees it: peek at
//! `method`, `params.name` and `params.uri` of a (size-limited) body, and
//! build JSON-RPC error responses.
//!
//! The peek is strict where it matters for security: a body whose `method`,
//! `params`, `name` or `uri` key appears twice is refused, so the middleware
//! and rmcp can never disagree about which tool is being called.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::policy::Operation;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;

/// Why a body could not be peeked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeekError {
    #[error("Parse error: request body is not valid JSON")]
    Parse,
    #[error("Invalid Request: JSON-RPC batches are not supported")]
    Batch,
    #[error("Invalid Request: {0}")]
    Invalid(String),
}

impl PeekError {
    pub fn code(&self) -> i32 {
        match self {
            PeekError::Parse => PARSE_ERROR,
            PeekError::Batch | PeekError::Invalid(_) => INVALID_REQUEST,
        }
    }
}

/// A string field that may hold another type (then it is simply not a name).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Other(IgnoredAny),
}

impl<'a> Lenient<'a> {
    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Lenient::Str(s) => Some(s),
            Lenient::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<Lenient<'a>>,
    #[serde(borrow, default)]
    uri: Option<Lenient<'a>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

/// Classifies one JSON-RPC message.
pub fn peek(body: &[u8]) -> Result<Operation, PeekError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Err(PeekError::Parse),
        Some(b'[') => {
            // Tell "a batch" from "not JSON at all".
            return match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(PeekError::Batch),
                Err(_) => Err(PeekError::Parse),
            };
        }
        Some(b'{') => {}
        Some(_) => {
            return match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(PeekError::Invalid(
                    "a JSON-RPC message must be an object".into(),
                )),
                Err(_) => Err(PeekError::Parse),
            };
        }
    }
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => PeekError::Parse,
        serde_json::error::Category::Data => PeekError::Invalid(e.to_string()),
    })?;
    let (name, uri) = match env.params {
        Some(p) => (
            p.name.and_then(Lenient::into_str),
            p.uri.and_then(Lenient::into_str),
        ),
        None => (None, None),
    };
    Ok(Operation::from_parts(
        env.method.as_deref(),
        name.as_deref(),
        uri.as_deref(),
    ))
}

/// A JSON-RPC error response (id `null`: the request could not be read).
pub fn error_response(status: StatusCode, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op(s: &str) -> Result<Operation, PeekError> {
        peek(s.as_bytes())
    }

    #[test]
    fn classifies() {
        assert_eq!(
            op(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"name":"x"}}}"#
            ),
            Ok(Operation::ToolCall {
                name: "get_customer_info".into()
            })
        );
        assert_eq!(
            op(r#"{"method":"resources/read","params":{"uri":"security://events"},"id":"a"}"#),
            Ok(Operation::ResourceRead {
                uri: "security://events".into()
            })
        );
        assert_eq!(
            op(r#"{"method":"tools/list","id":1}"#),
            Ok(Operation::Other {
                method: "tools/list".into()
            })
        );
        assert_eq!(op(r#"{"id":1,"result":{}}"#), Ok(Operation::NoMethod));
        // Escapes are decoded, so an escaped name cannot dodge the check.
        assert_eq!(
            op(r#"{"method":"tools\/call","params":{"name":"create_support_\u0074icket"}}"#),
            Ok(Operation::ToolCall {
                name: "create_support_ticket".into()
            })
        );
        // A non-string name is not a tool name (rmcp then refuses the request).
        assert_eq!(
            op(r#"{"method":"tools/call","params":{"name":7}}"#),
            Ok(Operation::Other {
                method: "tools/call".into()
            })
        );
    }

    #[test]
    fn refuses() {
        assert_eq!(op(""), Err(PeekError::Parse));
        assert_eq!(op("   "), Err(PeekError::Parse));
        assert_eq!(op("{"), Err(PeekError::Parse));
        assert_eq!(op("{\"method\":\"tools/call\",}"), Err(PeekError::Parse));
        assert_eq!(op("not json"), Err(PeekError::Parse));
        assert_eq!(op("[{\"method\":\"tools/list\"}]"), Err(PeekError::Batch));
        assert_eq!(op("[1,"), Err(PeekError::Parse));
        assert!(matches!(op("42"), Err(PeekError::Invalid(_))));
        assert!(matches!(op(r#"{"method":1}"#), Err(PeekError::Invalid(_))));
        assert!(matches!(
            op(r#"{"method":"tools/call","params":"x"}"#),
            Err(PeekError::Invalid(_))
        ));
        // Duplicate keys: refused rather than guessing which one rmcp would use.
        assert!(matches!(
            op(r#"{"method":"tools/list","method":"tools/call"}"#),
            Err(PeekError::Invalid(_))
        ));
        assert!(matches!(
            op(
                r#"{"method":"tools/call","params":{"name":"get_customer_info","name":"create_support_ticket"}}"#
            ),
            Err(PeekError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = peek(&bytes);
        }

        #[test]
        fn finds_any_tool_name(name in "[a-zA-Z0-9_\\-\\. \"\\\\/]{0,40}", id in any::<i64>()) {
            let body = serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":{}}});
            prop_assert_eq!(peek(body.to_string().as_bytes()), Ok(Operation::ToolCall { name }));
        }

        #[test]
        fn valid_json_that_is_not_an_object_is_never_a_parse_error(v in proptest::collection::vec(any::<i32>(), 0..5)) {
            let body = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(peek(&body), Err(PeekError::Batch));
        }
    }
}
