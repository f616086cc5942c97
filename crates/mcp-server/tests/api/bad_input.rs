//! Bad input for every tool parameter → an `isError` tool result that says
//! what is wrong; bad bodies → JSON-RPC errors; the process stays up.

use serde_json::{Value, json};

use crate::helpers::*;

/// Calls `tool` with `args` and returns (isError, text).
async fn call(app: &TestApp, token: &str, tool: &str, args: Value) -> (bool, String) {
    let r = app
        .call_2026(
            Some(token),
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await;
    assert_eq!(r.status, 200, "{tool} {args}: {}", r.text);
    let result = r.json()["result"].clone();
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (result["isError"] == json!(true), text)
}

async fn rejects(app: &TestApp, token: &str, tool: &str, args: Value, needle: &str) {
    let (is_error, text) = call(app, token, tool, args.clone()).await;
    assert!(is_error, "{tool} accepted {args}: {text}");
    assert!(text.starts_with("Invalid input: "), "{tool} {args}: {text}");
    assert!(
        text.contains(needle),
        "{tool} {args}: {text:?} lacks {needle:?}"
    );
}

async fn accepts(app: &TestApp, token: &str, tool: &str, args: Value) {
    let (is_error, text) = call(app, token, tool, args.clone()).await;
    assert!(!is_error, "{tool} refused {args}: {text}");
}

#[tokio::test]
async fn customer_id_everywhere() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let with_id = |tool: &str, id: Value| match tool {
        "get_customer_info" => json!({"customer_id": id}),
        "create_support_ticket" => {
            json!({"customer_id": id, "subject": "s", "description": "d", "priority": "low"})
        }
        _ => json!({"customer_id": id, "amounts": [1.0]}),
    };
    for tool in [
        "get_customer_info",
        "create_support_ticket",
        "calculate_account_value",
    ] {
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!(12345)),
            "invalid type: integer",
        )
        .await;
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!(null)),
            "invalid type: null",
        )
        .await;
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!("ABCD")),
            "customer_id must be 5 to 10",
        )
        .await; // 4: too short
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!("ABCDE123456")),
            "customer_id must be 5 to 10",
        )
        .await; // 11
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!("abcde")),
            "customer_id must be",
        )
        .await;
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!("ABC\u{0}D")),
            "customer_id must be",
        )
        .await;
        rejects(
            &app,
            &t,
            tool,
            with_id(tool, json!("A".repeat(100_000))),
            "customer_id must be",
        )
        .await;
        rejects(&app, &t, tool, json!({}), "missing field `customer_id`").await;
        let mut extra = with_id(tool, json!("12345"));
        extra["admin"] = json!(true);
        rejects(&app, &t, tool, extra, "unknown field `admin`").await;
        // Boundaries that are valid but unknown → a not-found tool error, not invalid input.
        for id in ["ZZZZZ", "ZZZZZZZZZZ"] {
            let (is_error, text) = call(&app, &t, tool, with_id(tool, json!(id))).await;
            assert!(
                is_error && text == format!("no customer with id {id}"),
                "{tool} {id}: {text}"
            );
        }
    }
    accepts(
        &app,
        &t,
        "get_customer_info",
        json!({"customer_id": "12345"}),
    )
    .await; // 5 chars
    accepts(
        &app,
        &t,
        "get_customer_info",
        json!({"customer_id": "INITECH03"}),
    )
    .await;
    app.assert_alive().await;
}

#[tokio::test]
async fn recent_customers_limit() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let tool = "get_recent_customers";
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": 0}),
        "limit must be between 1 and 50; got 0",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": 51}),
        "limit must be between 1 and 50; got 51",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": -1}),
        "invalid value: integer `-1`",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": 2.5}),
        "invalid type: floating point",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": "10"}),
        "invalid type: string",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": 1e300}),
        "invalid type: floating point",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        json!({"limit": u64::MAX}),
        "invalid value: integer",
    )
    .await;
    accepts(&app, &t, tool, json!({"limit": 1})).await;
    accepts(&app, &t, tool, json!({"limit": 50})).await;
    accepts(&app, &t, tool, json!({})).await; // default 10
}

