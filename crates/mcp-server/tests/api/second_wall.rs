//! The handler re-checks scopes itself: the rmcp service alone (no axum
//! middleware in front) still refuses a caller without the tool's scope.
//! This mounts only the inner service in-process; the real server always has
//! the full stack.

use auth::{AccessTokenClaims, Audience, ScopeSet};
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use mcp_server::policy::Caller;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::*;

fn caller(scope: &str) -> Caller {
    Caller::new(AccessTokenClaims {
        iss: "http://127.0.0.1:1".into(),
        sub: "c".into(),
        aud: Audience::One(RESOURCE.into()),
        client_id: "narrow-client".into(),
        scope: ScopeSet::parse(scope).unwrap(),
        iat: 0,
        nbf: 0,
        exp: i64::MAX,
        jti: "j".into(),
    })
}

async fn call(app: &TestApp, caller: Option<Caller>, method: &str, params: Value) -> Value {
    let svc = mcp_server::mcp::service(
        app.mcp.clone(),
        &["localhost".to_owned()],
        &[],
        tokio_util::sync::CancellationToken::new(),
    );
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": V2026, "io.modelcontextprotocol/clientCapabilities": {}});
    let mut req = Request::post("http://localhost/mcp")
        .header("host", "localhost")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", method);
    if let Some(name) = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
    {
        req = req.header("mcp-name", name);
    }
    let mut req = req
        .body(Body::from(
            json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string(),
        ))
        .unwrap();
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    let resp = svc.oneshot(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

#[tokio::test]
async fn handler_refuses_without_scope_even_without_middleware() {
    let app = spawn().await;
    let ticket = json!({"name": "create_support_ticket", "arguments": {"customer_id": "12345", "subject": "s", "description": "d", "priority": "low"}});

    let r = call(
        &app,
        Some(caller("customer:read")),
        "tools/call",
        ticket.clone(),
    )
    .await;
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert_eq!(
        r["error"]["data"],
        json!({"error": "insufficient_scope", "scope": "ticket:create"})
    );
    let r = call(
        &app,
        Some(caller("customer:read")),
        "resources/read",
        json!({"uri": "security://events"}),
    )
    .await;
    assert_eq!(r["error"]["data"]["scope"], "security:read", "{r}");
    let r = call(&app, Some(caller("customer:read")), "tools/list", json!({})).await;
    assert_eq!(
        tool_names(&r["result"]),
        ["get_customer_info", "get_recent_customers"]
    );

    // No caller at all (the bearer layer missing): nothing is served.
    let r = call(&app, None, "tools/call", ticket).await;
    assert_eq!(r["error"]["message"], "unauthenticated request", "{r}");
    let r = call(&app, None, "tools/list", json!({})).await;
    assert_eq!(r["error"]["message"], "unauthenticated request", "{r}");

    let denied = app.events("mcp.scope_denied");
    assert_eq!(denied.len(), 2);
    assert!(app.events("mcp.tool_called").is_empty(), "no tool ran");
}
