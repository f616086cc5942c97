//! The JSON-RPC peek the MCP server runs before rmcp sees a body
//! (`mcp_server::jsonrpc`: `check` = `readable` + `peek`, and `peek_id`).
//!
//! Properties:
//! - `check` is exactly `readable` then `peek`; an accepted body is one
//!   serde_json reads as a JSON object (what rmcp will read).
//! - error codes are the JSON-RPC ones: -32700 for `Parse`, -32600 otherwise.
//! - `peek_id` only reports an id that is the body's top-level `id` (an
//!   integer or a string), and reading a prefix of the body (a body too large
//!   to read whole) never reports a different id than the whole body.
//! - a `tools/call` / `resources/read` classification names what the body
//!   says (`params.name` / `params.uri`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_server::jsonrpc::{self, PeekError, RequestId};
use mcp_server::policy::Operation;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let readable = jsonrpc::readable(body);
    let peeked = jsonrpc::peek(body);
    let checked = jsonrpc::check(body);
    match &readable {
        Ok(()) => assert_eq!(checked, peeked, "check = readable + peek"),
        Err(e) => assert_eq!(checked.as_ref().err(), Some(e), "check = readable + peek"),
    }
    for e in [&readable.clone().err(), &peeked.clone().err()]
        .into_iter()
        .flatten()
    {
        let want = match e {
            PeekError::Parse => jsonrpc::PARSE_ERROR,
            PeekError::Batch | PeekError::Invalid(_) => jsonrpc::INVALID_REQUEST,
        };
        assert_eq!(e.code(), want);
    }

    let value: Option<Value> = serde_json::from_slice(body).ok();
    if let Ok(op) = &checked {
        let Some(Value::Object(obj)) = &value else {
            panic!("accepted a body that is not one JSON object: {value:?}");
        };
        // serde_json keeps the last of repeated keys; the peek refuses
        // repeats of these, so the two readings agree.
        let params = obj.get("params");
        match op {
            Operation::ToolCall { name } => {
                assert_eq!(
                    obj.get("method").and_then(Value::as_str),
                    Some("tools/call")
                );
                assert_eq!(
                    params.and_then(|p| p.get("name")).and_then(Value::as_str),
                    Some(name.as_str())
                );
            }
            Operation::ResourceRead { uri } => {
                assert_eq!(
                    obj.get("method").and_then(Value::as_str),
                    Some("resources/read")
                );
                assert_eq!(
                    params.and_then(|p| p.get("uri")).and_then(Value::as_str),
                    Some(uri.as_str())
                );
            }
            Operation::Other { method } => {
                assert_eq!(
                    obj.get("method").and_then(Value::as_str),
                    Some(method.as_str())
                );
            }
            Operation::NoMethod => {
                assert!(obj.get("method").is_none_or(Value::is_null), "{obj:?}");
            }
        }
    }

    let id = jsonrpc::peek_id(body);
    if let Some(id) = &id {
        // An id is only reported once the token after it is read, so a
        // reported id is the whole body's top-level id whenever the body is
        // one JSON object.
        if let Some(Value::Object(obj)) = &value {
            let written = match obj.get("id") {
                Some(Value::Number(n)) => Some(RequestId::Number(n.clone())),
                Some(Value::String(s)) => Some(RequestId::String(s.clone())),
                _ => None,
            };
            assert_eq!(written.as_ref(), Some(id), "peek_id vs the parsed body");
        }
    }
    // A prefix (the first `len` bytes, `len` taken from the body itself)
    // never reports an id the whole body does not have.
    if let Some(&b) = body.first() {
        let len = usize::from(b) * body.len() / 256;
        if let Some(prefix_id) = jsonrpc::peek_id(&body[..len]) {
            assert!(
                id.is_none() || id.as_ref() == Some(&prefix_id),
                "prefix id {prefix_id:?} vs whole-body id {id:?}"
            );
        }
    }
});
