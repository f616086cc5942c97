//! Step 3 on `/mcp`: the scope of the requested operation.
//!
//! Which operation? For requests on the 2026-07-28 protocol
//! (`MCP-Protocol-Version` ≥ 2026-07-28) the SEP-2243 headers say it:
//! `Mcp-Method` and `Mcp-Name` (plain or `=?base64?…?=`). rmcp refuses, with
//! 400/-32020 and before dispatch, any such request whose headers disagree
//! with its body. Older requests carry no such headers: the operation comes
//! from the body's `method`, `params.name`, `params.uri`
//! ([`crate::jsonrpc::peek`]).
//!
//! Every POST body is read here (at most [`MAX_BODY_BYTES`]), so a body rmcp
//! could not read is answered with a JSON-RPC error rather than rmcp's
//! `415 text/plain`: 415 for a `Content-Type` other than JSON (rmcp's own
//! answer, before any byte is read), 413 over the limit, 400 with -32700
//! (`id: null`) for malformed JSON of any shape (too deep, `1e400`, trailing
//! bytes), 400 with -32600 for JSON that is not one JSON-RPC message.
//!
//! One parse on the way in: only the peek (none at all when the SEP-2243
//! headers name the operation). Whether rmcp can read the message
//! ([`jsonrpc::readable`], the same `serde_json` call rmcp makes) is asked
//! only when an answer depends on it ([`readable`]): before any later
//! refusal (403 here, the limiter's 429/503, the session binding's 404), and
//! when rmcp itself refused the body unread (406/415). A body that fails the
//! peek gets the full check at once ([`jsonrpc::check`]). So every answer is
//! the one a check before the scope would give, and a served call no longer
//! parses its message twice before rmcp's own parse (the check was an
//! eighth of the server's instructions per stateless call, BENCHMARKS.md).
//! The one difference: such a body, when nothing else refuses it, has spent
//! a unit of its client's budget by the time rmcp refuses it.
//!
//! A `tools/call` or `resources/read` whose scope the caller lacks gets a 403
//! challenge and a `mcp.scope_denied` audit event. The handler checks again
//! (the "second wall", DESIGN.md §5). The classified [`Operation`] and the
//! body read here go on to the rate limiter ([`Scoped`]): the body is read
//! once per request.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::audit::{AuditEvent, AuditLog, names};
use crate::challenge::Challenges;
use crate::error::McpHttpError;
use crate::jsonrpc;
use crate::middleware::body::{self, Bounded};
use crate::policy::{Caller, Operation};
use crate::state::{AppState, MAX_BODY_BYTES};

/// What this step needs.
#[derive(Clone)]
pub struct ScopeState {
    challenges: Arc<Challenges>,
    audit: Arc<AuditLog>,
}

impl ScopeState {
    pub fn new(state: &AppState) -> Self {
        Self {
            challenges: state.challenges().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// The first protocol revision with standard request headers (SEP-2243).
pub const STANDARD_HEADERS_VERSION: &str = "2026-07-28";

/// The single value of header `name`, trimmed; `Err` if repeated or not text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    v.to_str().map(|s| Some(s.trim())).map_err(|_| ())
}

/// `=?base64?…?=` values are decoded (SEP-2243 value encoding).
fn decode_header_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(inner) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(raw.to_owned()),
    }
}

/// The operation named by the SEP-2243 headers, when the request is on a
/// protocol revision where rmcp enforces them. `None`: read the body instead.
pub fn operation_from_headers(headers: &HeaderMap) -> Option<Operation> {
    let version = single_header(headers, "mcp-protocol-version").ok()??;
    // ISO dates compare lexically; the same test rmcp applies.
    if version < STANDARD_HEADERS_VERSION {
        return None;
    }
    let method = single_header(headers, "mcp-method").ok()??;
    let name = match single_header(headers, "mcp-name") {
        Ok(Some(raw)) => Some(decode_header_value(raw)?),
        Ok(None) => None,
        // Duplicate or binary Mcp-Name: rmcp refuses the request; read the body meanwhile.
        Err(()) => return None,
    };
    let name = name.as_deref().map(str::trim);
    Some(Operation::from_parts(Some(method), name, name))
}

/// A request that passed this step.
#[derive(Debug)]
pub struct Scoped {
    /// The request, its body (if read) put back for rmcp.
    pub req: Request,
    /// What it asks for.
    pub op: Operation,
    /// The body of a POST, as read here: where a later refusal finds the id
    /// it echoes, and what [`readable`] checks.
    pub body: Option<Bytes>,
}

/// `Err` with the answer for a POST `body` that rmcp could not read (see
/// the module docs); `Ok` for a readable body, or none.
pub fn readable(body: Option<&Bytes>) -> Result<(), McpHttpError> {
    match body {
        Some(bytes) => jsonrpc::readable(bytes).map_err(|error| invalid(error, bytes)),
        None => Ok(()),
    }
}

fn invalid(error: jsonrpc::PeekError, bytes: &[u8]) -> McpHttpError {
    // JSON-RPC 2.0 §5: the id of a message that does not parse is null.
    let id = match error {
        jsonrpc::PeekError::Parse => None,
        _ => body::buffered_request_id(bytes),
    };
    McpHttpError::InvalidMessage { error, id }
}

