//! Bounded MCP reads against a hostile MCP server: a tiny axum server that
//! speaks just enough of the 2025-11-25 session protocol, then answers
//! `tools/list` with an endless JSON body and `tools/call` with an endless
//! SSE event. The client stops at its limit ([`MCP_MAX`]) with one line that
//! names it, keeps the session, and does not hang or panic. The token comes
//! from the real oauth-server, so the authorized transport is the one under
//! test.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use client_core::mcp::{MCP_MAX, token_source};
use client_core::{McpClient, McpError};
use serde_json::{Value, json};

use crate::support::stack::{OPENAI_CLIENT, Stack, fast_retry, http};

const SESSION: &str = "hostile-session";
const CHUNK: usize = 64 * 1024;

/// Chunks of `fill` forever after `head`: a body with no end.
fn endless(head: String, fill: u8) -> Body {
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let rest = futures::stream::repeat_with(move || Ok(Bytes::from(vec![fill; CHUNK])));
    Body::from_stream(futures::StreamExt::chain(first, rest))
}

fn json_answer(body: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("mcp-session-id"), SESSION),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn hostile(headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = request["id"].clone();
    let with_session = headers.get("mcp-session-id").is_some();
    match request["method"].as_str().unwrap_or_default() {
        // A 2025-11-25 server: no such method outside a session.
        "server/discover" => (StatusCode::BAD_REQUEST, "no session").into_response(),
        "initialize" => json_answer(json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile", "version": "1"}}})),
        _ if !with_session => StatusCode::BAD_REQUEST.into_response(),
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/list" => (
            [(header::CONTENT_TYPE, "application/json")],
            endless(
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[],"pad":""#),
                b'x',
            ),
        )
            .into_response(),
        "tools/call" if request["params"]["name"] == "flood" => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            endless(
                format!(r#"data: {{"jsonrpc":"2.0","id":{id},"result":{{"content":[],"pad":""#),
                b'y',
            ),
        )
            .into_response(),
        "tools/call" => json_answer(json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": "small and fine"}]}})),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

async fn start_hostile() -> url::Url {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(hostile)
            .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
            .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&url).unwrap()
}

async fn connect_to_hostile() -> (Stack, McpClient) {
    let stack = Stack::start().await;
    let tokens = token_source(&http(), &stack.config(OPENAI_CLIENT, &[]))
        .await
        .unwrap();
    let url = start_hostile().await;
    let client = McpClient::connect_with(http(), tokens, &url, fast_retry())
        .await
        .unwrap();
    (stack, client)
}

const TOO_LARGE: &str = "the MCP server sent an answer larger than 16777216 bytes (the client's \
                         limit for one MCP message); the request was abandoned";

#[tokio::test]
async fn an_endless_json_answer_stops_at_the_limit() {
    let (_stack, client) = connect_to_hostile().await;
    assert_eq!(client.protocol_version().as_deref(), Some("2025-11-25"));
    let err = client.list_tools().await.unwrap_err();
    assert!(
        matches!(err, McpError::TooLarge { max: MCP_MAX }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), TOO_LARGE);
    // The session survives the refused answer.
    let out = client.call_tool("small", json!({})).await.unwrap();
    assert_eq!(out.text, "small and fine");
    client.close(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_endless_sse_event_stops_at_the_limit() {
    let (_stack, client) = connect_to_hostile().await;
    let err = client.call_tool("flood", json!({})).await.unwrap_err();
    assert!(
        matches!(err, McpError::TooLarge { max: MCP_MAX }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), TOO_LARGE);
    let out = client.call_tool("small", json!({})).await.unwrap();
    assert_eq!(out.text, "small and fine");
    client.close(Duration::from_secs(2)).await;
}