#[tokio::test]
async fn ticket_fields() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let tool = "create_support_ticket";
    let args = |subject: Value, description: Value, priority: Value| json!({"customer_id": "12345", "subject": subject, "description": description, "priority": priority});
    let (s, d, p) = (
        json!("Login fails"),
        json!("Since Monday."),
        json!("normal"),
    );
    // subject: 1..=200 characters, no control characters.
    rejects(
        &app,
        &t,
        tool,
        args(json!(""), d.clone(), p.clone()),
        "subject must be 1 to 200 characters long; got 0",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("x".repeat(201)), d.clone(), p.clone()),
        "got 201",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("é".repeat(201)), d.clone(), p.clone()),
        "got 201",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("x".repeat(300_000)), d.clone(), p.clone()),
        "got 300000",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("   "), d.clone(), p.clone()),
        "subject must not be blank",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("a\nb"), d.clone(), p.clone()),
        "subject must not contain control characters (found U+000A)",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!("a\u{1b}[31m"), d.clone(), p.clone()),
        "U+001B",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!(42), d.clone(), p.clone()),
        "invalid type: integer",
    )
    .await;
    accepts(&app, &t, tool, args(json!("x"), d.clone(), p.clone())).await;
    accepts(
        &app,
        &t,
        tool,
        args(json!("é".repeat(200)), d.clone(), p.clone()),
    )
    .await;
    // description: 1..=2000 characters; newlines and tabs allowed.
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), json!(""), p.clone()),
        "description must be 1 to 2000 characters long; got 0",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), json!("x".repeat(2001)), p.clone()),
        "got 2001",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), json!("a\u{0}b"), p.clone()),
        "U+0000",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), json!("a\u{7f}b"), p.clone()),
        "U+007F",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), json!(["x"]), p.clone()),
        "invalid type: sequence",
    )
    .await;
    accepts(
        &app,
        &t,
        tool,
        args(s.clone(), json!("x".repeat(2000)), p.clone()),
    )
    .await;
    accepts(
        &app,
        &t,
        tool,
        args(s.clone(), json!("line 1\nline 2\ttabbed"), p.clone()),
    )
    .await;
    // priority: one of four.
    for bad in [
        json!("URGENT"),
        json!("critical"),
        json!(""),
        json!(1),
        json!(null),
    ] {
        rejects(&app, &t, tool, args(s.clone(), d.clone(), bad), "").await;
    }
    rejects(
        &app,
        &t,
        tool,
        args(s.clone(), d.clone(), json!("critical")),
        "unknown variant `critical`, expected one of `low`, `normal`, `high`, `urgent`",
    )
    .await;
    for ok in ["low", "normal", "high", "urgent"] {
        accepts(&app, &t, tool, args(s.clone(), d.clone(), json!(ok))).await;
    }
    rejects(
        &app,
        &t,
        tool,
        json!({"customer_id": "12345", "subject": "s", "description": "d"}),
        "missing field `priority`",
    )
    .await;
}

