//! Prometheus metrics (issue 14): each server's `/metrics` lives on its own
//! listener, which nginx never routes to.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::{CLIENT, Opts, Stack, list_tools_2026, repo_root};

/// `/metrics` through nginx is the API listener's 404 on both fronts, in
/// each server's error shape: the metrics listener is not reachable there.
#[tokio::test]
async fn metrics_are_not_reachable_through_nginx() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    for (front, base) in [
        ("oauth", stack.nginx().oauth_url()),
        (
            "mcp",
            format!("https://localhost:{}", stack.nginx().mcp_port()),
        ),
    ] {
        let resp = stack
            .http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{front} front");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("# TYPE"),
            "{front} front served metrics: {body}"
        );
        assert!(!body.contains("securemcp_"), "{front} front: {body}");
    }
}

/// One scrape of every server of `stack`: sample line (name with labels) →
/// value, summed over the mcp-server replicas.
async fn scrape(stack: &Stack) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let http = reqwest::Client::new();
    let get = |addr: std::net::SocketAddr| {
        let http = http.clone();
        async move {
            let resp = http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/openmetrics-text")
            );
            resp.text().await.unwrap()
        }
    };
    let parse = |text: &str, into: &mut BTreeMap<String, f64>| {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.rsplit_once(' ').unwrap();
            *into.entry(key.to_owned()).or_default() += value.parse::<f64>().unwrap();
        }
    };
    let mut oauth = BTreeMap::new();
    parse(
        &get(stack.oauth().metrics_addr().expect("oauth metrics on")).await,
        &mut oauth,
    );
    let mut mcp = BTreeMap::new();
    for replica in stack.replicas() {
        parse(
            &get(replica.metrics_addr().expect("mcp metrics on")).await,
            &mut mcp,
        );
    }
    (oauth, mcp)
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

/// A scripted session through nginx — two tokens and one refused client
/// secret, tools/list, two allowed calls, a call the token's scope does not
/// cover, a forged token, a call over the per-client budget — then both
/// servers' `/metrics` (all replicas summed) hold exactly that session.
/// Every metric the Grafana dashboard queries is in the scrape.
#[tokio::test]
async fn a_scripted_session_scrapes_to_exact_values() {
    let Some(stack) = Stack::start_with(Opts {
        mcp_policy: Some((1, 5)),
        ..Opts::default()
    })
    .await
    else {
        return;
    };
    let (before_oauth, before_mcp) = scrape(&stack).await;

    let full = stack.token(CLIENT).await;
    let narrow = stack
        .inner
        .token(CLIENT, Some("customer:read"), Some(&stack.resource))
        .await
        .unwrap();
    let refused = stack
        .http
        .post(format!("{}/token", stack.issuer))
        .basic_auth(CLIENT.0, Some("not-the-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let list = list_tools_2026(&stack.http, &stack.resource, &full).await;
    assert_eq!(list.status, 200, "{}", list.text);
    for _ in 0..2 {
        let r = stack
            .call_stateless(&full, "get_customer_info", json!({"customer_id": "12345"}))
            .await;
        r.assert_tool_ok();
    }
    let denied = stack
        .call_stateless(
            &narrow,
            "create_support_ticket",
            json!({"customer_id": "12345", "subject": "s", "description": "d"}),
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    // One signature character changed (not the last: its low bits are padding).
    let mut forged = full.clone().into_bytes();
    let i = forged.len() - 10;
    forged[i] = if forged[i] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    let bad = stack
        .call_stateless(
            &forged,
            "get_customer_info",
            json!({"customer_id": "12345"}),
        )
        .await;
    assert_eq!(bad.status, 401, "{}", bad.text);
    // Then calls until the per-client budget (burst 5, one more a minute)
    // refuses one: how many still passed is part of the session.
    let mut more_ok = 0.0;
    loop {
        let r = stack
            .call_stateless(&full, "get_customer_info", json!({"customer_id": "12345"}))
            .await;
        match r.status {
            200 => more_ok += 1.0,
            429 => break,
            other => panic!("HTTP {other}: {}", r.text),
        }
        assert!(more_ok < 10.0, "the budget never ran out");
    }

    let (oauth, mcp) = scrape(&stack).await;
    let delta = |after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, key: &str| {
        value(after, key) - value(before, key)
    };
    let o = |key: &str| delta(&oauth, &before_oauth, key);
    let m = |key: &str| delta(&mcp, &before_mcp, key);

    // oauth-server
    assert_eq!(
        o(
            r#"securemcp_tokens_issued_total{grant_type="client_credentials",client_id="e2e-client"}"#
        ),
        2.0
    );
    assert_eq!(
        o(r#"securemcp_client_auth_failures_total{method="client_secret_basic"}"#),
        1.0
    );
    assert_eq!(
        o(r#"securemcp_http_requests_total{route="/token",status="200"}"#),
        2.0
    );
    assert_eq!(
        o(r#"securemcp_http_requests_total{route="/token",status="401"}"#),
        1.0
    );
    assert_eq!(
        o(r#"securemcp_http_request_duration_seconds_count{route="/token"}"#),
        3.0
    );
    assert_eq!(o(r#"securemcp_login_failures_total"#), 0.0);
    assert_eq!(value(&oauth, "securemcp_signing_keys"), 1.0);
    assert_eq!(value(&oauth, "securemcp_redis_up"), 1.0);

    // mcp-server, both replicas
    for (key, want) in [
        (
            r#"securemcp_http_requests_total{route="/mcp",status="200"}"#,
            3.0,
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
            r#"securemcp_http_request_duration_seconds_count{route="/mcp"}"#,
            6.0,
        ),
        (
            r#"securemcp_token_rejections_total{reason="bad_signature"}"#,
            1.0,
        ),
        (
            r#"securemcp_scope_denials_total{tool="create_support_ticket"}"#,
            1.0,
        ),
        (
            r#"securemcp_tool_calls_total{tool="get_customer_info",outcome="ok"}"#,
            2.0 + more_ok,
        ),
        (
            r#"securemcp_tool_call_duration_seconds_count{tool="get_customer_info"}"#,
            2.0 + more_ok,
        ),
        (
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"}"#,
            3.0 + more_ok,
        ),
        (
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="limited"}"#,
            1.0,
        ),
    ] {
        assert_eq!(m(key), want, "{key}\n{mcp:#?}");
    }
    assert_eq!(
        value(&mcp, "securemcp_sessions_active"),
        0.0,
        "stateless calls only"
    );
    assert_eq!(value(&mcp, "securemcp_redis_up"), 2.0, "both replicas");

    // Every metric the dashboard queries exists in a scrape.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("docker/grafana/dashboards/secure-mcp.json"))
            .unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    let names: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("securemcp_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    let scraped: BTreeSet<&str> = oauth
        .keys()
        .chain(mcp.keys())
        .map(|k| k.split('{').next().unwrap())
        .collect();
    for name in &names {
        assert!(
            scraped.contains(name.as_str()),
            "the dashboard queries {name}, which no server exports"
        );
    }
}
