//! The MCP session against the real mcp-server: tools with their scopes,
//! direct calls, tool errors, insufficient scope (clear message, one
//! step-up), and retries on 429/5xx through a fault-injecting proxy.

use std::time::Duration;

use client_core::{McpClient, McpError, Protocol};
use serde_json::json;

use crate::support::stack::Front;
use crate::support::stack::{
    NARROW_CLIENT, OPENAI_CLIENT, Options, READER_CLIENT, Stack, fast_retry, http,
};

async fn connect(stack: &Stack, client: (&str, &str)) -> McpClient {
    McpClient::connect_using(http(), &stack.config(client, &[]))
        .await
        .unwrap()
}

#[tokio::test]
async fn lists_tools_with_the_scopes_the_server_publishes() {
    let stack = Stack::start().await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    let tools = client.list_tools().await.unwrap();
    let got: Vec<(String, Vec<String>)> = tools
        .iter()
        .map(|t| (t.name.clone(), t.scopes.clone()))
        .collect();
    let want = [
        ("get_customer_info", "customer:read"),
        ("get_recent_customers", "customer:read"),
        ("create_support_ticket", "ticket:create"),
        ("calculate_account_value", "account:calculate"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(n, s)| ((*n).to_owned(), vec![(*s).to_owned()]))
            .collect::<Vec<_>>()
    );
    for t in &tools {
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert!(!t.description.is_empty());
    }
    client.close(Duration::from_secs(2)).await;

    // The server only lists what the caller may call.
    let reader = connect(&stack, READER_CLIENT).await;
    let names: Vec<String> = reader
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["get_customer_info", "get_recent_customers"]);
}

