//! The seam into rmcp's streamable HTTP client.
//!
//! rmcp's transport talks HTTP through the [`StreamableHttpClient`] trait and
//! passes an optional bearer value to it on every call; its own
//! `AuthClient` wrapper refreshes through `AuthorizationManager`, which can
//! only use refresh tokens — a client_credentials client has none, so after
//! expiry or revocation rmcp would just fail. [`AuthorizedHttp`] wraps
//! rmcp's reqwest implementation the same way `AuthClient` does, with a
//! [`TokenSource`] behind it:
//!
//! - every request carries the current token (renewed before expiry);
//! - 401 → one re-authentication and one retry; a second 401 is an error;
//! - 403 `insufficient_scope` → one step-up per scope (a token that also
//!   carries the scope named in the challenge), then the request again;
//! - 429 / 5xx on a POST → bounded retries honouring `Retry-After`;
//!   connection failures (nothing was sent) likewise. Timeouts are not
//!   retried: the server may have run the tool.
//!
//! rmcp keeps its own work (sessions, SSE, re-initialisation on 404); the
//! errors it knows come back unchanged, ours arrive as
//! `StreamableHttpError::Client(TransportError)`. What rmcp sends besides the
//! body passes through untouched: `custom_headers` carry its protocol headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`),
//! `last_event_id` its SSE resumption, and the response limits it is given
//! bound every answer ([`crate::mcp::MCP_MAX`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, RequestParamsMeta as _};
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

use crate::retry::{self, RetryPolicy};
use crate::tls;
use crate::token::{TokenError, TokenSource};

/// Failures [`AuthorizedHttp`] adds to rmcp's own.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The HTTP layer failed (already explained when it was TLS).
    #[error("{}", tls::describe(.0))]
    Http(reqwest::Error),
    #[error(transparent)]
    Token(TokenError),
    /// The server rejected a freshly issued token as well.
    #[error("the MCP server rejects the tokens this authorization server issues ({challenge})")]
    Unauthorized { challenge: String },
    /// A step-up for `scope` was refused by the authorization server.
    #[error(
        "client `{client_id}` needs scope `{scope}` and the authorization server refused it: {source}"
    )]
    ScopeDenied {
        client_id: String,
        scope: String,
        #[source]
        source: TokenError,
    },
    /// Still 429/5xx when the retry budget ran out.
    #[error("the MCP server still answered HTTP {status} {summary}")]
    GaveUp { status: u16, summary: String },
    /// Connection failures until the retry budget ran out.
    #[error("cannot reach the MCP server ({summary}): {detail}")]
    Unreachable { summary: String, detail: String },
    #[error("{0}")]
    Other(String),
}

type HttpResult<T> = Result<T, StreamableHttpError<TransportError>>;

/// rmcp's reqwest client with tokens, re-authentication, step-up and retries.
#[derive(Clone)]
pub struct AuthorizedHttp {
    http: reqwest::Client,
    tokens: TokenSource,
    retry: RetryPolicy,
    /// The W3C `traceparent` of the span that opened the connection (a CLI
    /// command), for requests that carry none of their own; `None` when
    /// traces are off.
    traceparent: Option<HeaderValue>,
}

impl std::fmt::Debug for AuthorizedHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedHttp")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl AuthorizedHttp {
    /// rmcp runs the requests on its own task: the caller's span (if traced)
    /// is captured here and sent as `traceparent` (see [`Self::trace_headers`]).
    pub fn new(http: reqwest::Client, tokens: TokenSource, retry: RetryPolicy) -> Self {
        Self {
            http,
            tokens,
            retry,
            traceparent: crate::trace::traceparent().and_then(|v| HeaderValue::from_str(&v).ok()),
        }
    }

    /// `headers` plus `traceparent`: the request's own (`_meta.traceparent`,
    /// SEP-414, set by [`crate::McpClient::call_tool`] from its span), else the
    /// connection's. Unchanged when traces are off.
    fn trace_headers(
        &self,
        message: Option<&ClientJsonRpcMessage>,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        let own = message.and_then(|m| match m {
            ClientJsonRpcMessage::Request(r) => match &r.request {
                ClientRequest::CallToolRequest(call) => call
                    .params
                    .traceparent()
                    .and_then(|v| HeaderValue::from_str(v).ok()),
                _ => None,
            },
            _ => None,
        });
        if let Some(value) = own.or_else(|| self.traceparent.clone()) {
            headers.insert(HeaderName::from_static("traceparent"), value);
        }
        headers
    }

    /// Runs `call` with a token; on 401 renews once and runs it again.
    async fn with_token<T, F, Fut>(&self, call: F) -> HttpResult<T>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<reqwest::Error>>>,
    {
        let token = self.tokens.token().await.map_err(token_err)?;
        match call(token.expose().to_owned()).await {
            Err(StreamableHttpError::AuthRequired(_)) => {
                let fresh = self.tokens.renew(token.serial()).await.map_err(token_err)?;
                call(fresh.expose().to_owned()).await.map_err(lift)
            }
            other => other.map_err(lift),
        }
    }
}

fn token_err(e: TokenError) -> StreamableHttpError<TransportError> {
    StreamableHttpError::Client(TransportError::Token(e))
}

