//! The stack on a real Redis Cluster (`REDIS_CLUSTER_NODES`): 3 masters + 3
//! replicas on loopback ports behind two mcp-server replicas and the
//! oauth-server, through nginx. One client's budget spans both replicas, a
//! revocation reaches both, and killing a master under a steady stream of
//! calls loses no request: the replicas answer from their failure modes
//! until the master's replica is promoted, then share the budget again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::RedisCluster;

use crate::helpers::{CLIENT, Opts, Reply, Stack, V2026, form, reply};

/// The per-client limiter key of `CLIENT` (mcp-server's `rl:<principal>`).
const CLIENT_KEY: &str = "rl:e2e-client";
/// What one `tools/call` adds to the key's TAT at 1/min and cost 2, in µs.
const TOOL_CALL_US: i64 = 2 * 60_000_000;

/// Polls `check` (every 25 ms) until it holds; fails after 30 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One 2026-07-28 `tools/call` of get_customer_info at `url` (nginx or a replica).
async fn call_tool(http: &reqwest::Client, url: &str, token: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": "get_customer_info", "arguments": {"customer_id": "12345"},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": {},
    }}});
    let resp = http
        .post(url)
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

/// The stack on `cluster` with the mcp-server budget (per minute, burst).
async fn stack_on(cluster: &RedisCluster, mcp_policy: (u32, u32)) -> Option<Stack> {
    Stack::start_with(Opts {
        mcp_policy: Some(mcp_policy),
        redis: Some(stack::Redis::Cluster(cluster.urls())),
        ..Opts::default()
    })
    .await
}