/// Classifies `req` (reading and checking a POST's body), then allows it
/// for `caller` or answers 403.
pub async fn require_scope(
    state: &ScopeState,
    caller: &Caller,
    req: Request,
) -> Result<Scoped, McpHttpError> {
    let started = Instant::now();
    let (req, op, body) = if req.method() != Method::POST {
        (req, Operation::NoMethod, None)
    } else {
        // The SEP-2243 headers name the operation where rmcp enforces them;
        // the body is read and checked on every POST all the same, so a body
        // rmcp could not read gets a JSON-RPC answer (not rmcp's 415 text).
        let from_headers = operation_from_headers(req.headers());
        let (req, op, body) = read_and_peek(req, from_headers).await?;
        (req, op, Some(body))
    };
    if let Some(required) = op.required_scope()
        && !caller.has_scope(required)
    {
        readable(body.as_ref())?;
        let target = op.target().unwrap_or_default();
        let mut event = AuditEvent::new(names::SCOPE_DENIED, "denied")
            .client(caller.client_id())
            .subject(caller.sub())
            .reason("insufficient_scope")
            .required_scope(required)
            .latency(started.elapsed());
        let description = match &op {
            Operation::ToolCall { .. } => {
                event = event.tool(target);
                format!("The tool {target} requires the scope {required}")
            }
            _ => {
                event = event.resource(target);
                format!("The resource {target} requires the scope {required}")
            }
        };
        state.audit.record(event);
        return Err(state.challenges.forbidden(required, description));
    }
    Ok(Scoped { req, op, body })
}

/// rmcp's rule for a POST's `Content-Type`: the media type, parameters
/// ignored, is `application/json`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

/// Buffers the body (bounded) and classifies it: from the SEP-2243 headers
/// when they name the operation, else with the peek ([`jsonrpc::check`] when
/// the peek fails, for the exact error). A body rmcp would refuse for its
/// `Content-Type` (415) is not read at all. The request goes on with the
/// buffered body (a reference count, not a copy).
async fn read_and_peek(
    req: Request,
    from_headers: Option<Operation>,
) -> Result<(Request, Operation, Bytes), McpHttpError> {
    if !is_json(req.headers()) {
        return Err(McpHttpError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        // Only the start is read, for the id the answer echoes.
        let id = body::request_id(body).await;
        return Err(McpHttpError::PayloadTooLarge { id });
    }
    let bytes = match body::read_bounded(body, MAX_BODY_BYTES).await {
        Ok(Bounded::Whole(bytes)) => bytes,
        Ok(Bounded::TooLarge(prefix)) => {
            let id = body::buffered_request_id(&prefix);
            return Err(McpHttpError::PayloadTooLarge { id });
        }
        Err(e) => {
            tracing::debug!(error = %e, "failed to read request body");
            return Err(McpHttpError::UnreadableBody);
        }
    };
    let op = match from_headers {
        Some(op) => op,
        None => match jsonrpc::peek(&bytes) {
            Ok(op) => op,
            // What the check says first (e.g. a parse error for a batch too
            // deep for serde_json), as when every body was checked.
            Err(peeked) => {
                let error = jsonrpc::check(&bytes).err().unwrap_or(peeked);
                return Err(invalid(error, &bytes));
            }
        },
    };
    Ok((
        Request::from_parts(parts, Body::from(bytes.clone())),
        op,
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn reads_standard_headers_only_on_2026_requests() {
        let call = |v: &str| {
            operation_from_headers(&headers(&[
                ("MCP-Protocol-Version", v),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "create_support_ticket"),
            ]))
        };
        assert_eq!(
            call("2026-07-28"),
            Some(Operation::ToolCall {
                name: "create_support_ticket".into()
            })
        );
        assert_eq!(
            call("2099-01-01"),
            Some(Operation::ToolCall {
                name: "create_support_ticket".into()
            })
        );
        assert_eq!(call("2025-11-25"), None);
        assert_eq!(
            operation_from_headers(&headers(&[("Mcp-Method", "tools/call"), ("Mcp-Name", "x")])),
            None
        );
        assert_eq!(
            operation_from_headers(&headers(&[("MCP-Protocol-Version", "2026-07-28")])),
            None
        );
    }

    #[test]
    fn content_type_is_json_by_rmcps_rule() {
        let ct = |v: &str| is_json(&headers(&[("content-type", v)]));
        assert!(ct("application/json"));
        assert!(ct("Application/JSON; charset=utf-8"));
        assert!(ct(" application/json ;x=y"));
        assert!(!ct("text/plain"));
        assert!(!ct("application/json-seq"));
        assert!(!ct("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn decodes_base64_and_trims() {
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "=?base64?c2VjdXJpdHk6Ly9ldmVudHM=?="),
        ]);
        assert_eq!(
            operation_from_headers(&h),
            Some(Operation::ResourceRead {
                uri: "security://events".into()
            })
        );
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?!!?="),
        ]);
        assert_eq!(operation_from_headers(&h), None);
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a"),
            ("mcp-name", "b"),
        ]);
        assert_eq!(operation_from_headers(&h), None);
    }
}
