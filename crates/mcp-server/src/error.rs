//! Every HTTP answer of mcp-server that does not come from rmcp: one enum,
//! one [`IntoResponse`].
//!
//! ```text
//! variant                    status   raised by                        body
//! HostOrigin                 400/403  middleware::host_origin          rmcp's text (the answer rmcp's own check gives)
//! RateLimited(AuthFailures)  429      middleware::bearer               JSON-RPC error, id null (the body is not read)
//! Unauthorized               401      middleware::bearer (and scope)   OAuth JSON + WWW-Authenticate challenge
//! RevocationUnavailable      503      middleware::bearer               OAuth JSON + Retry-After
//! UnsupportedMediaType       415      middleware::scope                rmcp's text
//! PayloadTooLarge            413      middleware::scope                JSON-RPC error
//! InvalidMessage             400      middleware::scope (::readable)   JSON-RPC error (-32700 / -32600)
//! UnreadableBody             400      middleware::scope                JSON-RPC error
//! InsufficientScope          403      middleware::scope                OAuth JSON + WWW-Authenticate challenge
//! RateLimited(Client)        429      middleware::rate_limit           JSON-RPC error + RateLimit headers
//! RateLimiterUnavailable     503      middleware::rate_limit           JSON-RPC error + Retry-After
//! SessionNotFound            404      middleware::session_binding      rmcp's unknown-session answer, byte for byte
//! NotFound                   404      router (unknown path)            empty
//! MethodNotAllowed           405      router (e.g. POST /health)       empty (axum adds `Allow`)
//! ```
//!
//! The bearer layer answers in the OAuth shape of its 401s (RFC 6750 clients
//! read `error`); once a caller is authenticated, refusals are JSON-RPC errors
//! an MCP client can match to its request. Their `id` is the request's when it
//! is known ([`crate::jsonrpc::peek_id`], looked for in the first
//! [`ID_SCAN_BYTES`](crate::middleware::body::ID_SCAN_BYTES) of the body and
//! only when an error is answered) and `null` otherwise. OAuth-shaped bodies
//! never say why a token was refused (that is in the audit log).

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ratelimit::{Decision, LimiterError, Policy, headers};
use serde_json::json;

use crate::host_policy::Refusal;
use crate::jsonrpc::{self, PeekError, RequestId};
use crate::limits::POLICY_NAME;
use crate::state::MAX_BODY_BYTES;

/// Which budget a 429 comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The per-client budget (`rl:{client_id}`).
    Client,
    /// The failed-authentication budget of an address (`rl:ip:{addr}`).
    AuthFailures,
}

impl Budget {
    fn message(self) -> &'static str {
        match self {
            Budget::Client => "rate limit exceeded",
            Budget::AuthFailures => "too many failed authentications from this address",
        }
    }
}

