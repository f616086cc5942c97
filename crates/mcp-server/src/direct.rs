//! The direct `tools/call` path (issue 15, decision 0015).
//!
//! rmcp serves a 2026-07-28 stateless request by spawning a whole service
//! task per request (a oneshot transport, the serve loop, a channel for the
//! answer), deserialising the message into its untagged enums, and for the
//! SEP-2243 header check serialising it back into a `serde_json::Value`; a
//! request inside a 2025-11-25 session crosses two channels to the
//! session's worker task and back, and is answered on an event stream. A
//! profile of the loaded server put rmcp's per-request work at ~22 % of the
//! CPU. For the one request that dominates real traffic — `tools/call` —
//! [`DirectCalls`] answers after [`McpGate`] has run every check: it parses
//! the body once, re-checks exactly what rmcp would check, calls the same
//! tool code as rmcp's `call_tool` ([`McpHandler::call_tool_for`]) and
//! writes rmcp's message through rmcp's own model types.
//!
//! It takes a POST only when every rmcp validation is known to pass: an
//! `Accept` listing both `application/json` and `text/event-stream` with no
//! parameters; a JSON `Content-Type`; a body within the limit; a JSON-RPC
//! *request* (not a notification) `tools/call`; and one of two wires:
//!
//! - **stateless**: no `Mcp-Session-Id`; `_meta` names protocol
//!   `2026-07-28` with every required field; one `MCP-Protocol-Version:
//!   2026-07-28` header; one `Mcp-Method: tools/call`; one `Mcp-Name` equal
//!   to `params.name` (not Base64-wrapped). The answer is rmcp's, byte for
//!   byte (status, the one `content-type` header, the JSON).
//! - **session**: one `Mcp-Session-Id` that the session binding knows as
//!   this caller's and that rmcp still holds, seen by rmcp less than
//!   [`RMCP_REFRESH`] ago (so rmcp's idle timer never runs out under a
//!   busy session); at most one `MCP-Protocol-Version`, naming a version
//!   before 2026-07-28; no protocol version in `_meta`. rmcp answers such a
//!   request with an event stream carrying one message; this path answers
//!   200 with that message as `application/json`, which the streamable
//!   HTTP transport lets a server choose for any request ("either
//!   `text/event-stream` … or `application/json`") and every client must
//!   accept. The message is the same; it has no event id to resume from,
//!   and needs none (a JSON answer is complete or absent).
//!
//! Anything else — every other method, GET, DELETE, notifications, another
//! principal's or an unknown session, a request any check would refuse or
//! that the path is not sure about — goes to rmcp, so its error answers
//! stay rmcp's. The equivalence test (`middleware::gate` tests) sends one
//! table of requests through both paths and compares status, headers and
//! bodies (for session rows: status and message).
//!
//! [`RMCP_REFRESH`]: crate::sessions::RMCP_REFRESH
//! [`McpGate`]: crate::middleware::gate::McpGate

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rmcp::model::{
    CallToolResponse, ClientJsonRpcMessage, ClientRequest, ErrorCode, GetMeta as _,
    ProtocolVersion, ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::common::http_header::{
    BASE64_HEADER_PREFIX, EVENT_STREAM_MIME_TYPE, HEADER_MCP_METHOD, HEADER_MCP_NAME,
    HEADER_MCP_PROTOCOL_VERSION, HEADER_SESSION_ID, JSON_MIME_TYPE,
};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use crate::mcp::McpHandler;
use crate::policy::Caller;
use crate::state::{AppState, MAX_BODY_BYTES};

/// Serves `tools/call` requests without rmcp's per-request task (see the
/// module docs).
pub struct DirectCalls {
    handler: McpHandler,
    /// rmcp's session table: a session's call is taken only while rmcp
    /// still holds the session.
    sessions: Arc<LocalSessionManager>,
}

/// The two wires this path serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// 2026-07-28, no session.
    Stateless,
    /// 2025-11-25 (or older) inside a live session of the caller.
    Session,
}

