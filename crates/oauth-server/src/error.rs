//! RFC 6749 §5.2 error responses: one type, one `IntoResponse`.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `error` codes we answer with (RFC 6749 §5.2, RFC 7009, RFC 8707,
/// RFC 7591 §3.2.2, RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    UnsupportedTokenType,
    /// Rate limited (RFC 8628's code, the registered one closest in meaning).
    SlowDown,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 7591: a redirect URI of a registration is invalid.
    InvalidRedirectUri,
    /// RFC 7591: some other registration metadata is invalid.
    InvalidClientMetadata,
    /// RFC 6750: the initial access token of a registration is missing or wrong.
    InvalidToken,
}

/// An OAuth error response. The description is written for the client
/// developer and never contains secrets or submitted credentials.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    /// Set when the client tried HTTP Basic: 401 must carry a Basic challenge.
    pub basic_challenge: bool,
    /// Extra headers (`Retry-After`, `RateLimit*`); boxed to keep the error small.
    pub headers: Option<Box<axum::http::HeaderMap>>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: description.into(),
            status,
            basic_challenge: false,
            headers: None,
        }
    }

    /// The answers of the serve loop's limits (`server_kit::serve`): 408
    /// `invalid_request` for a request that did not arrive within
    /// `HTTP_REQUEST_TIMEOUT_SECS`, and the body of the raw 503 for a
    /// connection over `HTTP_MAX_CONNECTIONS`.
    pub fn connection_answers() -> server_kit::serve::Answers {
        server_kit::serve::Answers {
            request_timeout: || {
                OAuthError::invalid_request(
                    "the request did not arrive in time (HTTP_REQUEST_TIMEOUT_SECS); send it again",
                )
                .with_status(StatusCode::REQUEST_TIMEOUT)
                .into_response()
            },
            busy_body: r#"{"error":"temporarily_unavailable","error_description":"too many connections; retry"}"#,
            busy_content_type: "application/json",
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_headers(mut self, headers: axum::http::HeaderMap) -> Self {
        self.headers = Some(Box::new(headers));
        self
    }

    pub fn with_basic_challenge(mut self, yes: bool) -> Self {
        self.basic_challenge = yes;
        self
    }

    /// An unexpected failure: logged with its cause, answered opaquely.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        Self::new(ErrorCode::ServerError, "internal error")
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorCode,
    error_description: &'a str,
}

/// Headers RFC 6749 §5.1 requires on every token-endpoint response.
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(Body {
                error: self.code,
                error_description: &self.description,
            }),
        )
            .into_response();
        no_store(&mut resp);
        if let Some(extra) = self.headers {
            resp.headers_mut().extend(*extra);
        }
        if self.status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"secure-mcp\", charset=\"UTF-8\""),
            );
        }
        resp
    }
}