#[tokio::test]
async fn amounts() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let tool = "calculate_account_value";
    let args = |amounts: Value| json!({"customer_id": "12345", "amounts": amounts});
    rejects(
        &app,
        &t,
        tool,
        args(json!([])),
        "amounts must hold 1 to 100 numbers; got 0",
    )
    .await;
    rejects(&app, &t, tool, args(json!(vec![1.0; 101])), "got 101").await;
    rejects(
        &app,
        &t,
        tool,
        args(json!([-0.01])),
        "amounts[0] must be a finite number between 0 and 1000000; got -0.01",
    )
    .await;
    rejects(
        &app,
        &t,
        tool,
        args(json!([5, 1000000.01])),
        "amounts[1] must be",
    )
    .await;
    rejects(&app, &t, tool, args(json!(["NaN"])), "invalid type: string").await;
    rejects(
        &app,
        &t,
        tool,
        args(json!(["Infinity"])),
        "invalid type: string",
    )
    .await;
    rejects(&app, &t, tool, args(json!([null])), "invalid type: null").await;
    rejects(&app, &t, tool, args(json!("100")), "invalid type: string").await;
    rejects(
        &app,
        &t,
        tool,
        args(json!(vec![1.0; 100_000])),
        "got 100000",
    )
    .await;
    accepts(&app, &t, tool, args(json!([0]))).await;
    accepts(&app, &t, tool, args(json!([1000000]))).await;
    accepts(&app, &t, tool, args(json!(vec![1.5; 100]))).await;
    let (_, text) = call(&app, &t, tool, args(json!([100, 200.5, 699.5]))).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"customer_id":"12345","count":3,"total":1000.0,"average":333.33,"min":100.0,"max":699.5,"tier":"silver"})
    );

    // NaN and Infinity are not JSON at all: refused before any tool runs.
    for raw in ["NaN", "Infinity", "-Infinity"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"calculate_account_value","arguments":{{"customer_id":"12345","amounts":[{raw}]}}}}}}"#
        );
        let r = app.post_raw(Some(&t), &[], body).await;
        assert_eq!(r.status, 400, "{raw}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], -32700, "{raw}");
    }
    // 1e400 is valid JSON syntax but no f64: a parse error, as rmcp's reader
    // (serde_json) sees it, before any tool runs.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calculate_account_value","arguments":{"customer_id":"12345","amounts":[1e400]}}}"#;
    let r = app.post_raw(Some(&t), &[], body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: request body is not valid JSON"}})
    );
    assert_eq!(
        app.events("mcp.tool_called")
            .iter()
            .filter(|e| e.outcome == "ok")
            .count(),
        4,
        "only the 4 valid calls ran"
    );
    app.assert_alive().await;
}

#[tokio::test]
async fn bad_bodies() {
    let app = spawn().await;
    let t = app.secure_token().await;

    let r = app.post_raw(Some(&t), &[], "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: request body is not valid JSON"}})
    );

    let batch = json!([{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_support_ticket"}}]);
    let r = app.post_raw(Some(&t), &[], batch.to_string()).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        json!({"code":-32600,"message":"Invalid Request: JSON-RPC batches are not supported"})
    );

    let r = app.post_raw(Some(&t), &[], "").await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32700))
    );
    let r = app
        .post_raw(
            Some(&t),
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list"}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32600))
    );

    // 10 MB, declared or streamed, authenticated or not.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let r = app.post_raw(Some(&t), &[], big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32600);
    let chunks: Vec<_> = big
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let r = app
        .post_raw(
            Some(&t),
            &[],
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!(r.status, 413);
    let r = app.post_raw(None, &[], big.clone()).await;
    assert_eq!(r.status, 401, "no token: refused before the body is read");
    // On the 2026 path rmcp enforces the same limit.
    let r = app
        .post_raw(
            Some(&t),
            &[
                ("mcp-protocol-version", V2026),
                ("mcp-method", "tools/list"),
            ],
            big,
        )
        .await;
    assert_eq!(r.status, 413);

    // Unknown tool and unknown resource: JSON-RPC errors, not 500s.
    let r = app
        .call_2026(
            Some(&t),
            "tools/call",
            json!({"name": "rm_rf", "arguments": {}}),
        )
        .await;
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.text);
    let last = app.events("mcp.tool_called").pop().unwrap();
    assert_eq!(
        (last.tool.as_deref(), last.outcome),
        (Some("rm_rf"), "unknown_tool")
    );
    let r = app
        .call_2026(
            Some(&t),
            "resources/read",
            json!({"uri": "file:///etc/passwd"}),
        )
        .await;
    let e = &r.json()["error"];
    assert_eq!(
        (e["code"].clone(), e["data"]["uri"].clone()),
        (json!(-32602), json!("file:///etc/passwd"))
    );

    app.assert_alive().await;
    // And it still serves real work.
    let r = app
        .call_2026(
            Some(&t),
            "tools/call",
            json!({"name":"get_customer_info","arguments":{"customer_id":"12345"}}),
        )
        .await;
    assert_eq!(r.json()["result"]["isError"], false);
}

