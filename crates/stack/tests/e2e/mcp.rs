//! MCP through nginx with two replicas: stateless (2026-07-28) and session
//! (2025-11-25) clients, session routing, failover when a replica stops.

use std::collections::BTreeMap;

use serde_json::json;

use crate::helpers::{CLIENT, ReplicaExt as _, Stack};

fn customer() -> serde_json::Value {
    json!({"customer_id": "12345"})
}

/// For each session id (as the client sees it) in nginx's access log: the
/// set of upstream addresses that served its requests.
fn upstreams_by_session(log: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(" /mcp ")) {
        let (Some(up), Some(sid)) = (
            line.split("upstream=")
                .nth(1)
                .and_then(|s| s.split(' ').next()),
            line.split("sid=\"")
                .nth(1)
                .and_then(|s| s.split('"').next()),
        ) else {
            continue;
        };
        if sid.is_empty() || sid == "-" {
            continue;
        }
        let ups = map.entry(sid.to_owned()).or_default();
        if !ups.iter().any(|u| u == up) {
            ups.push(up.to_owned());
        }
    }
    map
}

#[tokio::test]
async fn stateless_calls_succeed_and_spread_over_both_replicas() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let token = stack.token(CLIENT).await;
    for _ in 0..30 {
        stack
            .call_stateless(&token, "get_customer_info", customer())
            .await
            .assert_tool_ok();
    }
    let counts: Vec<usize> = stack.replicas().iter().map(|r| r.tool_calls()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 30, "{counts:?}");
    // An even split puts both replicas to work (all 30 on one: p = 2^-29).
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
}

#[tokio::test]
async fn sessions_stay_on_the_replica_that_created_them() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let token = stack.token(CLIENT).await;
    let mut sessions = Vec::new();
    for _ in 0..16 {
        sessions.push(stack.session(&token).await);
    }
    // Interleave the sessions' calls so both replicas are busy at once.
    for round in 0..4u64 {
        for s in &sessions {
            s.call(10 + round, "get_customer_info", customer())
                .await
                .assert_tool_ok();
        }
    }
    let counts: Vec<usize> = stack.replicas().iter().map(|r| r.tool_calls()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 64, "{counts:?}");

    // Ids are tagged with their replica; both replicas created sessions
    // (all 16 on one: p = 2^-15).
    let tags: Vec<&str> = sessions.iter().map(|s| &s.id[..2]).collect();
    assert!(tags.iter().all(|t| *t == "1." || *t == "2."), "{tags:?}");
    assert!(tags.contains(&"1.") && tags.contains(&"2."), "{tags:?}");

    // Every request of a session went to exactly one upstream, the tagged one.
    let by_session = upstreams_by_session(&stack.nginx().access_log());
    for s in &sessions {
        let ups = &by_session[&s.id];
        let replica = if s.id.starts_with("1.") { 0 } else { 1 };
        assert_eq!(
            ups,
            &vec![stack.replicas()[replica].addr().to_string()],
            "session {}",
            s.id
        );
    }

    // DELETE ends the session on its replica; the id is then unknown.
    for s in &sessions[..4] {
        let r = s.delete().await;
        assert!(
            r.status == 200 || r.status == 202 || r.status == 204,
            "{r:?}"
        );
        let r = s.call(99, "get_customer_info", customer()).await;
        assert_eq!(r.status, 404, "{r:?}");
    }
    // The others are untouched.
    for s in &sessions[4..] {
        s.call(100, "get_customer_info", customer())
            .await
            .assert_tool_ok();
    }
}

#[tokio::test]
async fn a_forged_or_untagged_session_id_is_just_unknown() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let token = stack.token(CLIENT).await;
    let real = stack.session(&token).await;
    // Same server-side id, other replica's tag: that replica does not know it.
    // (The bare server-side id is never shown to clients; sent anyway, it
    // goes to a random replica like any untagged request.)
    let other_tag = if real.id.starts_with("1.") {
        "2."
    } else {
        "1."
    };
    for id in [
        format!("{other_tag}{}", &real.id[2..]),
        "3.abc".to_owned(),
        "1.".to_owned(),
        "garbage".to_owned(),
    ] {
        let r = stack
            .post_mcp(
                &token,
                &[
                    ("mcp-session-id", &id),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )
            .await;
        assert_eq!(r.status, 404, "{id}: {r:?}");
    }
    real.call(1, "get_customer_info", customer())
        .await
        .assert_tool_ok();
}

