//! Just enough JSON-RPC to authorize a request before rmcp sees it: check
//! that rmcp can read the (size-limited) body ([`check`]), peek at `method`,
//! `params.name` and `params.uri` ([`peek`]), and find the request `id` that an error answer echoes
//! ([`peek_id`]; the answers themselves are [`crate::error::McpHttpError`]).
//!
//! The peek is strict where it matters for security: a body whose `method`,
//! `params`, `name` or `uri` key appears twice is refused, so the middleware
//! and rmcp can never disagree about which tool is being called. The id is
//! only looked for when an error is answered, so a served request pays nothing
//! for it.

use std::borrow::Cow;

use rmcp::model::ClientJsonRpcMessage;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::policy::Operation;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
/// Implementation-defined server error (JSON-RPC reserves -32000..-32099):
/// our 429 and 503 answers.
pub const SERVER_ERROR: i32 = -32000;

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

/// Checks that rmcp will accept `body` as one message, then classifies it
/// ([`peek`]): the answer for a body rmcp cannot read is given here, as a
/// JSON-RPC error, instead of rmcp's `415 text/plain`.
///
/// rmcp reads the body with `serde_json::from_slice::<ClientJsonRpcMessage>`
/// and answers 415 to *any* failure. Running the same call first makes the
/// two agree exactly: what serde_json refuses as JSON (nesting deeper than
/// its limit of 128, a number out of `f64` range like `1e400`, trailing
/// bytes, invalid UTF-8) is a parse error (-32700, `id: null`); JSON that is
/// not a JSON-RPC message (`{}`, a request without `method`) is an invalid
/// request (-32600). [`peek`] alone could not tell: it skips what it does not
/// need (`IgnoredAny` neither limits depth nor reads numbers).
pub fn check(body: &[u8]) -> Result<Operation, PeekError> {
    readable(body)?;
    peek(body)
}

/// The first half of [`check`]: whether rmcp can read `body`, without
/// classifying it (a request whose SEP-2243 headers name the operation).
pub fn readable(body: &[u8]) -> Result<(), PeekError> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(body) {
        Ok(_) => Ok(()),
        Err(e) if e.classify() != serde_json::error::Category::Data => Err(PeekError::Parse),
        // Valid JSON, no message: the peek says why when it can (a batch,
        // a repeated key), else serde's reason.
        Err(e) => Err(peek(body).err().unwrap_or_else(|| {
            PeekError::Invalid(format!(
                "not a JSON-RPC request, notification or response ({e})"
            ))
        })),
    }
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

/// A JSON-RPC request id as the request wrote it: an integer or a string.
/// (JSON-RPC allows fractional numbers but says they SHOULD NOT be used, and
/// rmcp refuses them; such an id, like `null`, counts as unknown.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    String(String),
}

/// The top-level `id` of a JSON-RPC message, if it can be told: `None` for
/// a body that is not a JSON object, a batch, a notification (no `id`), an id
/// that is neither an integer nor a string, or an `id` key given twice.
///
/// `body` may be a prefix of the message (a body too large to read whole):
/// the id counts once the token after it (`,` or `}`) has been read, so a
/// number cut short by the prefix is never echoed as a different number.
pub fn peek_id(body: &[u8]) -> Option<RequestId> {
    let mut found = IdScan::Absent;
    let mut de = serde_json::Deserializer::from_slice(body);
    // Errors are expected (a prefix ends mid-value); what was found stays.
    let _ = TopLevel(&mut found).deserialize(&mut de);
    match found {
        IdScan::One(id) => Some(id),
        IdScan::Absent | IdScan::Pending(_) | IdScan::Unknown => None,
    }
}

enum IdScan {
    Absent,
    /// Read, but the token after it not yet.
    Pending(RequestId),
    One(RequestId),
    /// Repeated or of another type.
    Unknown,
}

/// An `id` value: only integers and strings are ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawId {
    Number(serde_json::Number),
    String(String),
    Other(IgnoredAny),
}

impl RawId {
    fn into_id(self) -> Option<RequestId> {
        match self {
            RawId::Number(n) if n.is_i64() || n.is_u64() => Some(RequestId::Number(n)),
            RawId::String(s) => Some(RequestId::String(s)),
            RawId::Number(_) | RawId::Other(_) => None,
        }
    }
}

