//! `MCP_METRICS_BIND`: a scripted session scraped from the real metrics
//! listener, every family with its exact value; Redis gauges and timings
//! with a real redis-server; metrics off when the variable is empty.

use serde_json::json;

use crate::helpers::*;

/// Asserts each `(series, value)` of `expected` in `scrape`.
fn assert_samples(scrape: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_eq!(
            sample(scrape, series),
            Some(*value),
            "{series} in\n{scrape}"
        );
    }
}

#[tokio::test]
async fn scripted_session_gives_exact_counts_for_every_family() {
    // A burst of 5: initialize, initialized, tools/list (1 each) and one
    // tools/call (2) spend it; the second call is limited. 1/min refills
    // nothing a call could use within the test.
    let app = spawn_with(Options {
        policy: Some((1, 5)),
        ..Options::default()
    })
    .await;
    // Before any request: the JWKS was fetched once at start-up.
    let start = app.scrape().await;
    assert_samples(
        &start,
        &[
            (r#"securemcp_jwks_refreshes_total{outcome="ok"}"#, 1.0),
            ("securemcp_sessions_active", 0.0),
            ("securemcp_token_cache_hits_total", 0.0),
            ("securemcp_token_cache_misses_total", 0.0),
        ],
    );
    assert_eq!(sample(&start, "securemcp_redis_up"), None, "no REDIS_URL");

    let token = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;
    let session = app.session(&token).await; // 200 + 202
    let r = session.request("tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let call = json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}});
    let r = session.request("tools/call", call.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"]["isError"], json!(false), "{}", r.text);
    let r = session
        .request(
            "tools/call",
            json!({"name": "create_support_ticket", "arguments": {
                "customer_id": "12345", "subject": "s", "description": "d", "priority": "low"}}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // A token for another resource: signature fine, audience wrong.
    let foreign = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(OTHER_RESOURCE))
        .await;
    let r = app.call_2026(Some(&foreign), "tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = session.request("tools/call", call).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(app.get("/health").await.status, 200);
    assert_eq!(app.get("/no-such-route").await.status, 404);

    let scrape = app.scrape().await;
    assert_samples(
        &scrape,
        &[
            (
                r#"securemcp_http_requests_total{route="/mcp",status="200"}"#,
                3.0,
            ),
            (
                r#"securemcp_http_requests_total{route="/mcp",status="202"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_requests_total{route="/mcp",status="403"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_requests_total{route="/mcp",status="401"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_requests_total{route="/mcp",status="429"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_requests_total{route="/health",status="200"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_requests_total{route="other",status="404"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_request_duration_seconds_count{route="/mcp"}"#,
                7.0,
            ),
            (
                r#"securemcp_http_request_duration_seconds_count{route="/health"}"#,
                1.0,
            ),
            (
                r#"securemcp_http_request_duration_seconds_count{route="other"}"#,
                1.0,
            ),
            (
                r#"securemcp_token_rejections_total{reason="wrong_audience"}"#,
                1.0,
            ),
            (
                r#"securemcp_scope_denials_total{tool="create_support_ticket"}"#,
                1.0,
            ),
            (
                r#"securemcp_tool_calls_total{tool="get_customer_info",outcome="ok"}"#,
                1.0,
            ),
            (
                r#"securemcp_tool_call_duration_seconds_count{tool="get_customer_info"}"#,
                1.0,
            ),
            ("securemcp_sessions_active", 1.0),
            // Every token-bearing request but the first of each token: the
            // session's 5 after initialize hit; initialize and the foreign
            // token's one request miss.
            ("securemcp_token_cache_hits_total", 5.0),
            ("securemcp_token_cache_misses_total", 2.0),
            (r#"securemcp_jwks_refreshes_total{outcome="ok"}"#, 1.0),
            (
                r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"}"#,
                4.0,
            ),
            (
                r#"securemcp_ratelimit_decisions_total{limiter="client",decision="limited"}"#,
                1.0,
            ),
            // Every /mcp request looks at its address's failed-auth budget.
            (
                r#"securemcp_ratelimit_decisions_total{limiter="auth_failures",decision="allowed"}"#,
                7.0,
            ),
        ],
    );
    // Exactly the series above for these families: nothing else was counted.
    for (family, series) in [
        ("securemcp_http_requests_total{", 7),
        ("securemcp_token_rejections_total{", 1),
        ("securemcp_scope_denials_total{", 1),
        ("securemcp_tool_calls_total{", 1),
        ("securemcp_ratelimit_decisions_total{", 3),
        ("securemcp_jwks_refreshes_total{", 1),
    ] {
        let n = scrape.lines().filter(|l| l.starts_with(family)).count();
        assert_eq!(n, series, "{family} in\n{scrape}");
    }
    assert!(scrape.ends_with("# EOF\n"));
}

#[tokio::test]
async fn redis_families_follow_commands_and_the_breaker() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let token = app
        .token(OPENAI_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;
    let call = json!({"name": "get_customer_info", "arguments": {"customer_id": "12345"}});
    // Warm-up: whatever the revocation set sent at start-up is in `before`.
    let before = app.scrape().await;
    assert_eq!(sample(&before, "securemcp_redis_up"), Some(1.0), "{before}");
    let timed = |s: &str| sample(s, "securemcp_redis_command_duration_seconds_count").unwrap();
    for _ in 0..3 {
        let r = app
            .call_2026(Some(&token), "tools/call", call.clone())
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let after = app.scrape().await;
    // One limiter script per request (the revocation set is in memory).
    assert_eq!(timed(&after) - timed(&before), 3.0, "{after}");
    assert_samples(
        &after,
        &[(
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"}"#,
            3.0,
        )],
    );

    // Redis gone: the first check finds out (timed, failure mode answers:
    // degraded), the breaker opens, the gauge drops; later checks are
    // refused at once (not timed, still degraded).
    redis.stop();
    for _ in 0..2 {
        let r = app
            .call_2026(Some(&token), "tools/call", call.clone())
            .await;
        assert_eq!(r.status, 200, "local failure mode serves: {}", r.text);
    }
    let down = app.scrape().await;
    assert_samples(
        &down,
        &[
            ("securemcp_redis_up", 0.0),
            (
                r#"securemcp_ratelimit_decisions_total{limiter="client",decision="degraded"}"#,
                2.0,
            ),
        ],
    );
    assert_eq!(timed(&down) - timed(&after), 1.0, "{down}");
}

#[tokio::test]
async fn empty_metrics_bind_turns_the_listener_off() {
    let app = spawn_with(Options {
        metrics_off: true,
        ..Options::default()
    })
    .await;
    assert_eq!(app.stack.replicas()[0].metrics_addr(), None);
    // The API still serves.
    assert_eq!(app.get("/health").await.status, 200);
}