/// Issue 13 item 9: malformed JSON of any shape is a JSON-RPC parse error
/// (HTTP 400, -32700, `id: null`) on both protocol paths (rmcp alone would
/// answer `415 text/plain`), and the process keeps serving.
#[tokio::test]
async fn malformed_json_of_any_shape_is_a_parse_error() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let parse_error = json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: request body is not valid JSON"}});
    let nested = |n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"a":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let mut bad_utf8 =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":""#.to_vec();
    bad_utf8.extend_from_slice(&[0xc3, 0x28]);
    bad_utf8.extend_from_slice(br#""}}}"#);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "100,000-deep array",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        ("100,000-deep params", nested(100_000).into_bytes()),
        (
            "1e400",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"n":1e400}}"#.to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"} garbage"#.to_vec(),
        ),
        (
            "two messages",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_vec(),
        ),
        ("invalid UTF-8", bad_utf8),
        ("whitespace only", b" \n\t ".to_vec()),
    ];
    let paths: [&[(&str, &str)]; 2] = [
        &[],
        &[
            ("mcp-protocol-version", V2026),
            ("mcp-method", "tools/list"),
        ],
    ];
    for (what, body) in &cases {
        for headers in paths {
            let r = app.post_raw(Some(&t), headers, body.clone()).await;
            assert_eq!(r.status, 400, "{what} {headers:?}: {}", r.text);
            assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
            assert_eq!(r.json(), parse_error, "{what} {headers:?}");
        }
    }
    // Deep but within serde_json's limit (and rmcp's): served.
    let mut deep_ok = json!(1);
    for _ in 0..100 {
        deep_ok = json!([deep_ok]);
    }
    let r = app
        .call_2026(Some(&t), "tools/list", json!({"a": deep_ok}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["result"]["tools"].is_array(), "{}", r.text);

    // Valid JSON that is not a JSON-RPC message: invalid request, id echoed
    // when there is one. `{}` after almost 1 MiB of whitespace is such a body;
    // past 1 MiB (MAX_BODY_BYTES) it is too large.
    let padded = format!("{}{{}}", " ".repeat(1024 * 1024 - 2));
    let over = format!("{}{{}}", " ".repeat(1024 * 1024));
    for headers in paths {
        for (body, id) in [
            (padded.clone(), json!(null)),
            (r#"{"jsonrpc":"2.0","id":9}"#.to_owned(), json!(9)),
        ] {
            let r = app.post_raw(Some(&t), headers, body).await;
            assert_eq!(r.status, 400, "{headers:?}: {}", r.text);
            let j = r.json();
            assert_eq!(
                (j["id"].clone(), j["error"]["code"].clone()),
                (id, json!(-32600))
            );
            assert!(
                j["error"]["message"].as_str().unwrap().starts_with(
                    "Invalid Request: not a JSON-RPC request, notification or response"
                ),
                "{j}"
            );
        }
        let r = app.post_raw(Some(&t), headers, over.clone()).await;
        assert_eq!(r.status, 413, "{headers:?}");
        assert_eq!(
            r.json(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: request body exceeds 1048576 bytes"}})
        );
    }
    app.assert_alive().await;
    let r = app.call_2026(Some(&t), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "still serving: {}", r.text);
}

/// Issue 13 item 3: a body that does not arrive within
/// `HTTP_REQUEST_TIMEOUT_SECS` gets 408 with a JSON-RPC error, while 200
/// such clients do not keep a normal tools/call from being served.
#[tokio::test]
async fn a_trickled_body_gets_408_and_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_with(Options {
        request_timeout: Some(std::time::Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    let t = app.secure_token().await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = tokio::net::TcpStream::connect(app.mcp_addr).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {t}\r\n\
             content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
             content-length: 100\r\n\r\n{{\"jsonrpc\":"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    let r = app
        .call_2026(
            Some(&t),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "served while 200 clients trickle: {}",
        r.text
    );
    for c in &mut slow {
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(30), c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Request Timeout: the request did not arrive in time (HTTP_REQUEST_TIMEOUT_SECS)"}})
        );
    }
    app.assert_alive().await;
}