#[tokio::test]
async fn stopping_a_replica_mid_run_costs_at_most_the_in_flight_requests() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let Some(stack) = Stack::start().await else {
        return;
    };
    let token = stack.token(CLIENT).await;
    let mut sessions = Vec::new();
    for _ in 0..12 {
        sessions.push(stack.session(&token).await);
    }

    // Four clients call without pause while replica 1 is stopped (SIGTERM-
    // like graceful shutdown, as `docker stop` does).
    const WORKERS: usize = 4;
    let stopped = AtomicBool::new(false);
    let worker = || async {
        let mut results = Vec::new();
        for _ in 0..40 {
            let after_stop = stopped.load(Ordering::SeqCst);
            let r = stack
                .call_stateless(&token, "get_customer_info", customer())
                .await;
            let ok = r.status == 200 && r.json()["result"]["isError"] != true;
            results.push((after_stop, ok, r.status));
        }
        results
    };
    let stopper = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        stack.replicas()[0].stop().await.unwrap();
        stopped.store(true, Ordering::SeqCst);
    };
    let (a, b, c, d, ()) = tokio::join!(worker(), worker(), worker(), worker(), stopper);
    let results: Vec<(bool, bool, u16)> = [a, b, c, d].into_iter().flatten().collect();
    let failed_before: Vec<u16> = results
        .iter()
        .filter(|(after, ok, _)| !after && !ok)
        .map(|r| r.2)
        .collect();
    let after: Vec<&(bool, bool, u16)> = results.iter().filter(|r| r.0).collect();
    assert!(
        failed_before.len() <= WORKERS,
        "more failures than requests in flight: {failed_before:?}"
    );
    assert!(!after.is_empty(), "the run ended before the stop completed");
    assert!(
        after.iter().all(|r| r.1),
        "calls after the stop failed: {:?}",
        after.iter().filter(|r| !r.1).collect::<Vec<_>>()
    );

    // Sessions: those of replica 2 carry on; those of replica 1 are gone
    // (404, the spec's "start a new session"), and a new one works.
    for (i, s) in sessions.iter().enumerate() {
        let r = s.call(50 + i as u64, "get_customer_info", customer()).await;
        if s.id.starts_with("2.") {
            r.assert_tool_ok();
        } else {
            assert_eq!(r.status, 404, "session of the stopped replica: {r:?}");
            let fresh = stack.session(&token).await;
            fresh
                .call(1, "get_customer_info", customer())
                .await
                .assert_tool_ok();
        }
    }
}

/// One client's budget is shared through Redis by both replicas: a burst
/// spread over the two is cut off after ONE budget, not two.
#[tokio::test]
async fn one_clients_rate_budget_is_enforced_across_both_replicas() {
    use ratelimit::config::{DEFAULT_BURST, DEFAULT_RATE_PER_MINUTE, DEFAULT_TOOL_CALL_COST};

    // The documented defaults (60/min, burst 10, a tool call costs 2).
    let Some(stack) = Stack::start_with(crate::helpers::Opts {
        mcp_policy: Some((DEFAULT_RATE_PER_MINUTE, DEFAULT_BURST)),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let token = stack.token(CLIENT).await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let r = stack
            .call_stateless(&token, "get_customer_info", customer())
            .await;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{r:?}");
        }
        statuses.push(r.status);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // One budget: the burst plus what refilled meanwhile (+1 for rounding).
    let refill = elapsed * f64::from(DEFAULT_RATE_PER_MINUTE) / 60.0;
    let one_budget = ((f64::from(DEFAULT_BURST) + refill) / f64::from(DEFAULT_TOOL_CALL_COST))
        .floor() as usize
        + 1;
    assert!(
        ok <= one_budget,
        "{ok} calls got through, one shared budget allows {one_budget}: {statuses:?}"
    );
    // Both replicas refused (~24 refusals split at random): the budget
    // really spans them.
    let log = stack.nginx().access_log();
    for replica in stack.replicas() {
        let addr = replica.addr().to_string();
        assert!(
            log.lines()
                .any(|l| l.contains(" /mcp ") && l.contains(" 429 ") && l.contains(&addr)),
            "replica {addr} never answered 429:\n{log}"
        );
    }
    // Another client's budget is its own.
    let other = stack.token(crate::helpers::OTHER_CLIENT).await;
    stack
        .call_stateless(&other, "get_customer_info", customer())
        .await
        .assert_tool_ok();
}