/// An answer of mcp-server that does not come from rmcp.
#[derive(Debug, thiserror::Error)]
pub enum McpHttpError {
    /// `Host`/`Origin` outside the allow-lists (400 missing or bad `Host`, 403 otherwise).
    #[error("refused by the Host/Origin allow-lists: {}", .0.reason())]
    HostOrigin(Refusal),
    /// No usable access token (built by [`crate::challenge::Challenges::unauthorized`]).
    #[error("access token missing or refused")]
    Unauthorized {
        challenge: HeaderValue,
        token_sent: bool,
    },
    /// The token lacks the operation's scope (built by
    /// [`crate::challenge::Challenges::forbidden`]).
    #[error("insufficient scope: {scope} required")]
    InsufficientScope {
        challenge: HeaderValue,
        scope: &'static str,
        description: String,
    },
    /// The revocation list could not be asked (`REVOCATION_FAILURE_MODE=closed`).
    #[error("the revocation list could not be asked")]
    RevocationUnavailable,
    /// A POST whose `Content-Type` is not JSON.
    #[error("Content-Type is not application/json")]
    UnsupportedMediaType,
    /// A body over [`MAX_BODY_BYTES`].
    #[error("request body exceeds {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge { id: Option<RequestId> },
    /// A body that is not one JSON-RPC message we can classify.
    #[error("{error}")]
    InvalidMessage {
        error: PeekError,
        id: Option<RequestId>,
    },
    /// The body stream failed while it was read.
    #[error("the request body could not be read")]
    UnreadableBody,
    /// A spent budget.
    #[error("rate limited ({budget:?})")]
    RateLimited {
        budget: Budget,
        policy: Policy,
        decision: Decision,
        id: Option<RequestId>,
    },
    /// The limiter failed and `RATE_LIMIT_FAILURE_MODE` is `closed`.
    #[error("rate limiting is unavailable: {error}")]
    RateLimiterUnavailable {
        error: LimiterError,
        id: Option<RequestId>,
    },
    /// Another client's 2025-11-25 session, answered exactly like an unknown one.
    #[error("session not found")]
    SessionNotFound,
    /// No route for this path.
    #[error("not found")]
    NotFound,
    /// A route that does not serve this method.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl IntoResponse for McpHttpError {
    fn into_response(self) -> Response {
        match self {
            McpHttpError::HostOrigin(refusal) => match refusal {
                // rmcp's own answers: 400 as text/plain, 403 without a type.
                Refusal::MissingHost => {
                    (StatusCode::BAD_REQUEST, "Bad Request: missing Host header").into_response()
                }
                Refusal::BadHost => {
                    (StatusCode::BAD_REQUEST, "Bad Request: Invalid Host header").into_response()
                }
                Refusal::HostNotAllowed => (
                    StatusCode::FORBIDDEN,
                    Body::from("Forbidden: Host header is not allowed"),
                )
                    .into_response(),
                Refusal::OriginNotAllowed => (
                    StatusCode::FORBIDDEN,
                    Body::from("Forbidden: Origin header is not allowed"),
                )
                    .into_response(),
            },
            McpHttpError::Unauthorized {
                challenge,
                token_sent,
            } => {
                let body = if token_sent {
                    oauth_error(
                        "invalid_token",
                        "The access token is invalid, expired or not meant for this resource",
                    )
                } else {
                    oauth_error("unauthorized", "A bearer access token is required")
                };
                (
                    StatusCode::UNAUTHORIZED,
                    [
                        (header::WWW_AUTHENTICATE, challenge),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    ],
                    body,
                )
                    .into_response()
            }
            McpHttpError::InsufficientScope {
                challenge,
                scope,
                description,
            } => (
                StatusCode::FORBIDDEN,
                [
                    (header::WWW_AUTHENTICATE, challenge),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                Json(json!({
                    "error": "insufficient_scope",
                    "error_description": description,
                    "scope": scope,
                })),
            )
                .into_response(),
            McpHttpError::RevocationUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, "5"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                oauth_error(
                    "temporarily_unavailable",
                    "The token could not be checked; retry shortly",
                ),
            )
                .into_response(),
            McpHttpError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Body::from("Unsupported Media Type: Content-Type must be application/json"),
            )
                .into_response(),
            McpHttpError::PayloadTooLarge { id } => jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                id,
                jsonrpc::INVALID_REQUEST,
                &format!("Invalid Request: request body exceeds {MAX_BODY_BYTES} bytes"),
            ),
            McpHttpError::InvalidMessage { error, id } => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                error.code(),
                &error.to_string(),
            ),
            McpHttpError::UnreadableBody => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                jsonrpc::INVALID_REQUEST,
                "Invalid Request: the request body could not be read",
            ),
            McpHttpError::RateLimited {
                budget,
                policy,
                decision,
                id,
            } => {
                let message = format!(
                    "{}; retry after {} s",
                    budget.message(),
                    headers::retry_after_secs(decision.retry_after)
                );
                let mut resp = jsonrpc_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    jsonrpc::SERVER_ERROR,
                    &message,
                );
                headers::insert(resp.headers_mut(), POLICY_NAME, &policy, &decision);
                no_store(resp)
            }
            McpHttpError::RateLimiterUnavailable { error, id } => {
                let mut resp = jsonrpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    jsonrpc::SERVER_ERROR,
                    "rate limiting is unavailable; retry shortly",
                );
                headers::insert_unavailable(resp.headers_mut(), &error);
                no_store(resp)
            }
            // rmcp answers an unknown session with this text and no
            // Content-Type; a foreign session must look the same.
            McpHttpError::SessionNotFound => (
                StatusCode::NOT_FOUND,
                Body::from("Not Found: Session not found"),
            )
                .into_response(),
            McpHttpError::NotFound => StatusCode::NOT_FOUND.into_response(),
            McpHttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        }
    }
}

/// RFC 6749 §5.2-style error body.
fn oauth_error(error: &str, description: &str) -> Json<serde_json::Value> {
    Json(json!({"error": error, "error_description": description}))
}