/// The `MCP-Protocol-Version` values rmcp serves in a session without any
/// per-request metadata or SEP-2243 header check (its known versions
/// before 2026-07-28).
const SESSION_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

impl DirectCalls {
    pub fn new(state: &AppState) -> Self {
        Self {
            handler: McpHandler::new(state.clone()),
            sessions: state.rmcp_sessions().clone(),
        }
    }

    /// rmcp's answer to a request (its method, headers, and the POST body
    /// the gate read: `body`), or `None` when the request is not one this
    /// path takes: then nothing has run, and the request goes to rmcp.
    /// `session_is_direct`: the session binding found the request's
    /// `Mcp-Session-Id` opened by this caller and recently seen by rmcp
    /// ([`crate::sessions::Verdict::Owned`]).
    pub async fn serve(
        &self,
        caller: &Caller,
        method: &Method,
        headers: &HeaderMap,
        body: Option<&Bytes>,
        session_is_direct: bool,
    ) -> Option<Response> {
        let body = body?;
        let wire = self
            .wire(method, headers, body.len(), session_is_direct)
            .await?;
        let ClientJsonRpcMessage::Request(request) =
            serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()?
        else {
            return None;
        };
        let ClientRequest::CallToolRequest(call) = &request.request else {
            return None;
        };
        let meta = request.request.get_meta();
        let fits = match wire {
            Wire::Stateless => {
                meta.protocol_version() == Some(ProtocolVersion::V_2026_07_28)
                    && meta
                        .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                        .is_empty()
                    && name_header_matches(headers, &call.params.name)
            }
            // A version in `_meta` would make rmcp check it against the
            // header (and 2026-07-28 metadata would take it out of the
            // session).
            Wire::Session => meta.protocol_version().is_none(),
        };
        if !fits {
            return None;
        }
        let id = request.id;
        let ClientRequest::CallToolRequest(call) = request.request else {
            return None;
        };
        let message = match self.handler.call_tool_for(caller, call.params).await {
            Ok(result) => {
                let mut result = ServerResult::from(CallToolResponse::from(result));
                // What rmcp's `ServerHandler::handle_request` does to every
                // result for the negotiated version: a session is always
                // on a version before 2026-07-28 (its `initialize` answers
                // with one).
                match wire {
                    Wire::Stateless => result.fill_missing_cache_hints(),
                    Wire::Session => {
                        result.strip_result_type_for_legacy_peer();
                        result.strip_non_object_output_for_legacy_peer();
                    }
                }
                ServerJsonRpcMessage::response(result, id)
            }
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        };
        let status = match wire {
            Wire::Stateless => status_of(&message),
            // rmcp answers inside a session on a 200 event stream, errors
            // included.
            Wire::Session => StatusCode::OK,
        };
        Some(answer(&message, status))
    }

    /// Which wire a request is on, when every check rmcp makes before it
    /// parses the message is known to pass.
    async fn wire(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body_len: usize,
        session_is_direct: bool,
    ) -> Option<Wire> {
        if !(method == Method::POST
            && body_len <= MAX_BODY_BYTES
            && accepts_json_and_sse(headers)
            && content_type_is_json(headers))
        {
            return None;
        }
        if !headers.contains_key(HEADER_SESSION_ID) {
            let stateless = only_value(headers, HEADER_MCP_PROTOCOL_VERSION)
                .is_some_and(|v| v == ProtocolVersion::V_2026_07_28.as_str())
                && only_value(headers, HEADER_MCP_METHOD).is_some_and(|v| v == "tools/call");
            return stateless.then_some(Wire::Stateless);
        }
        if !session_is_direct {
            return None;
        }
        let version_ok = match headers.get_all(HEADER_MCP_PROTOCOL_VERSION).iter().count() {
            0 => true,
            1 => only_value(headers, HEADER_MCP_PROTOCOL_VERSION)
                .is_some_and(|v| SESSION_VERSIONS.iter().any(|known| v == known.as_str())),
            _ => false,
        };
        let sid = only_value(headers, HEADER_SESSION_ID)?.to_str().ok()?;
        // The question rmcp asks first (`has_session`): a session whose
        // worker has ended, or that a DELETE has removed, is rmcp's to
        // answer (404).
        let live = version_ok && self.sessions.sessions.read().await.contains_key(sid);
        live.then_some(Wire::Session)
    }
}

