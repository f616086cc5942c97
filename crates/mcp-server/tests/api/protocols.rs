//! Both protocol generations on the one endpoint, and the Host/Origin wall.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn stateless_2026_07_28_call() {
    let app = spawn().await;
    let token = app.secure_token().await;
    let r = app
        .call_2026(
            Some(&token),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.header("mcp-session-id").is_none(),
        "2026-07-28 has no sessions"
    );
    let body = r.json();
    assert_eq!(body["id"], 7);
    let result = &body["result"];
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["customer"]["id"], "12345");
    assert_eq!(
        result["structuredContent"]["customer"]["name"],
        "Alice Johnson"
    );

    // server/discover answers with our capabilities and identity.
    let r = app
        .call_2026(Some(&token), "server/discover", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let result = &r.json()["result"];
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(V2026))
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "secure-mcp"
    );

    // The audit ring saw the call.
    let calls = app.events("mcp.tool_called");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].client_id.as_deref(), Some("mcp-secure-client"));
    assert_eq!(calls[0].tool.as_deref(), Some("get_customer_info"));
    assert_eq!(calls[0].outcome, "ok");
    assert!(calls[0].latency_ms.is_some());
}

#[tokio::test]
async fn legacy_2025_11_25_session_lifecycle() {
    let app = spawn().await;
    let token = app.secure_token().await;
    let s = app.session(&token).await;

    let r = s
        .request(
            "tools/call",
            json!({"name": "get_recent_customers", "arguments": {"limit": 2}}),
        )
        .await;
    assert_eq!(r.status, 200);
    // A session's tools/call is answered by the direct path, as one JSON
    // message (decision 0015); everything else by rmcp, on an event stream.
    assert_eq!(r.header("content-type"), Some("application/json"));
    let result = &r.json()["result"];
    assert_eq!(result["isError"], false, "{}", r.text);
    assert_eq!(
        result["structuredContent"]["customers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Legacy results carry no 2026-only fields.
    assert!(result.get("resultType").is_none());

    let r = s.request("ping", json!({})).await;
    assert_eq!(r.json()["result"], json!({}));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );

    // The standalone GET stream opens for the session.
    let resp = app
        .http
        .get(&app.mcp_url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .header("mcp-protocol-version", V2025)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    drop(resp);

    let r = s.delete().await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "terminated session: {}", r.text);

    // A session id is not a credential: without a token the request is refused first.
    let r = app
        .post_raw(
            None,
            &[("mcp-session-id", &s.id)],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_session_sees_each_requests_own_token() {
    // Claims travel per request: a session opened with a broad token and
    // continued with a narrow one of the same client is judged by the token
    // on the current request.
    let app = spawn().await;
    let broad = app.secure_token().await;
    let narrow = app
        .token(SECURE_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;
    let s = app.session(&broad).await;
    let narrow_session = Session {
        app: &app,
        token: narrow,
        id: s.id.clone(),
    };
    let r = narrow_session.request("tools/list", json!({})).await;
    assert_eq!(tool_names(&r.json()["result"]).len(), 2);
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(tool_names(&r.json()["result"]).len(), 4);
}

#[tokio::test]
async fn a_session_serves_only_the_client_that_opened_it() {
    let app = spawn().await;
    let owner = app.secure_token().await;
    let intruder = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    let s = app.session(&owner).await;
    let stolen = Session {
        app: &app,
        token: intruder,
        id: s.id.clone(),
    };

    let r = stolen.request("tools/list", json!({})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (404, "Not Found: Session not found")
    );
    let r = stolen.delete().await;
    assert_eq!(r.status, 404);
    let get = app
        .http
        .get(&app.mcp_url)
        .bearer_auth(&stolen.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let refused = app.events("mcp.session_refused");
    assert_eq!(refused.len(), 3);
    assert_eq!(refused[0].client_id.as_deref(), Some("openai-mcp-client"));

    // The owner's session is untouched.
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(tool_names(&r.json()["result"]).len(), 4);
    assert_eq!(s.delete().await.status, 202);
    assert!(
        app.mcp.session_owners().is_empty(),
        "forgotten after DELETE"
    );
}

#[tokio::test]
async fn host_and_origin_are_checked_before_the_token() {
    let app = spawn().await;
    let token = app.secure_token().await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string();
    for token in [None, Some(token.as_str())] {
        let r = app
            .post_raw(token, &[("host", "evil.example.com")], body.clone())
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(r.text, "Forbidden: Host header is not allowed");
        assert!(r.header("www-authenticate").is_none());
        let r = app
            .post_raw(
                token,
                &[("origin", "http://evil.example.com")],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(r.text, "Forbidden: Origin header is not allowed");
    }
    // Loopback names and pages pass.
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 200);
    let r = app
        .post_raw(
            Some(&token),
            &[
                ("host", "localhost:8000"),
                ("origin", "http://localhost:5173"),
                ("mcp-protocol-version", V2026),
                ("mcp-method", "ping"),
            ],
            body.clone(),
        )
        .await;
    assert_ne!(r.status, 403, "{}", r.text);
}

/// Issue 13 item 9: the server declares `prompts`, so `prompts/get` is a
/// method it has: an unknown name is -32602 (MCP's "invalid prompt name"),
/// not -32601, on both protocol generations; the list is empty.
#[tokio::test]
async fn prompts_are_declared_and_answered() {
    let app = spawn().await;
    let token = app.secure_token().await;
    let r = app
        .call_2026(Some(&token), "server/discover", json!({}))
        .await;
    assert!(
        r.json()["result"]["capabilities"]["prompts"].is_object(),
        "{}",
        r.text
    );
    let r = app.call_2026(Some(&token), "prompts/list", json!({})).await;
    assert_eq!(r.json()["result"]["prompts"], json!([]), "{}", r.text);
    let unknown = json!({
        "code": -32602,
        "message": "unknown prompt: \"summarise\" (prompts/list names the prompts)"
    });
    let r = app
        .call_2026(Some(&token), "prompts/get", json!({"name": "summarise"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json()["id"].clone(), r.json()["error"].clone()),
        (json!(7), unknown.clone())
    );

    let s = app.session(&token).await;
    let r = s.request("prompts/get", json!({"name": "summarise"})).await;
    assert_eq!(r.json()["error"], unknown, "{}", r.text);
    let r = s.request("prompts/list", json!({})).await;
    assert_eq!(r.json()["result"]["prompts"], json!([]), "{}", r.text);
}