impl StreamableHttpClient for AuthorizedHttp {
    type Error = TransportError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            None,
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            None,
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
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let custom_headers = self.trace_headers(Some(&message), custom_headers);
        let mut attempts = self.retry.start();
        let mut reauthenticated = false;
        let mut token = self.tokens.token().await.map_err(token_err)?;
        loop {
            let result = self
                .http
                .post_message_with_response_limits(
                    uri.clone(),
                    message.clone(),
                    session_id.clone(),
                    Some(token.expose().to_owned()),
                    custom_headers.clone(),
                    limits,
                )
                .await;
            let wait = match result {
                Ok(response) => return Ok(response),
                Err(StreamableHttpError::AuthRequired(challenge)) => {
                    if reauthenticated {
                        return Err(StreamableHttpError::Client(TransportError::Unauthorized {
                            challenge: challenge.www_authenticate_header,
                        }));
                    }
                    reauthenticated = true;
                    token = self.tokens.renew(token.serial()).await.map_err(token_err)?;
                    continue;
                }
                Err(StreamableHttpError::InsufficientScope(challenge)) => {
                    let Some(scope) = challenge.required_scope.clone() else {
                        return Err(StreamableHttpError::InsufficientScope(challenge));
                    };
                    // One scope per challenge (ours name exactly one); several
                    // would need a step-up for each.
                    if scope.contains(' ') {
                        return Err(StreamableHttpError::InsufficientScope(challenge));
                    }
                    match self.tokens.step_up(&scope).await {
                        Ok(Some(upgraded)) => {
                            token = upgraded;
                            continue;
                        }
                        Ok(None) => return Err(StreamableHttpError::InsufficientScope(challenge)),
                        Err(source) => {
                            return Err(StreamableHttpError::Client(TransportError::ScopeDenied {
                                client_id: self.tokens.client_id().to_owned(),
                                scope,
                                source,
                            }));
                        }
                    }
                }
                Err(StreamableHttpError::HttpStatus(status))
                    if retry::is_retryable_status(
                        http::StatusCode::from_u16(status.status)
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    ) =>
                {
                    let wanted = status
                        .retry_after
                        .as_deref()
                        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                    match attempts.next_delay(wanted) {
                        Ok(delay) => {
                            tracing::warn!(
                                "MCP server answered HTTP {}; retrying in {:.1} s (attempt {} of {})",
                                status.status,
                                delay.as_secs_f64(),
                                attempts.attempts(),
                                self.retry.max_attempts
                            );
                            delay
                        }
                        Err(_) => {
                            return Err(StreamableHttpError::Client(TransportError::GaveUp {
                                status: status.status,
                                summary: attempts.summary(),
                            }));
                        }
                    }
                }
                Err(StreamableHttpError::Client(e))
                    if e.is_connect() && tls::explain(&e).is_none() =>
                {
                    match attempts.next_delay(None) {
                        Ok(delay) => {
                            tracing::warn!(
                                "cannot reach the MCP server; retrying in {:.1} s (attempt {} of {})",
                                delay.as_secs_f64(),
                                attempts.attempts(),
                                self.retry.max_attempts
                            );
                            delay
                        }
                        Err(_) => {
                            return Err(StreamableHttpError::Client(TransportError::Unreachable {
                                summary: attempts.summary(),
                                detail: tls::describe(&e),
                            }));
                        }
                    }
                }
                Err(other) => return Err(lift(other)),
            };
            tokio::time::sleep(wait).await;
            // The wait may have outlived the token.
            token = self.tokens.token().await.map_err(token_err)?;
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        let custom_headers = self.trace_headers(None, custom_headers);
        self.with_token(|token| {
            self.http.delete_session(
                uri.clone(),
                session_id.clone(),
                Some(token),
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxedSseResponse> {
        let custom_headers = self.trace_headers(None, custom_headers);
        self.with_token(|token| {
            self.http.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxedSseResponse> {
        let custom_headers = self.trace_headers(None, custom_headers);
        self.with_token(|token| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

/// Re-types rmcp's error for our error type; the variants rmcp acts on
/// (session expiry, SSE support, auth challenges) keep their identity.
fn lift(e: StreamableHttpError<reqwest::Error>) -> StreamableHttpError<TransportError> {
    use StreamableHttpError as E;
    match e {
        E::Client(e) => E::Client(TransportError::Http(e)),
        E::Sse(e) => E::Sse(e),
        E::Io(e) => E::Io(e),
        E::HttpStatus(e) => E::HttpStatus(e),
        E::UnexpectedEndOfStream => E::UnexpectedEndOfStream,
        E::UnexpectedServerResponse(s) => E::UnexpectedServerResponse(s),
        E::ResponseBodyTooLarge { max_size } => E::ResponseBodyTooLarge { max_size },
        E::UnexpectedContentType(c) => E::UnexpectedContentType(c),
        E::ServerDoesNotSupportSse => E::ServerDoesNotSupportSse,
        E::ServerDoesNotSupportDeleteSession => E::ServerDoesNotSupportDeleteSession,
        E::TokioJoinError(e) => E::TokioJoinError(e),
        E::Deserialize(e) => E::Deserialize(e),
        E::TransportChannelClosed => E::TransportChannelClosed,
        E::MissingSessionIdInResponse => E::MissingSessionIdInResponse,
        E::AuthRequired(e) => E::AuthRequired(e),
        E::InsufficientScope(e) => E::InsufficientScope(e),
        E::ReservedHeaderConflict(h) => E::ReservedHeaderConflict(h),
        E::SessionExpired => E::SessionExpired,
        E::SessionRecoveryTimeout => E::SessionRecoveryTimeout,
        E::ReinitializationFailed(e) => E::ReinitializationFailed(e),
        E::ControlRequestTimeout => E::ControlRequestTimeout,
        other => E::Client(TransportError::Other(other.to_string())),
    }
}
