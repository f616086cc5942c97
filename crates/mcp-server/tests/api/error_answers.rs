//! Every answer mcp-server builds itself (not rmcp): exact status, headers
//! and body, and the JSON-RPC `id` echoed whenever the request had one.

use serde_json::{Value, json};

use crate::helpers::*;

/// (status, JSON-RPC error code, id) of a JSON-RPC error answer.
fn rpc(r: &Reply) -> (u16, Value, Value) {
    let body = r.json();
    (r.status, body["error"]["code"].clone(), body["id"].clone())
}

fn big_body(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    )
}

#[tokio::test]
async fn a_429_echoes_the_request_id() {
    let app = spawn_with(Options {
        policy: Some((1, 1)),
        ..Options::default()
    })
    .await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // 2026-07-28 (the body is streamed to rmcp, read only for the answer): id 7.
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(rpc(&r), (429, json!(-32000), json!(7)), "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"mcp\";q=1;w=60"));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Peeked body, a string id: echoed as a string.
    let body = json!({"jsonrpc": "2.0", "id": "abc", "method": "tools/list"}).to_string();
    let r = app.post_raw(Some(&token), &[], body).await;
    assert_eq!(rpc(&r), (429, json!(-32000), json!("abc")), "{}", r.text);
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string();
    let r = app.post_raw(Some(&token), &[], body).await;
    assert_eq!(rpc(&r), (429, json!(-32000), json!(7)), "{}", r.text);

    // A notification has no id.
    let body = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let r = app.post_raw(Some(&token), &[], body).await;
    assert_eq!(rpc(&r), (429, json!(-32000), Value::Null), "{}", r.text);
}

#[tokio::test]
async fn a_413_echoes_the_request_id() {
    let app = spawn().await;
    let t = app.secure_token().await;

    // Declared too large (Content-Length): only the start is read, for the id.
    let r = app.post_raw(Some(&t), &[], big_body("7")).await;
    assert_eq!(rpc(&r), (413, json!(-32600), json!(7)), "{}", &r.text);
    assert_eq!(
        r.json()["error"]["message"],
        "Invalid Request: request body exceeds 1048576 bytes"
    );

    // Streamed without a length: cut at the limit.
    let chunks: Vec<_> = big_body(r#""abc""#)
        .into_bytes()
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
    assert_eq!(rpc(&r), (413, json!(-32600), json!("abc")), "{}", &r.text);

    // An id after 2 MB of padding is not looked for.
    let late = format!(
        r#"{{"jsonrpc":"2.0","method":"tools/list","params":{{"pad":"{}"}},"id":7}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let r = app.post_raw(Some(&t), &[], late).await;
    assert_eq!(rpc(&r), (413, json!(-32600), Value::Null));
}

#[tokio::test]
async fn a_400_echoes_the_id_only_of_a_message_that_parses() {
    let app = spawn().await;
    let t = app.secure_token().await;
    let cases = [
        // Not JSON: null (JSON-RPC 2.0 §5), even where an id was readable.
        ("not json", -32700, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":NaN}"#,
            -32700,
            Value::Null,
        ),
        // A batch: no single id.
        (
            r#"[{"jsonrpc":"2.0","id":7,"method":"tools/list"}]"#,
            -32600,
            Value::Null,
        ),
        // Valid JSON, invalid message: the id is known.
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","method":"tools/list"}"#,
            -32600,
            json!(7),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"abc","method":1}"#,
            -32600,
            json!("abc"),
        ),
    ];
    for (body, code, id) in cases {
        let r = app.post_raw(Some(&t), &[], body).await;
        assert_eq!(rpc(&r), (400, json!(code), id), "{body}: {}", r.text);
    }
}