/// Whether every replica answers `GET /ready` with 200 (`up`) or 503.
async fn all_ready(stack: &Stack, up: bool) -> bool {
    for i in 0..stack.replicas().len() {
        let url = stack.replica_url(i).unwrap();
        let base = url.trim_end_matches("/mcp");
        let status = stack
            .http
            .get(format!("{base}/ready"))
            .send()
            .await
            .unwrap()
            .status();
        if status.is_success() != up {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn on_a_redis_cluster_one_budget_spans_both_replicas_and_a_revocation_reaches_both() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    // 1/min: nothing refills during the test; burst 10 = five tool calls.
    let Some(stack) = stack_on(&cluster, (1, 10)).await else {
        return;
    };
    let replicas: Vec<String> = (0..2).map(|i| stack.replica_url(i).unwrap()).collect();
    until("both replicas to be ready", || all_ready(&stack, true)).await;

    // (a) Alternating between the replicas: five calls, then 429, because
    // both charge the one key in the cluster.
    let token = stack.token(CLIENT).await;
    let mut statuses = Vec::new();
    let mut first_refusal = None;
    for i in 0..12 {
        let r = call_tool(&stack.http, &replicas[i % 2], &token).await;
        statuses.push(r.status);
        if r.status == 429 && first_refusal.is_none() {
            first_refusal = Some(r);
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 429],
        "one budget of 5 tool calls over both replicas"
    );
    let refused = first_refusal.unwrap();
    // The 6th call (replica 2): two more units are 120 s away.
    assert_eq!(refused.header("retry-after"), Some("120"));
    assert_eq!(refused.header("ratelimit-policy"), Some("\"mcp\";q=1;w=60"));
    assert_eq!(refused.header("ratelimit"), Some("\"mcp\";r=0;t=120"));
    assert_eq!(refused.json()["error"]["code"], -32000);
    assert_eq!(
        refused.json()["error"]["message"],
        "rate limit exceeded; retry after 120 s"
    );
    let master = cluster.master_of(CLIENT_KEY);
    assert!(
        cluster
            .command(master, &["GET", CLIENT_KEY])
            .unwrap()
            .parse::<i64>()
            .is_ok(),
        "the budget lives in the cluster"
    );

    // (b) A revocation at the oauth-server reaches both replicas.
    let other = stack.token(crate::helpers::OTHER_CLIENT).await;
    for url in &replicas {
        call_tool(&stack.http, url, &other).await.assert_tool_ok();
    }
    let revoke = stack
        .http
        .post(format!("{}/revoke", stack.issuer))
        .basic_auth(
            crate::helpers::OTHER_CLIENT.0,
            Some(crate::helpers::OTHER_CLIENT.1),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", &other)]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        stack.resource.trim_end_matches("/mcp")
    );
    let challenge = format!(
        "Bearer error=\"invalid_token\", resource_metadata=\"{metadata}\", \
         scope=\"customer:read ticket:create account:calculate security:read\""
    );
    for url in &replicas {
        // Pushed, not read per request: it arrives a moment later.
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = loop {
            let r = call_tool(&stack.http, url, &other).await;
            if r.status != 200 {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "the revocation never reached {url}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(challenge.as_str()),
            "{r:?}"
        );
    }
    // The denylist entry sits on the `{revoked}` shard.
    let shard = cluster.master_of("{revoked}:");
    let keys = cluster
        .command(
            shard,
            &["SCAN", "0", "MATCH", "{revoked}:*", "COUNT", "1000"],
        )
        .unwrap();
    assert_eq!(keys.lines().count(), 2, "cursor and one key: {keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_cluster_master_under_load_loses_no_request_and_the_budget_is_shared_again() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    // 1/min and a burst the stream never exhausts: each tool call moves the
    // key's TAT by exactly 120 s, so who charged the key can be counted.
    let Some(stack) = stack_on(&cluster, (1, 1_000_000)).await else {
        return;
    };
    let stack = Arc::new(stack);
    until("both replicas to be ready", || all_ready(&stack, true)).await;
    let token = stack.token(CLIENT).await;
    let replicas: Vec<String> = (0..2).map(|i| stack.replica_url(i).unwrap()).collect();
    call_tool(&stack.http, &replicas[0], &token)
        .await
        .assert_tool_ok();
    let master = cluster.master_of(CLIENT_KEY);
    // The master's replica has finished its first sync and holds the key
    // before the load starts: a failover may lose the last moment's writes
    // (replication is asynchronous), never the key. Without this wait a
    // fast run killed the master while its replica was still waiting to
    // sync, and the promoted node had no key at all (CI, 2026-12-01).
    tokio::task::block_in_place(|| cluster.wait_for_replicas(master));

    // A steady stream of calls through nginx (both replicas).
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (stack, token) = (stack.clone(), token.clone());
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                let url = stack.mcp_url().to_owned();
                while !stop.load(Ordering::SeqCst) {
                    let r = call_tool(&stack.http, &url, &token).await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    if r.status != 200 {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("failed: {} {}", r.status, r.text);
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(master);
    until("both replicas to report the lost master", || {
        all_ready(&stack, false)
    })
    .await;
    let during = sent.load(Ordering::SeqCst);
    // The replica takes over (node timeout 1 s + election); meanwhile the
    // load goes on, answered by the in-memory limiter (`local`, the default).
    tokio::task::block_in_place(|| cluster.wait_until_healed(3));
    let promoted = cluster.master_of(CLIENT_KEY);
    assert_ne!(promoted, master);
    until("both replicas to be ready again", || {
        all_ready(&stack, true)
    })
    .await;
    assert!(
        sent.load(Ordering::SeqCst) > during,
        "the load went on during the failover"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(sent > 0);
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");

    // Shared again: each replica's limiter has left its failure mode (it
    // retries Redis at most once a second), and then every call, on either
    // replica, moves the one key on the promoted master by one tool call.
    let tat = || -> i64 {
        cluster
            .command(promoted, &["GET", CLIENT_KEY])
            .unwrap()
            .parse()
            .unwrap()
    };
    for url in &replicas {
        let (stack, token) = (&stack, &token);
        until(
            "the replica's limiter to use the cluster again",
            || async move {
                let before = tat();
                call_tool(&stack.http, url, token).await.assert_tool_ok();
                tat() == before + TOOL_CALL_US
            },
        )
        .await;
    }
    let start = tat();
    for (i, url) in replicas.iter().chain(&replicas).enumerate() {
        call_tool(&stack.http, url, &token).await.assert_tool_ok();
        assert_eq!(tat(), start + (i as i64 + 1) * TOOL_CALL_US, "call {i}");
    }
}