struct TopLevel<'s>(&'s mut IdScan);

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            let key = map.next_key::<Cow<'de, str>>();
            if key.is_ok() {
                *self.0 = match std::mem::replace(self.0, IdScan::Absent) {
                    IdScan::Pending(id) => IdScan::One(id),
                    other => other,
                };
            }
            let Some(key) = key? else {
                return Ok(());
            };
            if key == "id" {
                let id = map.next_value::<RawId>()?.into_id();
                *self.0 = match (&*self.0, id) {
                    (IdScan::Absent, Some(id)) => IdScan::Pending(id),
                    _ => IdScan::Unknown,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op(s: &str) -> Result<Operation, PeekError> {
        peek(s.as_bytes())
    }

    #[test]
    fn check_refuses_what_rmcp_cannot_read_with_the_json_rpc_code() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_param = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"a":{}1{}}}}}"#,
            "{\"a\":".repeat(200),
            "}".repeat(200)
        );
        for bad in [
            deep.as_str(),
            deep_param.as_str(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"n":1e400}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"} x"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}{}"#,
            "",
            "   ",
        ] {
            assert_eq!(check(bad.as_bytes()), Err(PeekError::Parse), "{bad:.80}");
        }
        let mut utf8 = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"s":""#.to_vec();
        utf8.extend_from_slice(&[0xff, 0xfe]);
        utf8.extend_from_slice(br#""}}"#);
        assert_eq!(check(&utf8), Err(PeekError::Parse));
        // Valid JSON, not a message: invalid request.
        for bad in [
            "{}",
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        ] {
            assert!(
                matches!(check(bad.as_bytes()), Err(PeekError::Invalid(ref m)) if m.starts_with("not a JSON-RPC request, notification or response")),
                "{bad}: {:?}",
                check(bad.as_bytes())
            );
        }
        assert_eq!(check(b"[1]"), Err(PeekError::Batch));
        // 127 levels inside params are fine (serde_json's limit is 128 in all).
        let ok = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"a":{}1{}}}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        assert_eq!(
            check(ok.as_bytes()),
            Ok(Operation::Other {
                method: "tools/list".into()
            })
        );
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}"#),
            Ok(Operation::ToolCall { name: "t".into() })
        );
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

    fn num(n: i64) -> Option<RequestId> {
        Some(RequestId::Number(n.into()))
    }

    fn text(s: &str) -> Option<RequestId> {
        Some(RequestId::String(s.into()))
    }

    #[test]
    fn finds_the_id() {
        let id = |s: &str| peek_id(s.as_bytes());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#),
            num(7)
        );
        assert_eq!(id(r#"{"method":"tools/list","id":7}"#), num(7));
        assert_eq!(id(r#"{"id":"abc","method":"x"}"#), text("abc"));
        assert_eq!(id(r#"{"id":"7"}"#), text("7"), "a string stays a string");
        assert_eq!(id(r#"{"id":-3}"#), num(-3));
        assert_eq!(
            id(r#"{"id":18446744073709551615}"#),
            Some(RequestId::Number(u64::MAX.into()))
        );
        // A nested id is not the message's.
        assert_eq!(id(r#"{"params":{"id":1},"method":"x"}"#), None);
        assert_eq!(id(r#"{"params":{"id":1},"id":2}"#), num(2));
        // Unknown: notification, null, other types, repeated, not an object, batch.
        assert_eq!(id(r#"{"method":"notifications/initialized"}"#), None);
        assert_eq!(id(r#"{"id":null}"#), None);
        assert_eq!(id(r#"{"id":1.5}"#), None);
        assert_eq!(id(r#"{"id":true}"#), None);
        assert_eq!(id(r#"{"id":{"a":1}}"#), None);
        assert_eq!(id(r#"{"id":1,"id":2}"#), None);
        assert_eq!(id(r#"{"id":1,"id":1}"#), None);
        assert_eq!(id("not json"), None);
        assert_eq!(id(""), None);
        assert_eq!(id(r#"[{"id":1}]"#), None);
        assert_eq!(id("7"), None);
        // Invalid messages whose id can still be told.
        assert_eq!(id(r#"{"id":4,"method":1}"#), num(4));
        assert_eq!(
            id(r#"{"id":5,"method":"tools/list","method":"tools/call"}"#),
            num(5)
        );
    }

    #[test]
    fn finds_the_id_in_a_prefix_and_never_a_cut_number() {
        let id = |s: &str| peek_id(s.as_bytes());
        // The body was cut inside a later value: the id was complete.
        assert_eq!(id(r#"{"id":7,"params":{"pad":"xxxx"#), num(7));
        assert_eq!(id(r#"{"id":"abc","params":["#), text("abc"));
        // Cut right after the value: the next token is unseen, so 12 may be 1234.
        assert_eq!(id(r#"{"id":12"#), None);
        assert_eq!(id(r#"{"id":"ab"#), None);
        assert_eq!(id(r#"{"params":{"pad":"xx"#), None);
        // The id counts once the next key has been read whole.
        assert_eq!(id(r#"{"id":1,"params""#), num(1));
        assert_eq!(id(r#"{"id":1,"#), None);
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
        fn finds_any_id_as_written(n in any::<i64>(), s in ".{0,20}", pad in 0usize..64) {
            let padding = "x".repeat(pad);
            let body = format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"pad":"{padding}"}}}}"#);
            prop_assert_eq!(peek_id(body.as_bytes()), num(n));
            let body = serde_json::json!({"jsonrpc":"2.0","id":s,"method":"ping"}).to_string();
            prop_assert_eq!(peek_id(body.as_bytes()), text(&s));
        }

        #[test]
        fn a_prefix_never_yields_a_wrong_id(n in any::<i64>(), cut in 0usize..80) {
            let body = format!(r#"{{"id":{n},"method":"tools/call","params":{{"name":"get_customer_info"}}}}"#);
            let prefix = &body.as_bytes()[..cut.min(body.len())];
            let found = peek_id(prefix);
            prop_assert!(found.is_none() || found == num(n), "{:?} from {:?}", found, String::from_utf8_lossy(prefix));
        }

        #[test]
        fn peek_id_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = peek_id(&bytes);
        }

        #[test]
        fn valid_json_that_is_not_an_object_is_never_a_parse_error(v in proptest::collection::vec(any::<i32>(), 0..5)) {
            let body = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(peek(&body), Err(PeekError::Batch));
        }
    }
}
