//! One scope per tool: filtered lists, 403 challenges, `_meta` scopes.

use serde_json::json;

use crate::helpers::*;

const TICKET_CHALLENGE: &str = r#"Bearer error="insufficient_scope", scope="ticket:create", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", error_description="The tool create_support_ticket requires the scope ticket:create""#;

fn ticket_args() -> serde_json::Value {
    json!({"name": "create_support_ticket", "arguments": {
        "customer_id": "12345", "subject": "Printer on fire", "description": "Smoke", "priority": "high"}})
}

fn assert_ticket_403(r: &Reply) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some(TICKET_CHALLENGE));
    let body = r.json();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "ticket:create");
}

#[tokio::test]
async fn read_only_client_sees_two_tools_and_is_refused_the_rest() {
    let app = spawn().await;
    let token = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;

    // 2026-07-28: tools/list, private cache scope, exactly the customer tools.
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let result = &r.json()["result"];
    assert_eq!(
        tool_names(result),
        ["get_customer_info", "get_recent_customers"]
    );
    assert_eq!(result["cacheScope"], "private");
    assert_eq!(result["ttlMs"], 0);
    for tool in result["tools"].as_array().unwrap() {
        assert_eq!(tool["_meta"]["securemcp/scopes"], json!(["customer:read"]));
    }

    // 2026-07-28 tools/call: the middleware knows the tool from Mcp-Name.
    assert_ticket_403(
        &app.call_2026(Some(&token), "tools/call", ticket_args())
            .await,
    );

    // 2025-11-25 session: the same list, and the body is peeked for the tool.
    let s = app.session(&token).await;
    let r = s.request("tools/list", json!({})).await;
    assert_eq!(
        tool_names(&r.json()["result"]),
        ["get_customer_info", "get_recent_customers"]
    );
    assert_ticket_403(&s.request("tools/call", ticket_args()).await);
    let r = s
        .request("tools/call", json!({"name": "calculate_account_value", "arguments": {"customer_id": "12345", "amounts": [1]}}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer error="insufficient_scope", scope="account:calculate", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", error_description="The tool calculate_account_value requires the scope account:calculate""#
        )
    );

    // Allowed tools still work.
    let r = s
        .request(
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}}),
        )
        .await;
    assert_eq!(r.json()["result"]["isError"], false, "{}", r.text);

    // security://events needs security:read; health://status does not.
    let r = s.request("resources/list", json!({})).await;
    let uris: Vec<_> = r.json()["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["uri"].clone())
        .collect();
    assert_eq!(uris, [json!("health://status")]);
    let r = app
        .call_2026(
            Some(&token),
            "resources/read",
            json!({"uri": "security://events"}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer error="insufficient_scope", scope="security:read", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", error_description="The resource security://events requires the scope security:read""#
        )
    );
    let r = app
        .call_2026(
            Some(&token),
            "resources/read",
            json!({"uri": "health://status"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Every denial is audited with the client, the target and the scope.
    let denied = app.events("mcp.scope_denied");
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|e| e.client_id.as_deref() == Some("openai-mcp-client") && e.outcome == "denied")
    );
    assert_eq!(denied[0].tool.as_deref(), Some("create_support_ticket"));
    assert_eq!(denied[0].required_scope, Some("ticket:create"));
    assert_eq!(denied[3].resource.as_deref(), Some("security://events"));
    assert_eq!(denied[3].required_scope, Some("security:read"));
}

#[tokio::test]
async fn secure_client_sees_all_four_tools_and_both_resources() {
    let app = spawn().await;
    let token = app.secure_token().await;
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    let result = &r.json()["result"];
    assert_eq!(
        tool_names(result),
        [
            "get_customer_info",
            "get_recent_customers",
            "create_support_ticket",
            "calculate_account_value"
        ]
    );
    let scopes: Vec<_> = result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["_meta"]["securemcp/scopes"].clone())
        .collect();
    assert_eq!(
        scopes,
        [
            json!(["customer:read"]),
            json!(["customer:read"]),
            json!(["ticket:create"]),
            json!(["account:calculate"])
        ]
    );
    // Input schemas carry the explicit bounds.
    let create = &result["tools"][2]["inputSchema"];
    assert_eq!(
        create["properties"]["customer_id"]["pattern"],
        "^[A-Z0-9]{5,10}$"
    );
    assert_eq!(create["properties"]["subject"]["maxLength"], 200);
    assert_eq!(create["properties"]["description"]["maxLength"], 2000);
    assert_eq!(create["additionalProperties"], false);
    let calc = &result["tools"][3]["inputSchema"]["properties"]["amounts"];
    assert_eq!(
        (calc["minItems"].clone(), calc["maxItems"].clone()),
        (json!(1), json!(100))
    );

    let r = app
        .call_2026(Some(&token), "resources/list", json!({}))
        .await;
    let uris: Vec<_> = r.json()["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["uri"].clone())
        .collect();
    assert_eq!(uris, [json!("health://status"), json!("security://events")]);
    let r = app
        .call_2026(Some(&token), "tools/call", ticket_args())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["isError"], false, "{}", r.text);
}

#[tokio::test]
async fn mcp_name_must_match_the_body() {
    let app = spawn().await;
    let token = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;
    // Header names an allowed tool, body the forbidden one: rmcp refuses the
    // mismatch before dispatch (400, -32020), so the header cannot be used to
    // smuggle a call past the scope check.
    let mut params = ticket_args();
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": V2026, "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
    let r = app
        .post_raw(
            Some(&token),
            &[
                ("mcp-protocol-version", V2026),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_customer_info"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], -32020);
    assert!(app.events("mcp.tool_called").is_empty(), "no tool ran");

    // Without the 2026 protocol header the body is authoritative.
    let r = app
        .post_raw(
            Some(&token),
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_customer_info"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(app.events("mcp.tool_called").is_empty(), "no tool ran");
}
