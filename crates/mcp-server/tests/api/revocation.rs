//! Revocation with Redis: the oauth-server publishes each revocation, every
//! mcp-server replica holds the revoked set in memory (subscription + scan on
//! every reconnect) and checks it without a Redis round trip; a Redis outage
//! does not fail requests with the default configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// `INFO commandstats` as command → calls.
async fn command_calls(url: &str) -> BTreeMap<String, u64> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands (other than the health checks and `INFO` itself) between two
/// snapshots.
fn new_calls(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "ping" | "info"))
        .filter_map(|(name, n)| {
            let d = n - before.get(name).copied().unwrap_or(0);
            (d > 0).then(|| (name.clone(), d))
        })
        .collect()
}

#[tokio::test]
async fn revoked_token_is_refused() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return; // skipped loudly by testkit (fails instead when services are required)
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let token = app.secure_token().await;
    let other = app.secure_token().await;
    assert_eq!(
        app.call_2026(Some(&token), "tools/list", json!({}))
            .await
            .status,
        200
    );

    assert_eq!(app.revoke(SECURE_CLIENT, &token).await.status, 200);

    // Pushed, not read per request: it arrives a moment later.
    let r = app.wait_status_at(app.mcp_addr, &token, 401).await;
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    let last = app.events("mcp.token_rejected").pop().unwrap();
    assert_eq!(
        (last.reason, last.client_id.as_deref()),
        (Some("revoked"), Some("mcp-secure-client"))
    );
    // Other tokens of the same client are unaffected.
    assert_eq!(
        app.call_2026(Some(&other), "tools/list", json!({}))
            .await
            .status,
        200
    );

    // Redis gone: the replica keeps serving from the set it has (default
    // REVOCATION_MAX_STALENESS_SECS = the token lifetime) and still refuses
    // what it knows is revoked.
    redis.stop();
    app.wait_ready(&format!("http://{}", app.mcp_addr), 503)
        .await;
    let r = app.call_2026(Some(&other), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn revocation_reaches_every_replica_without_a_redis_command_per_request() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        replicas: Some(2),
        ..Options::default()
    })
    .await;
    let replicas: Vec<_> = app.stack.replicas().iter().map(|r| r.addr()).collect();
    let token = app.secure_token().await;
    let other = app.secure_token().await;
    for &addr in &replicas {
        assert_eq!(app.list_at(addr, &token).await.status, 200);
    }

    assert_eq!(app.revoke(SECURE_CLIENT, &token).await.status, 200);
    for &addr in &replicas {
        let r = app.wait_status_at(addr, &token, 401).await;
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    }

    // Refusing a revoked token costs Redis nothing...
    let before = command_calls(&redis.url()).await;
    for &addr in &replicas {
        for _ in 0..5 {
            assert_eq!(app.list_at(addr, &token).await.status, 401);
        }
    }
    let after = command_calls(&redis.url()).await;
    assert_eq!(new_calls(&before, &after), BTreeMap::new());
    // ...and accepting a valid one costs only the rate limiter's script
    // (one EVALSHA; Redis counts the TIME, GET and SET inside it too). No
    // EXISTS: the revocation check never leaves the process.
    for &addr in &replicas {
        for _ in 0..5 {
            assert_eq!(app.list_at(addr, &other).await.status, 200);
        }
    }
    let last = command_calls(&redis.url()).await;
    assert_eq!(
        new_calls(&after, &last),
        BTreeMap::from(["evalsha", "get", "set", "time"].map(|c| (c.to_owned(), 10)))
    );
}

#[tokio::test]
async fn a_replica_started_after_the_revocation_learns_it_from_the_scan() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let token = app.secure_token().await;
    let other = app.secure_token().await;
    assert_eq!(app.revoke(SECURE_CLIENT, &token).await.status, 200);

    let mut config = mcp_server::Config::new(RESOURCE, &app.issuer).unwrap();
    config.redis_url = Some(redis.url().into());
    let late = mcp_server::App::build_with_listener(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let addr = late.local_addr().unwrap();
    let stop = late.shutdown_token();
    tokio::spawn(late.run_until_stopped());

    // Built means synchronised: no waiting for a message it never got.
    let r = app.list_at(addr, &token).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    assert_eq!(app.list_at(addr, &other).await.status, 200);
    stop.cancel();
}

