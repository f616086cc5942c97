//! Per-client budgets (shared through Redis across replicas), tool-call
//! weighting, the failed-authentication limiter, and Redis failures.

use std::net::SocketAddr;

use ratelimit::FailureMode;
use serde_json::json;

use crate::helpers::*;

/// A 2026-07-28 `tools/call` of get_customer_info against `addr`.
async fn call_at(app: &TestApp, addr: SocketAddr, token: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "get_customer_info", "arguments": {"customer_id": "12345"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": V2026, "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = app
        .http
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "get_customer_info")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    reply(resp).await
}

#[tokio::test]
async fn client_budget_weighs_tool_calls_and_answers_429() {
    let app = spawn_with(Options {
        policy: Some((1, 3)),
        ..Options::default()
    })
    .await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    // tools/call costs 2 of the burst of 3.
    let r = app
        .call_2026(
            Some(&token),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("ratelimit-policy"), Some("\"mcp\";q=1;w=60"));
    assert!(
        r.header("ratelimit").unwrap().starts_with("\"mcp\";r=1;t="),
        "{:?}",
        r.header("ratelimit")
    );
    // A second tool call does not fit...
    let r = app
        .call_2026(
            Some(&token),
            "tools/call",
            json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}}),
        )
        .await;
    assert_eq!(r.status, 429, "an HTTP 429, not a JSON-RPC 200");
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("ratelimit"), Some("\"mcp\";r=1;t=60"));
    assert_eq!(r.json()["error"]["code"], -32000);
    assert_eq!(
        r.json()["error"]["message"],
        "rate limit exceeded; retry after 60 s"
    );
    // ...but a list call (cost 1) does.
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let limited = app.events("ratelimit.limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].client_id.as_deref(), Some("openai-mcp-client"));
    assert_eq!(limited[0].tool.as_deref(), Some("get_customer_info"));
    // Another client has its own budget.
    let other = app.secure_token().await;
    assert_eq!(
        app.call_2026(Some(&other), "tools/list", json!({}))
            .await
            .status,
        200
    );
}

/// Sends `n` alternating calls to two replicas; returns how many succeeded.
async fn alternate(
    app: &TestApp,
    a: SocketAddr,
    b: SocketAddr,
    token: &str,
    n: usize,
) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    for i in 0..n {
        let r = call_at(app, if i % 2 == 0 { a } else { b }, token).await;
        match r.status {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected {s}: {}", r.text),
        }
    }
    (ok, limited)
}

#[tokio::test]
async fn two_replicas_share_one_budget_through_redis() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    // 1/min: nothing refills during the test; burst 10 = five tool calls.
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        policy: Some((1, 10)),
        replicas: Some(2),
        ..Options::default()
    })
    .await;
    let second = app.stack.replicas()[1].addr();
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    assert_eq!(
        alternate(&app, app.mcp_addr, second, &token, 12).await,
        (5, 7)
    );
}

#[tokio::test]
async fn two_replicas_without_redis_each_enforce_their_own() {
    let app = spawn_with(Options {
        policy: Some((1, 10)),
        replicas: Some(2),
        ..Options::default()
    })
    .await;
    let second = app.stack.replicas()[1].addr();
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    assert_eq!(
        alternate(&app, app.mcp_addr, second, &token, 12).await,
        (10, 2)
    );
}

#[tokio::test]
async fn bad_token_flood_is_refused_before_verification() {
    let app = spawn_with(Options {
        auth_failures: Some((1, 3)),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let r = app
            .call_2026(Some("not.a.token"), "tools/list", json!({}))
            .await;
        assert_eq!(r.status, 401);
    }
    let r = app
        .call_2026(Some("not.a.token"), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(
        r.json()["error"]["message"],
        "too many failed authentications from this address; retry after 60 s"
    );
    let rejected_before = app.events("mcp.token_rejected").len();
    // Refused without looking at the token, valid or not.
    let good = app.secure_token().await;
    assert_eq!(
        app.call_2026(Some(&good), "tools/list", json!({}))
            .await
            .status,
        429
    );
    assert_eq!(
        app.events("mcp.token_rejected").len(),
        rejected_before,
        "no token was verified"
    );
    assert!(
        app.events("ratelimit.limited")
            .iter()
            .all(|e| e.reason == Some("auth_failures"))
    );
    // Requests without any token (discovery) never count as failures.
    let fresh = spawn_with(Options {
        auth_failures: Some((1, 1)),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            fresh.call_2026(None, "tools/list", json!({})).await.status,
            401
        );
    }
}

#[tokio::test]
async fn redis_outage_in_local_mode_keeps_limiting_without_failing_requests() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Options {
        redis_url: Some(redis.url()),
        policy: Some((1, 8)),
        failure_mode: Some(FailureMode::Local),
        revocation_fail_open: true,
        ..Options::default()
    };
    let app = spawn_with(opts).await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    assert_eq!(call_at(&app, app.mcp_addr, &token).await.status, 200);
    redis.stop();
    // The in-memory fallback has its own full budget: 4 tool calls, then 429.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(call_at(&app, app.mcp_addr, &token).await.status);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 429, 429],
        "no 5xx while Redis is down"
    );
    // The revocation set is served from memory within its staleness limit.
    assert!(app.events("mcp.revocation_unchecked").is_empty());
    redis.restart();
    // The restarted Redis is empty (no persistence in the fixture): once the
    // limiter probes it again (≤ 1 s), the fresh Redis budget applies where
    // the exhausted local fallback would still say 429.
    let mut recovered = false;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let status = call_at(&app, app.mcp_addr, &token).await.status;
        assert!(status == 200 || status == 429, "{status}");
        if status == 200 {
            recovered = true;
            break;
        }
    }
    assert!(
        recovered,
        "the limiter went back to Redis after it restarted"
    );
}

#[tokio::test]
async fn redis_outage_in_closed_mode_answers_503() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Options {
        redis_url: Some(redis.url()),
        failure_mode: Some(FailureMode::Closed),
        revocation_fail_open: true,
        ..Options::default()
    };
    let app = spawn_with(opts).await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    assert_eq!(call_at(&app, app.mcp_addr, &token).await.status, 200);
    redis.stop();
    let r = call_at(&app, app.mcp_addr, &token).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn revocation_outage_past_the_staleness_limit_is_503_by_default() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Options {
        redis_url: Some(redis.url()),
        failure_mode: Some(FailureMode::Open),
        revocation_max_staleness: Some(std::time::Duration::ZERO),
        ..Options::default()
    };
    let app = spawn_with(opts).await;
    let token = app.token(OPENAI_CLIENT, None, Some(RESOURCE)).await;
    redis.stop();
    app.wait_ready(&format!("http://{}", app.mcp_addr), 503)
        .await;
    let r = call_at(&app, app.mcp_addr, &token).await;
    assert_eq!(
        r.status, 503,
        "a revoked token is never let through silently: {}",
        r.text
    );
}