/// A JSON-RPC error answer with HTTP status `status`.
fn jsonrpc_error(status: StatusCode, id: Option<RequestId>, code: i32, message: &str) -> Response {
    (
        status,
        Json(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

/// The answers of the serve loop's limits (`server_kit::serve`), as JSON-RPC
/// errors: 408 for a request that did not arrive within
/// `HTTP_REQUEST_TIMEOUT_SECS`, and the body of the raw 503 for a connection
/// over `HTTP_MAX_CONNECTIONS`.
pub fn connection_answers() -> server_kit::serve::Answers {
    server_kit::serve::Answers {
        request_timeout: || {
            no_store(jsonrpc_error(
                StatusCode::REQUEST_TIMEOUT,
                None,
                jsonrpc::INVALID_REQUEST,
                "Request Timeout: the request did not arrive in time (HTTP_REQUEST_TIMEOUT_SECS)",
            ))
        },
        busy_body: r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Server busy: too many connections; retry"}}"#,
        busy_content_type: "application/json",
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The router's fallback for unknown paths.
pub async fn not_found() -> McpHttpError {
    McpHttpError::NotFound
}

/// The router's fallback for a known path asked with another method.
pub async fn method_not_allowed() -> McpHttpError {
    McpHttpError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::challenge::Challenges;

    const PRM: &str = "http://localhost:8000/.well-known/oauth-protected-resource/mcp";

    fn challenges() -> Challenges {
        Challenges::new(PRM, &["a:read", "b:write"]).unwrap()
    }

    /// Status, headers and body of an answer.
    async fn answer(e: McpHttpError) -> (u16, http::HeaderMap, String) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn header<'h>(h: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
        h.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    fn id(n: i64) -> Option<RequestId> {
        Some(RequestId::Number(n.into()))
    }

    fn decision(retry_after: Duration) -> Decision {
        Decision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after,
            reset_after: Duration::from_secs(90),
        }
    }

    #[tokio::test]
    async fn host_and_origin_refusals_are_rmcps_answers() {
        let cases = [
            (
                Refusal::MissingHost,
                400,
                Some("text/plain; charset=utf-8"),
                "Bad Request: missing Host header",
            ),
            (
                Refusal::BadHost,
                400,
                Some("text/plain; charset=utf-8"),
                "Bad Request: Invalid Host header",
            ),
            (
                Refusal::HostNotAllowed,
                403,
                None,
                "Forbidden: Host header is not allowed",
            ),
            (
                Refusal::OriginNotAllowed,
                403,
                None,
                "Forbidden: Origin header is not allowed",
            ),
        ];
        for (refusal, status, content_type, text) in cases {
            let (s, h, body) = answer(McpHttpError::HostOrigin(refusal)).await;
            assert_eq!(
                (s, header(&h, "content-type"), body.as_str()),
                (status, content_type, text),
                "{refusal:?}"
            );
            assert!(h.get("www-authenticate").is_none());
        }
    }

    #[tokio::test]
    async fn unauthorized_without_and_with_a_token() {
        let (s, h, body) = answer(challenges().unauthorized(false)).await;
        assert_eq!(s, 401);
        assert_eq!(
            header(&h, "www-authenticate"),
            Some(
                r#"Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="a:read b:write""#
            )
        );
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(header(&h, "content-type"), Some("application/json"));
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "unauthorized", "error_description": "A bearer access token is required"})
        );

        let (s, h, body) = answer(challenges().unauthorized(true)).await;
        assert_eq!(s, 401);
        assert_eq!(
            header(&h, "www-authenticate"),
            Some(
                r#"Bearer error="invalid_token", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="a:read b:write""#
            )
        );
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "invalid_token", "error_description": "The access token is invalid, expired or not meant for this resource"})
        );
    }

    #[tokio::test]
    async fn insufficient_scope() {
        let e = challenges().forbidden("b:write", "The tool t requires the scope b:write".into());
        let (s, h, body) = answer(e).await;
        assert_eq!(s, 403);
        assert_eq!(
            header(&h, "www-authenticate"),
            Some(
                r#"Bearer error="insufficient_scope", scope="b:write", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", error_description="The tool t requires the scope b:write""#
            )
        );
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "insufficient_scope", "error_description": "The tool t requires the scope b:write", "scope": "b:write"})
        );
    }

    #[tokio::test]
    async fn revocation_unavailable() {
        let (s, h, body) = answer(McpHttpError::RevocationUnavailable).await;
        assert_eq!(s, 503);
        assert_eq!(header(&h, "retry-after"), Some("5"));
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(
            json(&body),
            serde_json::json!({"error": "temporarily_unavailable", "error_description": "The token could not be checked; retry shortly"})
        );
    }

    #[tokio::test]
    async fn unsupported_media_type_is_rmcps_answer() {
        let (s, h, body) = answer(McpHttpError::UnsupportedMediaType).await;
        assert_eq!(
            (s, header(&h, "content-type"), body.as_str()),
            (
                415,
                None,
                "Unsupported Media Type: Content-Type must be application/json"
            )
        );
    }

    #[tokio::test]
    async fn payload_too_large_echoes_the_id() {
        let (s, h, body) = answer(McpHttpError::PayloadTooLarge { id: id(7) }).await;
        assert_eq!(s, 413);
        assert_eq!(header(&h, "content-type"), Some("application/json"));
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32600, "message": "Invalid Request: request body exceeds 1048576 bytes"}})
        );
        let (_, _, body) = answer(McpHttpError::PayloadTooLarge { id: None }).await;
        assert_eq!(json(&body)["id"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn invalid_messages() {
        let (s, _, body) = answer(McpHttpError::InvalidMessage {
            error: PeekError::Parse,
            id: None,
        })
        .await;
        assert_eq!(s, 400);
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error: request body is not valid JSON"}})
        );
        let (s, _, body) = answer(McpHttpError::InvalidMessage {
            error: PeekError::Invalid("a JSON-RPC message must be an object".into()),
            id: Some(RequestId::String("abc".into())),
        })
        .await;
        assert_eq!(s, 400);
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": "abc", "error": {"code": -32600, "message": "Invalid Request: a JSON-RPC message must be an object"}})
        );
        let (s, _, body) = answer(McpHttpError::UnreadableBody).await;
        assert_eq!(s, 400);
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "Invalid Request: the request body could not be read"}})
        );
    }

    #[tokio::test]
    async fn rate_limited_carries_the_ratelimit_headers_and_the_id() {
        let policy = Policy::new(1, 3).unwrap();
        let (s, h, body) = answer(McpHttpError::RateLimited {
            budget: Budget::Client,
            policy,
            decision: decision(Duration::from_millis(59_001)),
            id: id(7),
        })
        .await;
        assert_eq!(s, 429);
        assert_eq!(header(&h, "retry-after"), Some("60"));
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"mcp\";q=1;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"mcp\";r=0;t=60"));
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": "rate limit exceeded; retry after 60 s"}})
        );

        let (s, h, body) = answer(McpHttpError::RateLimited {
            budget: Budget::AuthFailures,
            policy,
            decision: decision(Duration::from_secs(20)),
            id: None,
        })
        .await;
        assert_eq!(s, 429);
        assert_eq!(header(&h, "retry-after"), Some("20"));
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": "too many failed authentications from this address; retry after 20 s"}})
        );
    }

    #[tokio::test]
    async fn rate_limiter_unavailable() {
        let (s, h, body) = answer(McpHttpError::RateLimiterUnavailable {
            error: LimiterError::Unavailable {
                retry_after: Duration::from_secs(3),
                cause: "redis down".into(),
            },
            id: Some(RequestId::String("abc".into())),
        })
        .await;
        assert_eq!(s, 503);
        assert_eq!(header(&h, "retry-after"), Some("3"));
        assert_eq!(header(&h, "cache-control"), Some("no-store"));
        assert_eq!(
            json(&body),
            serde_json::json!({"jsonrpc": "2.0", "id": "abc", "error": {"code": -32000, "message": "rate limiting is unavailable; retry shortly"}})
        );
    }

    #[tokio::test]
    async fn session_not_found_is_rmcps_answer_byte_for_byte() {
        let (s, h, body) = answer(McpHttpError::SessionNotFound).await;
        assert_eq!((s, body.as_str()), (404, "Not Found: Session not found"));
        assert!(h.is_empty(), "rmcp sets no header: {h:?}");
    }

    #[tokio::test]
    async fn not_found_and_method_not_allowed() {
        let (s, h, body) = answer(not_found().await).await;
        assert_eq!((s, body.as_str()), (404, ""));
        assert!(h.is_empty(), "{h:?}");
        let (s, _, body) = answer(method_not_allowed().await).await;
        assert_eq!((s, body.as_str()), (405, ""));
    }
}