/// The header's value when it is sent exactly once.
fn only_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// `Mcp-Name` is sent once and is the tool's name as such (a Base64-wrapped
/// value is left to rmcp's decoder).
fn name_header_matches(headers: &HeaderMap, name: &str) -> bool {
    only_value(headers, HEADER_MCP_NAME)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == name && !name.starts_with(BASE64_HEADER_PREFIX))
}

/// Both media types listed, and no entry with parameters or quotes (whose
/// `q` handling is left to rmcp): a subset of what rmcp accepts.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            if entry.contains([';', '"']) {
                return false;
            }
            let essence = entry.trim();
            json |= essence.eq_ignore_ascii_case(JSON_MIME_TYPE);
            sse |= essence.eq_ignore_ascii_case(EVENT_STREAM_MIME_TYPE);
        }
    }
    json && sse
}

/// rmcp's Content-Type test: the essence before any `;` is JSON.
fn content_type_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(JSON_MIME_TYPE)
        })
}

/// rmcp's status for a stateless 2026-07-28 answer (`jsonrpc_http_status`
/// in its `tower.rs`; the request's `_meta` is well formed here).
fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    let ServerJsonRpcMessage::Error(error) = message else {
        return StatusCode::OK;
    };
    match error.error.code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// rmcp's JSON answer (`jsonrpc_message_response`): `status`, one
/// `content-type` header, the message's JSON.
fn answer(message: &ServerJsonRpcMessage, status: StatusCode) -> Response {
    let mut resp = match serde_json::to_vec(message) {
        Ok(json) => {
            let mut resp = Response::new(Body::from(Bytes::from(json)));
            *resp.status_mut() = status;
            resp
        }
        // rmcp answers a message it cannot serialise with a 500 too (the
        // model types serialise infallibly; this is not expected).
        Err(error) => {
            tracing::error!(%error, "serialising a tools/call answer");
            let mut resp = Response::new(Body::from("Internal Server Error"));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return resp;
        }
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_MIME_TYPE),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_is_taken_only_in_its_plain_form() {
        let ok = |v: &'static str| accepts_json_and_sse(&headers(&[("accept", v)]));
        assert!(ok("application/json, text/event-stream"));
        assert!(ok("text/event-stream,APPLICATION/JSON"));
        assert!(!ok("application/json"));
        assert!(!ok("application/json;q=0, text/event-stream"));
        assert!(!ok("application/json, text/event-stream;q=1"));
        assert!(!ok("*/*"));
        assert!(accepts_json_and_sse(&headers(&[
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
        ])));
    }

    #[test]
    fn repeated_singleton_headers_are_left_to_rmcp() {
        let h = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]);
        assert!(only_value(&h, HEADER_MCP_METHOD).is_none());
        let h = headers(&[("mcp-name", "=?base64?Zm9v?=")]);
        assert!(!name_header_matches(&h, "=?base64?Zm9v?="));
        assert!(!name_header_matches(&h, "foo"));
    }

    /// The path does not check `Mcp-Param-*` headers: it relies on no tool
    /// declaring one (an `x-mcp-header` annotation in its schema).
    #[test]
    fn no_tool_declares_a_param_header() {
        for tool in crate::tools::ALL {
            let schema = (tool.input_schema)().unwrap();
            let json = serde_json::to_string(&*schema).unwrap();
            assert!(!json.contains("x-mcp-header"), "{}", tool.name);
        }
    }
}