#[tokio::test]
async fn a_redis_outage_does_not_fail_requests_and_the_set_is_rebuilt_after_it() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let mcp = format!("http://{}", app.mcp_addr);
    assert_eq!(
        app.wait_ready(&mcp, 200).await,
        json!({"status": "ready", "redis": "up", "revocations": "live"})
    );
    let revoked = app.secure_token().await;
    let valid = app.secure_token().await;
    let later = app.secure_token().await;
    assert_eq!(app.revoke(SECURE_CLIENT, &revoked).await.status, 200);
    app.wait_status_at(app.mcp_addr, &revoked, 401).await;

    redis.stop();
    assert_eq!(
        app.wait_ready(&mcp, 503).await,
        json!({"status": "degraded", "redis": "down", "revocations": "stale"})
    );
    let handle = app.mcp.readiness().redis().unwrap().clone();
    let sent = handle.commands_sent();
    for _ in 0..5 {
        let r = app.list_at(app.mcp_addr, &valid).await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Revoked before the outage: still refused during it.
        assert_eq!(app.list_at(app.mcp_addr, &revoked).await.status, 401);
    }
    assert_eq!(
        handle.commands_sent(),
        sent,
        "no request waited on Redis while it was known to be down"
    );
    assert_eq!(app.events("revocation.stale").len(), 1, "audited once");
    assert!(app.events("mcp.revocation_unchecked").is_empty());
    // The oauth-server cannot record a revocation now, and says so at once.
    let r = app.revoke(SECURE_CLIENT, &later).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"], "temporarily_unavailable");

    // Back, empty (no persistence in the fixture): the set is rebuilt,
    // keeping what it knew, and new revocations are pushed again.
    redis.restart();
    assert_eq!(
        app.wait_ready(&mcp, 200).await,
        json!({"status": "ready", "redis": "up", "revocations": "live"})
    );
    assert_eq!(app.events("revocation.synced").len(), 1);
    assert_eq!(app.list_at(app.mcp_addr, &revoked).await.status, 401);
    assert_eq!(app.revoke(SECURE_CLIENT, &later).await.status, 200);
    app.wait_status_at(app.mcp_addr, &later, 401).await;
    assert_eq!(app.list_at(app.mcp_addr, &valid).await.status, 200);
    assert_eq!(app.events("revocation.stale").len(), 1);
}

#[tokio::test]
async fn past_the_staleness_limit_the_failure_mode_applies() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Options {
        redis_url: Some(redis.url()),
        revocation_max_staleness: Some(Duration::ZERO),
        ..Options::default()
    };
    let closed = spawn_with(opts.clone()).await;
    let open = spawn_with(Options {
        revocation_fail_open: true,
        ..opts
    })
    .await;
    // Each stack has its own keys: tokens from each app's own oauth-server.
    let mut tokens = Vec::new();
    for app in [&closed, &open] {
        let revoked = app.secure_token().await;
        let valid = app.secure_token().await;
        assert_eq!(app.revoke(SECURE_CLIENT, &revoked).await.status, 200);
        app.wait_status_at(app.mcp_addr, &revoked, 401).await;
        tokens.push((revoked, valid));
    }

    redis.stop();
    for app in [&closed, &open] {
        app.wait_ready(&format!("http://{}", app.mcp_addr), 503)
            .await;
    }
    // closed (the default mode): a token the set does not hold gets 503.
    let r = closed.list_at(closed.mcp_addr, &tokens[0].1).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    let last = closed.events("mcp.token_rejected").pop().unwrap();
    assert_eq!(
        (last.outcome, last.reason),
        ("unavailable", Some("revocation_store_unavailable"))
    );
    // open: accepted and audited.
    let r = open.list_at(open.mcp_addr, &tokens[1].1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(open.events("mcp.revocation_unchecked").len(), 1);
    // Either way, a token known to be revoked stays refused.
    for (app, (revoked, _)) in [&closed, &open].into_iter().zip(&tokens) {
        let r = app.list_at(app.mcp_addr, revoked).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    }
}

/// Issue 13 item 4: a token that expired a few seconds ago is still accepted
/// by the mcp-server (60 s leeway), so `/revoke` must take it: afterwards its
/// `jti` is on the shared denylist and the mcp-server refuses it, although
/// the token is still inside the leeway. Introspection (no leeway) calls it
/// inactive all along.
#[tokio::test]
async fn a_token_expired_within_the_leeway_can_be_revoked() {
    let Some(redis) = testkit::RedisServer::start() else {
        return; // skipped loudly by testkit (fails instead when services are required)
    };
    let app = spawn_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let now = auth::now_unix();
    let claims = auth::claims::AccessTokenClaims {
        iat: now - 905,
        nbf: now - 905,
        exp: now - 5,
        ..app.claims()
    };
    let token = app.sign(&claims);
    // Expired 5 s ago: the mcp-server still serves it.
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "inside the leeway: {}", r.text);

    let post = |path: &str, token: &str| {
        app.http
            .post(format!("{}{path}", app.issuer))
            .basic_auth(SECURE_CLIENT.0, Some(SECURE_CLIENT.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&[("token", token)]))
            .send()
    };
    let introspected: serde_json::Value = post("/introspect", &token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected, json!({"active": false}));

    assert!(!app.oauth.revocations.is_revoked(&claims.jti).await.unwrap());
    let resp = post("/revoke", &token).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        app.oauth.revocations.is_revoked(&claims.jti).await.unwrap(),
        "the jti is on the denylist"
    );
    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    let last = app.events("mcp.token_rejected").pop().unwrap();
    assert_eq!(last.reason, Some("revoked"));

    // Beyond the leeway the token is dead anyway: /revoke still answers 200
    // (RFC 7009 §2.2) and writes nothing.
    let long_gone = auth::claims::AccessTokenClaims {
        exp: now - 61,
        jti: format!("{}-gone", claims.jti),
        ..claims.clone()
    };
    let resp = post("/revoke", &app.sign(&long_gone)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        !app.oauth
            .revocations
            .is_revoked(&long_gone.jti)
            .await
            .unwrap()
    );
    drop(redis);
}
