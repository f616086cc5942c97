//! Child-process mode: the built `oauth-server` and `mcp-server` binaries
//! (as `cargo test --workspace` leaves them in the target folder), sharing a
//! real Redis, started and stopped by `stack`.

use crate::helpers::{CLIENT, list_tools_2026};

#[tokio::test]
async fn the_built_binaries_serve_tokens_and_tools_as_children() {
    for bin in ["oauth-server", "mcp-server"] {
        if let Err(e) = stack::child::binary(bin, None) {
            assert!(!testkit::services_required(), "{e:#}");
            eprintln!("SKIPPED: {e:#}");
            return;
        }
    }
    let Some(mut stack) = stack::Stack::builder()
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .redis(stack::Redis::Start)
        .mcp_replicas(2)
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .mcp_env("RATE_LIMIT_PER_MINUTE", "60000")
        .mcp_env("RATE_LIMIT_BURST", "1000")
        .start_or_skip()
        .await
    else {
        return;
    };
    assert!(stack.oauth().pid().is_some() && stack.oauth().state().is_none());
    assert_eq!(stack.resources(), [stack.mcp_url().to_owned()]);
    let token = stack.token(CLIENT, None, None).await.unwrap();
    for i in 0..2 {
        let url = stack.replica_url(i).unwrap();
        let r = list_tools_2026(stack.http(), &url, &token).await;
        assert_eq!(r.status, 200, "replica {i}: {}", r.text);
        // customer:read sees its two tools only.
        assert_eq!(
            r.json()["result"]["tools"].as_array().unwrap().len(),
            2,
            "{}",
            r.text
        );
    }
    let pid = stack.replicas()[0].pid().unwrap();
    stack.stop().await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "replica still running after stop"
    );
}

/// Polls `GET {base}/ready` until it answers `status`; returns the body.
async fn ready(http: &reqwest::Client, base: &str, status: u16) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = http.get(format!("{base}/ready")).send().await.unwrap();
        let got = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        if got == status {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base}/ready never answered {status}; last {got} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_built_binaries_start_while_redis_is_down_and_become_ready_when_it_comes_up() {
    for bin in ["oauth-server", "mcp-server"] {
        if let Err(e) = stack::child::binary(bin, None) {
            assert!(!testkit::services_required(), "{e:#}");
            eprintln!("SKIPPED: {e:#}");
            return;
        }
    }
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    // Nothing listens on Redis's port while the servers start.
    redis.stop();
    let Some(stack) = stack::Stack::builder()
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .redis(stack::Redis::Url(redis.url()))
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .start_or_skip()
        .await
    else {
        return;
    };
    let http = stack.http();
    let replica = stack.replica_url(0).unwrap();
    let replica = replica.trim_end_matches("/mcp");
    assert_eq!(
        ready(http, stack.issuer(), 503).await,
        serde_json::json!({"status": "degraded", "redis": "down"})
    );
    assert_eq!(
        ready(http, replica, 503).await,
        serde_json::json!({"status": "degraded", "redis": "down", "revocations": "stale"})
    );

    redis.restart();
    assert_eq!(
        ready(http, stack.issuer(), 200).await,
        serde_json::json!({"status": "ready", "redis": "up"})
    );
    assert_eq!(
        ready(http, replica, 200).await,
        serde_json::json!({"status": "ready", "redis": "up", "revocations": "live"})
    );
    let token = stack.token(CLIENT, None, None).await.unwrap();
    let r = list_tools_2026(http, &stack.replica_url(0).unwrap(), &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