#[tokio::test]
async fn direct_calls_return_results_and_tool_errors() {
    let stack = Stack::start().await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    let ok = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(!ok.is_error);
    assert!(ok.text.contains("Alice Johnson"), "{}", ok.text);

    let bad = client
        .call_tool("get_customer_info", json!({"customer_id": "not valid!"}))
        .await
        .unwrap();
    assert!(
        bad.is_error,
        "a malformed id is a tool error the model can read"
    );

    let err = client
        .call_tool("get_customer_info", json!(["not", "an", "object"]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool arguments must be a JSON object, got an array"
    );
    client.close(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_missing_scope_is_named_with_the_fix() {
    let stack = Stack::start().await;
    let client = connect(&stack, READER_CLIENT).await;
    let err = client
        .call_tool(
            "create_support_ticket",
            json!({"customer_id": "12345", "subject": "s", "description": "d", "priority": "low"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::InsufficientScope { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "client `reader-client` lacks scope `ticket:create` and could not get it (the authorization \
         server granted only `customer:read`) — if the client is allowed it, add it to OAUTH_SCOPES; \
         otherwise grant it in the authorization server's client registry (allowed_scopes)"
    );
    // The step-up is tried once per scope, not on every call.
    let tokens = client.tokens().unwrap();
    let before = tokens.fetch_count();
    let again = client
        .call_tool(
            "create_support_ticket",
            json!({"customer_id": "12345", "subject": "s", "description": "d", "priority": "low"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(again, McpError::InsufficientScope { refusal: None, .. }),
        "{again:?}"
    );
    assert_eq!(tokens.fetch_count(), before);
}

#[tokio::test]
async fn a_scope_the_client_is_allowed_is_stepped_up_once() {
    let stack = Stack::start().await;
    let client = connect(&stack, NARROW_CLIENT).await;
    let tokens = client.tokens().unwrap().clone();
    assert_eq!(
        tokens.token().await.unwrap().scopes().unwrap().to_string(),
        "customer:read"
    );
    let out = client
        .call_tool(
            "create_support_ticket",
            json!({"customer_id": "67890", "subject": "Billing", "description": "Charged twice", "priority": "high"}),
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(tokens.fetch_count(), 2);
    assert_eq!(
        tokens.token().await.unwrap().scopes().unwrap().to_string(),
        "customer:read ticket:create"
    );
}

#[tokio::test]
async fn mcp_429_is_retried_once_after_retry_after() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    stack.faults.inject("tools/call", 429, Some("1"), 1);
    let out = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(!out.is_error);
    let seen = stack.faults.seen("tools/call");
    assert_eq!(
        seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        vec![429, 200]
    );
    let gap = seen[1].0 - seen[0].0;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn five_mcp_500s_fail_clearly_within_the_bound() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    stack.faults.inject("tools/call", 500, None, 5);
    let err = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("the MCP server still answered HTTP 500 after 5 attempts in "),
        "{text}"
    );
    assert_eq!(stack.faults.seen("tools/call").len(), 5);
    // Bounded: exactly max_attempts requests (timing belongs to benchmarks).
    assert_eq!(fast_retry().max_attempts, 5);

    // The session is still usable afterwards.
    let out = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(!out.is_error);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    stack.faults.inject("tools/call", 400, None, 3);
    let err = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap_err();
    assert_eq!(stack.faults.seen("tools/call").len(), 1, "{err}");
}

#[tokio::test]
async fn the_servers_own_rate_limit_is_ridden_out() {
    // 120 units a minute (one per 0.5 s), burst 6, a tool call costs 2.
    let stack = Stack::start_with(Options {
        rate_limit: Some((120, 6)),
        ..Options::default()
    })
    .await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    for i in 0..6 {
        let out = client
            .call_tool("get_customer_info", json!({"customer_id": "12345"}))
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert!(!out.is_error);
    }
    let limited = stack
        .mcp
        .audit()
        .recent(1000)
        .iter()
        .filter(|e| e.event == "ratelimit.limited")
        .count();
    assert!(
        limited > 0,
        "the budget was exceeded and the client waited it out"
    );
}

/// By default the client opens with `server/discover` and stays on the
/// 2026-07-28 stateless wire: no `initialize`, no session.
#[tokio::test]
async fn the_default_wire_is_2026_07_28_against_our_server() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    let client = connect(&stack, OPENAI_CLIENT).await;
    assert_eq!(client.protocol_version().as_deref(), Some("2026-07-28"));
    let out = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(out.text.contains("Alice Johnson"), "{}", out.text);
    let statuses = |m: &str| -> Vec<u16> { stack.faults.seen(m).iter().map(|(_, s)| *s).collect() };
    assert_eq!(statuses("server/discover"), vec![200]);
    assert_eq!(statuses("tools/call"), vec![200]);
    assert_eq!(statuses("initialize"), Vec::<u16>::new());
    assert_eq!(statuses("notifications/initialized"), Vec::<u16>::new());
}

/// A server that refuses `server/discover` the way a 2025-11-25 server does
/// (a 4xx without a JSON-RPC body) gets a legacy session at once, on the
/// same transport: `initialize`, then ordinary calls.
#[tokio::test]
async fn a_legacy_answer_to_discover_falls_back_to_2025_11_25() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    stack.faults.inject("server/discover", 400, None, 1);
    let client = connect(&stack, OPENAI_CLIENT).await;
    assert_eq!(client.protocol_version().as_deref(), Some("2025-11-25"));
    let out = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(out.text.contains("Alice Johnson"), "{}", out.text);
    let statuses = |m: &str| -> Vec<u16> { stack.faults.seen(m).iter().map(|(_, s)| *s).collect() };
    assert_eq!(statuses("server/discover"), vec![400]);
    assert_eq!(statuses("initialize"), vec![200]);
    assert_eq!(statuses("notifications/initialized"), vec![202]);
    assert_eq!(statuses("tools/call"), vec![200]);
    client.close(Duration::from_secs(2)).await;
}

/// Both generations pinned, against our server: the same tools, the same
/// answers, and the scope wall holds on each.
#[tokio::test]
async fn both_generations_work_against_our_server() {
    let stack = Stack::start_with(Options {
        front: Front::Proxy,
        ..Options::default()
    })
    .await;
    for (protocol, version) in [
        (Protocol::Stateless, "2026-07-28"),
        (Protocol::Legacy, "2025-11-25"),
    ] {
        let config = stack.config(READER_CLIENT, &[]);
        let tokens = client_core::mcp::token_source(&http(), &config)
            .await
            .unwrap();
        let mcp_url = url::Url::parse(&stack.mcp_url).unwrap();
        let client =
            McpClient::connect_with_protocol(http(), tokens, &mcp_url, fast_retry(), protocol)
                .await
                .unwrap();
        assert_eq!(client.protocol_version().as_deref(), Some(version));
        let names: Vec<String> = client
            .list_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            names,
            vec!["get_customer_info", "get_recent_customers"],
            "{version}"
        );
        let out = client
            .call_tool("get_customer_info", json!({"customer_id": "12345"}))
            .await
            .unwrap();
        assert!(
            out.text.contains("Alice Johnson"),
            "{version}: {}",
            out.text
        );
        let err = client
            .call_tool(
                "calculate_account_value",
                json!({"customer_id": "12345", "amounts": [1]}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, McpError::InsufficientScope { scope, .. } if scope == "account:calculate"),
            "{version}: {err}"
        );
        client.close(Duration::from_secs(2)).await;
    }
    let count = |m: &str| stack.faults.seen(m).len();
    assert_eq!(
        count("server/discover"),
        1,
        "only the stateless client probes"
    );
    assert_eq!(
        count("initialize"),
        1,
        "only the legacy client opens a session"
    );
}
