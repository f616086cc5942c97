//! Issue 13 item 5: bounded results. `get_customer_info` pages a customer's
//! tickets (`limit` ≤ 50, opaque `cursor`), and a tool result over
//! `MCP_MAX_RESULT_BYTES` becomes a tool error instead of a huge answer.

use std::collections::HashSet;

use mcp_server::store::{NewTicket, Priority};
use serde_json::{Value, json};

use crate::helpers::*;

/// `n` tickets for `customer`, straight into the server's store.
async fn tickets(app: &TestApp, customer: &str, n: usize, description: &str) {
    for i in 0..n {
        app.mcp
            .customers()
            .create_ticket(NewTicket {
                customer_id: customer.into(),
                subject: format!("ticket {i}"),
                description: description.into(),
                priority: Priority::Low,
                created_by: "test".into(),
            })
            .await
            .unwrap()
            .unwrap();
    }
}

async fn info(app: &TestApp, token: &str, args: Value) -> Value {
    let r = app
        .call_2026(
            Some(token),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": args}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["result"].clone()
}

fn error_text(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn customer_tickets_come_in_pages() {
    let app = spawn().await;
    let t = app.secure_token().await;
    tickets(&app, "ACME001", 120, "d").await;
    tickets(&app, "12345", 3, "d").await;

    // Default page: the 20 newest, and a cursor.
    let first = info(&app, &t, json!({"customer_id": "ACME001"})).await;
    assert_eq!(first["isError"], false);
    let page = &first["structuredContent"];
    assert_eq!(page["customer"]["id"], "ACME001");
    assert_eq!(page["tickets"].as_array().unwrap().len(), 20);
    assert_eq!(page["tickets"][0]["subject"], "ticket 119");
    assert!(page["next_cursor"].is_string());

    // Every ticket exactly once, newest first, 50 at a time; the last page
    // has no cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let mut args = json!({"customer_id": "ACME001", "limit": 50});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let r = info(&app, &t, args).await;
        let page = &r["structuredContent"];
        let list = page["tickets"].as_array().unwrap();
        sizes.push(list.len());
        seen.extend(
            list.iter()
                .map(|t| t["subject"].as_str().unwrap().to_owned()),
        );
        match page.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
            None => break,
        }
        // A ticket created meanwhile does not shift the pages.
        if sizes.len() == 1 {
            tickets(&app, "ACME001", 1, "new").await;
        }
    }
    assert_eq!(sizes, [50, 50, 20]);
    let expected: Vec<String> = (0..120).rev().map(|i| format!("ticket {i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 120);

    // Exactly one page: no cursor.
    let r = info(&app, &t, json!({"customer_id": "12345", "limit": 3})).await;
    assert_eq!(
        r["structuredContent"]["tickets"].as_array().unwrap().len(),
        3
    );
    assert!(r["structuredContent"].get("next_cursor").is_none());
}

#[tokio::test]
async fn bad_limits_and_cursors_are_tool_errors() {
    let app = spawn().await;
    let t = app.secure_token().await;
    tickets(&app, "ACME001", 3, "d").await;
    let r = info(&app, &t, json!({"customer_id": "ACME001", "limit": 1})).await;
    let cursor = r["structuredContent"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    for limit in [0, 51] {
        let r = info(&app, &t, json!({"customer_id": "ACME001", "limit": limit})).await;
        assert_eq!(
            error_text(&r),
            format!("Invalid input: limit must be between 1 and 50; got {limit}")
        );
    }
    let refused = "Invalid input: cursor is not a next_cursor this tool returned for this \
                   customer_id; omit it to start with the newest tickets";
    for (customer, cursor) in [
        ("12345", cursor.as_str()),
        ("ACME001", "bm90IGEgY3Vyc29y"),
        ("ACME001", "%%%"),
    ] {
        let r = info(&app, &t, json!({"customer_id": customer, "cursor": cursor})).await;
        assert_eq!(error_text(&r), refused, "{customer} {cursor}");
    }
    let r = info(&app, &t, json!({"customer_id": "ACME001", "cursor": 7})).await;
    assert!(
        error_text(&r).starts_with("Invalid input: invalid type: integer `7`"),
        "{r}"
    );
    // The published schema says so too.
    let r = app.call_2026(Some(&t), "tools/list", json!({})).await;
    let tools = r.json()["result"]["tools"].clone();
    let tool = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "get_customer_info")
        .unwrap()
        .clone();
    let props = &tool["inputSchema"]["properties"];
    assert_eq!(
        (
            props["limit"]["minimum"].clone(),
            props["limit"]["maximum"].clone()
        ),
        (json!(1), json!(50))
    );
    assert_eq!(props["cursor"]["maxLength"], json!(128));
    assert_eq!(tool["inputSchema"]["required"], json!(["customer_id"]));
    app.assert_alive().await;
}

#[tokio::test]
async fn a_result_over_the_cap_is_a_tool_error() {
    let app = spawn_with(Options {
        max_result_bytes: Some(16 * 1024),
        ..Options::default()
    })
    .await;
    let t = app.secure_token().await;
    tickets(&app, "ACME001", 20, &"x".repeat(2000)).await;
    // 5 tickets of ~2 KB: under 16 KiB.
    let r = info(&app, &t, json!({"customer_id": "ACME001", "limit": 5})).await;
    assert_eq!(r["isError"], false);
    // 20 of them: over.
    let r = info(&app, &t, json!({"customer_id": "ACME001", "limit": 20})).await;
    assert_eq!(
        error_text(&r),
        "The result is too large to send (its JSON is over the server's limit of 16384 bytes). \
         Ask for less: a smaller limit, or page with the cursor."
    );
    assert!(r.get("structuredContent").is_none(), "{r}");
    let last = app.events("mcp.tool_called").pop().unwrap();
    assert_eq!(
        (last.outcome, last.reason),
        ("tool_error", Some("result_too_large"))
    );
}

#[tokio::test]
async fn recent_customers_come_in_pages() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let recent = |args: Value| {
        let app = &app;
        let t = &t;
        async move {
            let r = app
                .call_2026(
                    Some(t),
                    "tools/call",
                    json!({"name": "get_recent_customers", "arguments": args}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()["result"].clone()
        }
    };
    let everyone = recent(json!({"limit": 50})).await;
    let all: Vec<String> = everyone["structuredContent"]["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 8, "the seeded customers");
    assert!(everyone["structuredContent"]["next_cursor"].is_null());

    // Three at a time: the same order, every customer once, the last page
    // without a cursor.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"limit": 3});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = recent(args).await["structuredContent"].clone();
        let list = page["customers"].as_array().unwrap();
        sizes.push(list.len());
        seen.extend(list.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 2]);
    assert_eq!(seen, all);

    // A cursor of the other tool, or made up, is a tool error naming the fix.
    let r = recent(json!({"cursor": "cjE6eA"})).await;
    assert_eq!(
        error_text(&r),
        "Invalid input: cursor is not a next_cursor this tool returned; omit it to start with the most recent customers"
    );
}
