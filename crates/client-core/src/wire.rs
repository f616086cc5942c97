//! What the client adds to rmcp's HTTP client on the way in, for the
//! authorized and the anonymous transport alike ([`Wire`] wraps either).
//!
//! - **Legacy servers answering `server/discover` with a result.** rmcp's
//!   `Auto` lifecycle falls back to `initialize` when the probe gets a
//!   JSON-RPC error or a 4xx; a 2025-11-25 server that answers every unknown
//!   request with `{"result": {}}` (the conformance suite's `initialize` and
//!   `sse-retry` servers do) would instead end the connection with "expect
//!   initialized result". Such an answer is turned into an `invalid_request`
//!   error for the probe's id, so rmcp falls back at once (no timeout).
//! - **Oversized SSE events.** rmcp's reqwest client stops an event larger
//!   than the limit, but on a POST stream it then reports only "response
//!   stream closed before its final response". The event is replaced by a
//!   JSON-RPC error for the request that names the limit (data key
//!   [`TOO_LARGE_KEY`]), which [`crate::mcp`] turns into `McpError::TooLarge`.
//!   On a GET stream (no request to answer) the client logs one warning
//!   naming the limit. Oversized JSON answers already come back as rmcp's
//!   `ResponseBodyTooLarge`.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use serde_json::json;
use sse_stream::Sse;

/// `data` key of the JSON-RPC error that stands in for an oversized event.
pub const TOO_LARGE_KEY: &str = "securemcp/too_large";

type HttpResult<T, E> = Result<T, StreamableHttpError<E>>;

/// rmcp's HTTP client `C` with the two corrections above.
#[derive(Clone, Debug)]
pub struct Wire<C> {
    inner: C,
}

impl<C> Wire<C> {
    pub fn new(inner: C) -> Self {
        Self { inner }
    }
}

/// What a POST is waiting for: its id, and whether it is the discover probe.
#[derive(Clone)]
struct Pending {
    id: RequestId,
    discover: bool,
}

impl Pending {
    fn of(message: &ClientJsonRpcMessage, session: bool) -> Option<Self> {
        let ClientJsonRpcMessage::Request(request) = message else {
            return None;
        };
        Some(Self {
            id: request.id.clone(),
            discover: !session && matches!(request.request, ClientRequest::DiscoverRequest(_)),
        })
    }

    /// A legacy server's answer to the probe becomes an error rmcp reads as "legacy".
    fn correct(&self, message: ServerJsonRpcMessage) -> ServerJsonRpcMessage {
        match message {
            ServerJsonRpcMessage::Response(response)
                // The probe is the only request outstanding on its POST.
                if self.discover && !matches!(response.result, ServerResult::DiscoverResult(_)) =>
            {
                ServerJsonRpcMessage::error(
                    ErrorData::invalid_request(
                        "server/discover was answered without a discover result (a 2025-11-25 server)",
                        None,
                    ),
                    Some(self.id.clone()),
                )
            }
            other => other,
        }
    }
}

/// The JSON-RPC error that replaces an event larger than `max` bytes.
pub fn too_large_error(max: usize) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        format!("the MCP server sent an SSE event larger than {max} bytes"),
        Some(json!({ TOO_LARGE_KEY: max })),
    )
}

/// rmcp's bounded SSE reader reports an oversized event as a body error
/// with this text (its error type is private). The hostile-server tests in
/// `tests/api/limits.rs` fail if rmcp changes it.
fn is_oversized(e: &SseError) -> bool {
    matches!(e, SseError::Body(inner)
        if inner.to_string().starts_with("SSE event exceeded the maximum size"))
}

fn guard_stream(
    stream: BoxedSseResponse,
    pending: Option<Pending>,
    max: usize,
) -> BoxedSseResponse {
    futures::stream::unfold(Some(stream), move |state| {
        let pending = pending.clone();
        async move {
            let mut stream = state?;
            match stream.next().await? {
                Ok(mut sse) => {
                    if let Some(p) = pending.as_ref().filter(|p| p.discover)
                        && let Some(data) = sse.data.as_deref()
                        && let Ok(message) = serde_json::from_str::<ServerJsonRpcMessage>(data)
                        && let Ok(corrected) = serde_json::to_string(&p.correct(message))
                    {
                        sse.data = Some(corrected);
                    }
                    Some((Ok(sse), Some(stream)))
                }
                Err(e) if is_oversized(&e) => {
                    tracing::warn!(
                        "the MCP server sent an SSE event larger than {max} bytes (the client's limit for one MCP message); the stream was dropped"
                    );
                    // Answer the request this stream was for, then end it.
                    let answer = pending.and_then(|p| {
                        let error = ServerJsonRpcMessage::error(too_large_error(max), Some(p.id));
                        serde_json::to_string(&error).ok()
                    });
                    match answer {
                        Some(data) => Some((Ok(Sse::default().data(data)), None)),
                        None => Some((Err(e), None)),
                    }
                }
                Err(e) => Some((Err(e), Some(stream))),
            }
        }
    })
    .boxed()
}

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for Wire<C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse, C::Error> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse, C::Error> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> HttpResult<StreamableHttpPostResponse, C::Error> {
        let pending = Pending::of(&message, session_id.is_some());
        let response = self
            .inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await?;
        Ok(match (response, pending) {
            (StreamableHttpPostResponse::Json(message, session), Some(p)) => {
                StreamableHttpPostResponse::Json(p.correct(message), session)
            }
            (StreamableHttpPostResponse::Sse(stream, session), pending) => {
                StreamableHttpPostResponse::Sse(
                    guard_stream(stream, pending, limits.max_sse_event_size),
                    session,
                )
            }
            (other, _) => other,
        })
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<(), C::Error> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxedSseResponse, C::Error> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default().max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxedSseResponse, C::Error> {
        let stream = self
            .inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await?;
        Ok(guard_stream(stream, None, max_sse_event_size))
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ClientRequest, DiscoverRequest, DiscoverRequestParams, ServerResult};
    use serde_json::json;

    use super::*;

    fn probe() -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::request(
            ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams {})),
            RequestId::Number(7),
        )
    }

    fn answer(result: serde_json::Value) -> ServerJsonRpcMessage {
        serde_json::from_value(json!({"jsonrpc": "2.0", "id": 7, "result": result})).unwrap()
    }

    #[test]
    fn a_legacy_servers_result_to_the_probe_becomes_invalid_request() {
        let pending = Pending::of(&probe(), false).unwrap();
        let ServerJsonRpcMessage::Error(error) = pending.correct(answer(json!({}))) else {
            panic!("not turned into an error");
        };
        assert_eq!(error.id, Some(RequestId::Number(7)));
        assert_eq!(error.error.code, ErrorCode::INVALID_REQUEST);
    }

    #[test]
    fn a_discover_result_and_other_requests_pass_unchanged() {
        let discovered = answer(json!({
            "resultType": "complete", "supportedVersions": ["2026-07-28"],
            "capabilities": {}, "ttlMs": 0, "cacheScope": "private"}));
        let ServerJsonRpcMessage::Response(r) = &discovered else {
            panic!("fixture")
        };
        assert!(matches!(r.result, ServerResult::DiscoverResult(_)), "{r:?}");
        let pending = Pending::of(&probe(), false).unwrap();
        assert!(matches!(
            pending.correct(discovered),
            ServerJsonRpcMessage::Response(_)
        ));
        // Inside a session it is not the probe.
        let in_session = Pending::of(&probe(), true).unwrap();
        assert!(matches!(
            in_session.correct(answer(json!({}))),
            ServerJsonRpcMessage::Response(_)
        ));
    }
}
