//! Both servers start while Redis is down, answer per their failure modes
//! without waiting for it, report it on `GET /ready`, and use it once it
//! comes up.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn both_servers_start_without_redis_and_become_ready_when_it_comes_up() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    // Nothing listens on this port until the restart below.
    redis.stop();
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let mcp = format!("http://{}", app.mcp_addr);

    // Alive, not ready; the body names what is down and nothing else.
    assert_eq!(app.get("/health").await.status, 200);
    assert_eq!(
        app.wait_ready(&mcp, 503).await,
        json!({"status": "degraded", "redis": "down", "revocations": "stale"})
    );
    assert_eq!(
        app.wait_ready(&app.issuer, 503).await,
        json!({"status": "degraded", "redis": "down"})
    );

    // client_credentials needs no Redis (limits fall back per
    // RATE_LIMIT_FAILURE_MODE=local): a token is issued.
    let token = app.secure_token().await;
    // The replica never synchronised its revocation set, so it cannot know
    // what was revoked before it started: REVOCATION_FAILURE_MODE (closed)
    // applies at once, and no request reaches for Redis.
    let handle = app.mcp.readiness().redis().unwrap().clone();
    let sent = handle.commands_sent();
    for _ in 0..3 {
        let r = app.list_at(app.mcp_addr, &token).await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.json()["error"], "temporarily_unavailable");
    }
    assert_eq!(handle.commands_sent(), sent);
    let stale = app.events("revocation.stale");
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].reason, Some("never_synchronised"));
    // What the oauth-server keeps in Redis answers 503 at once.
    let r = app.revoke(SECURE_CLIENT, &token).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"], "temporarily_unavailable");

    redis.restart();
    assert_eq!(
        app.wait_ready(&mcp, 200).await,
        json!({"status": "ready", "redis": "up", "revocations": "live"})
    );
    assert_eq!(
        app.wait_ready(&app.issuer, 200).await,
        json!({"status": "ready", "redis": "up"})
    );
    let r = app.list_at(app.mcp_addr, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        handle.commands_sent() > sent,
        "the limiter uses Redis again"
    );
    // Revocation works end to end.
    assert_eq!(app.revoke(SECURE_CLIENT, &token).await.status, 200);
    let r = app.wait_status_at(app.mcp_addr, &token, 401).await;
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
}

#[tokio::test]
async fn with_revocation_open_a_replica_started_during_an_outage_serves() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    redis.stop();
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        revocation_fail_open: true,
        ..Options::default()
    })
    .await;
    let token = app.secure_token().await;
    let r = app.list_at(app.mcp_addr, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.events("mcp.revocation_unchecked").len(), 1);
}

#[tokio::test]
async fn without_redis_the_server_is_ready() {
    let app = spawn().await;
    assert_eq!(
        app.wait_ready(&format!("http://{}", app.mcp_addr), 200)
            .await,
        json!({"status": "ready", "redis": "not_configured"})
    );
    assert_eq!(
        app.wait_ready(&app.issuer, 200).await,
        json!({"status": "ready", "redis": "not_configured"})
    );
}