#[tokio::test]
async fn a_415_is_the_same_answer_as_rmcps() {
    let app = spawn().await;
    let t = app.secure_token().await;
    // Not JSON either: had we read it, the answer would be a 400 parse error.
    let body = "not json".to_owned();
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = app
            .http
            .post(&app.mcp_url)
            .bearer_auth(&t)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "text/plain");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(body.clone());
        async move { reply(req.send().await.unwrap()).await }
    };
    // Ours (on this path the body would have to be read) ...
    let ours = send(vec![]).await;
    // ... and rmcp's (2026-07-28: the headers name the operation).
    let rmcps = send(vec![
        ("mcp-protocol-version", V2026),
        ("mcp-method", "tools/list"),
    ])
    .await;
    for r in [&ours, &rmcps] {
        assert_eq!(
            (r.status, r.text.as_str(), r.header("content-type")),
            (
                415,
                "Unsupported Media Type: Content-Type must be application/json",
                None
            )
        );
    }
}

#[tokio::test]
async fn a_foreign_session_gets_exactly_rmcps_unknown_session_answer() {
    let app = spawn().await;
    let owner = app.secure_token().await;
    let intruder = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    let s = app.session(&owner).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let stolen = Session {
        app: &app,
        token: intruder.clone(),
        id: s.id.clone(),
    };
    let unknown = Session {
        app: &app,
        token: intruder,
        id: "no-such-session".into(),
    };
    let ours = stolen.post(&list).await;
    let rmcps = unknown.post(&list).await;
    assert_eq!(ours.status, 404);
    assert_eq!(
        (ours.status, ours.text.as_str(), ours.header("content-type")),
        (
            rmcps.status,
            rmcps.text.as_str(),
            rmcps.header("content-type")
        )
    );
    assert_eq!(app.events("mcp.session_refused").len(), 1, "ours answered");
}

#[tokio::test]
async fn host_answers_and_unknown_routes() {
    let app = spawn().await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string();
    let r = app
        .post_raw(None, &[("host", "user@localhost")], body.clone())
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "Bad Request: Invalid Host header")
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = app
        .post_raw(None, &[("host", "evil.example.com")], body)
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (403, "Forbidden: Host header is not allowed")
    );

    let r = app.get("/nope").await;
    assert_eq!((r.status, r.text.as_str()), (404, ""));
    let r = reply(
        app.http
            .post(format!("http://{}/health", app.mcp_addr))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
}

#[tokio::test]
async fn the_failed_authentication_429_does_not_read_the_body() {
    let app = spawn_with(Options {
        auth_failures: Some((1, 1)),
        ..Options::default()
    })
    .await;
    let r = app
        .call_2026(Some("not.a.token"), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 401);
    let r = app
        .call_2026(Some("not.a.token"), "tools/list", json!({}))
        .await;
    // The request had id 7; reading it would cost what the budget saves.
    assert_eq!(rpc(&r), (429, json!(-32000), Value::Null), "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"mcp\";q=1;w=60"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_503s_keep_their_shapes_and_echo_the_id() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    // Limiter closed, revocation open: the limiter's 503 (JSON-RPC).
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        failure_mode: Some(ratelimit::FailureMode::Closed),
        revocation_fail_open: true,
        ..Options::default()
    })
    .await;
    // Revocation closed (the default), past its staleness limit: the bearer
    // layer's 503 (OAuth JSON).
    let strict = spawn_with(Options {
        redis_url: Some(redis.url()),
        revocation_max_staleness: Some(std::time::Duration::ZERO),
        ..Options::default()
    })
    .await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    let strict_token = strict.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    redis.stop();
    strict
        .wait_ready(&format!("http://{}", strict.mcp_addr), 503)
        .await;

    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(rpc(&r), (503, json!(-32000), json!(7)), "{}", r.text);
    assert_eq!(
        r.json()["error"]["message"],
        "rate limiting is unavailable; retry shortly"
    );
    assert!(r.header("retry-after").is_some());

    let r = reply(
        app.http
            .post(format!("http://{}/mcp", strict.mcp_addr))
            .bearer_auth(&strict_token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.json(),
        json!({"error": "temporarily_unavailable", "error_description": "The token could not be checked; retry shortly"})
    );
}
