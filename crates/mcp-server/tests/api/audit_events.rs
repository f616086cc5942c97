//! `security://events` serves the real, recent audit events; tickets are stored.

use serde_json::{Value, json};

use crate::helpers::*;

async fn read_events(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app
        .call_2026(
            Some(token),
            "resources/read",
            json!({"uri": "security://events"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let contents = &r.json()["result"]["contents"][0];
    assert_eq!(contents["uri"], "security://events");
    assert_eq!(contents["mimeType"], "application/json");
    let doc: Value = serde_json::from_str(contents["text"].as_str().unwrap()).unwrap();
    doc["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn security_events_resource_shows_recent_decisions() {
    let app = spawn().await;
    let secure = app.secure_token().await;
    let narrow = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;

    // A rejection, a denial and a tool call.
    assert_eq!(
        app.call_2026(Some("garbage"), "tools/list", json!({}))
            .await
            .status,
        401
    );
    let denied = app
        .call_2026(Some(&narrow), "tools/call", json!({"name": "calculate_account_value", "arguments": {"customer_id": "12345", "amounts": [1]}}))
        .await;
    assert_eq!(denied.status, 403);
    let ok = app
        .call_2026(
            Some(&secure),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "67890"}}),
        )
        .await;
    assert_eq!(ok.status, 200);

    let events = read_events(&app, &secure).await;
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mcp.token_rejected", "mcp.scope_denied", "mcp.tool_called"]
    );
    assert_eq!(events[0]["reason"], "malformed");
    assert!(events[0].get("client_id").is_none());
    assert_eq!(events[1]["client_id"], "openai-mcp-client");
    assert_eq!(events[1]["tool"], "calculate_account_value");
    assert_eq!(events[1]["required_scope"], "account:calculate");
    assert_eq!(events[2]["client_id"], "mcp-secure-client");
    assert_eq!(events[2]["tool"], "get_customer_info");
    assert_eq!(events[2]["outcome"], "ok");
    assert!(events[2]["latency_ms"].as_f64().unwrap() >= 0.0);
    // Never a token.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&secure) && !all.contains(&narrow) && !all.contains("garbage"));

    // Invalid input is audited as such.
    app.call_2026(
        Some(&secure),
        "tools/call",
        json!({"name": "get_recent_customers", "arguments": {"limit": 0}}),
    )
    .await;
    let last = read_events(&app, &secure).await.pop().unwrap();
    assert_eq!(
        (last["tool"].clone(), last["outcome"].clone()),
        (json!("get_recent_customers"), json!("invalid_input"))
    );
}

#[tokio::test]
async fn created_tickets_are_stored_and_visible_later() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let r = app
        .call_2026(Some(&t), "tools/call", json!({"name": "create_support_ticket", "arguments": {
            "customer_id": "HOOLI04", "subject": "Billing question", "description": "Invoice 42 is wrong", "priority": "urgent"}}))
        .await;
    let ticket = r.json()["result"]["structuredContent"]["ticket"].clone();
    assert_eq!(ticket["customer_id"], "HOOLI04");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(ticket["created_by"], "mcp-secure-client");
    let id = ticket["id"].as_str().unwrap().to_owned();

    // Another request (another protocol generation, even) sees it.
    let s = app.session(&t).await;
    let r = s
        .request(
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "HOOLI04"}}),
        )
        .await;
    let tickets = r.json()["result"]["structuredContent"]["tickets"].clone();
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    assert_eq!(tickets[0]["id"], id.as_str());
    assert_eq!(tickets[0]["subject"], "Billing question");

    // And the customer moved to the top of the recent list.
    let r = s
        .request(
            "tools/call",
            json!({"name": "get_recent_customers", "arguments": {"limit": 3}}),
        )
        .await;
    let first = r.json()["result"]["structuredContent"]["customers"][0].clone();
    assert_eq!(first["id"], "HOOLI04");
    assert_eq!(first["open_tickets"], 1);
}
