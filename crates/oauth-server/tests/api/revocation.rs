//! RFC 7009 revocation and RFC 7662 introspection, in memory and on Redis.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn revoked_token_introspects_inactive() {
    let app = spawn().await;
    let token = app.token(&[]).await;
    let active = app.introspect(&token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], FAST_ID);
    assert_eq!(active["scope"], "customer:read");
    assert_eq!(active["aud"], LOCAL_MCP);
    assert_eq!(active["token_type"], "Bearer");

    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(app.introspect(&token).await, json!({"active": false}));
}

#[tokio::test]
async fn revoke_edge_cases() {
    let app = spawn().await;
    // Unknown or garbage token: still 200 (RFC 7009 §2.2).
    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", "not-a-token")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Missing token parameter.
    let resp = app
        .post_form("/revoke", Some((FAST_ID, FAST_SECRET)), &[])
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    // Unauthenticated.
    let resp = app.post_form("/revoke", None, &[("token", "x")]).await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", "x"), ("token_type_hint", "id_token")],
        )
        .await;
    assert_oauth_error(resp, 400, "unsupported_token_type").await;
    // Another client cannot revoke our token.
    let token = app.token(&[]).await;
    let resp = app
        .post_form(
            "/revoke",
            Some(("introspector", FAST_SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn introspection_rules() {
    let app = spawn().await;
    let token = app.token(&[]).await;
    // Unauthenticated callers are refused.
    let resp = app
        .post_form("/introspect", None, &[("token", &token)])
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    // Another ordinary client learns nothing.
    let resp = app
        .post_form(
            "/introspect",
            Some(("post-only", FAST_SECRET)),
            &[("token", &token), ("client_id", "post-only")],
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await; // post-only may not use Basic
    let resp = app
        .post_form(
            "/introspect",
            None,
            &[
                ("token", &token),
                ("client_id", "post-only"),
                ("client_secret", FAST_SECRET),
            ],
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!({"active": false})
    );
    // A resource server (can_introspect) sees it.
    let resp = app
        .post_form(
            "/introspect",
            Some(("introspector", FAST_SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["active"],
        true
    );
    // Tampered token: inactive.
    let tampered = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(app.introspect(&tampered).await, json!({"active": false}));
}

#[tokio::test]
async fn redis_revocation_survives_a_restart() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let opts = Opts {
        redis_url: Some(redis.url()),
        keys_dir: Some(keys.path().to_owned()),
        ..Opts::default()
    };
    let mut first = spawn_with(opts.clone()).await;
    let token = first.token(&[]).await;
    let revoked = first.token(&[]).await;
    let resp = first
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", &revoked)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    first.stop().await;

    // Same issuer URL (port), same keys, same Redis: a restarted server.
    let second = spawn_with(Opts {
        port: Some(first.port()),
        ..opts
    })
    .await;
    assert_eq!(second.introspect(&revoked).await, json!({"active": false}));
    assert_eq!(
        second.introspect(&token).await["active"],
        true,
        "same keys, unrevoked token still active"
    );
}

#[tokio::test]
async fn redis_assertion_replay_is_shared() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    };
    let a = spawn_with(opts.clone()).await;
    let b = spawn_with(opts).await;
    // Same issuer is needed for aud: use the issuer-independent token endpoint of A for both.
    let assertion = a.assertion(
        &a.client_keys.es256,
        "jwt-es256",
        json!({"aud": [a.url("/token"), b.url("/token")]}),
    );
    let pairs = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(a.post_form("/token", None, &pairs).await.status(), 200);
    let body = assert_oauth_error(
        b.post_form("/token", None, &pairs).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "client assertion was already used"
    );
}

#[tokio::test]
async fn each_revocation_is_published_with_its_remaining_life() {
    use futures::StreamExt;

    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(server_kit::store::REVOCATION_CHANNEL)
        .await
        .unwrap();
    let token = app.token(&[]).await;
    let (_, claims) = decode_parts(&token);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);

    let message = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        pubsub.on_message().next(),
    )
    .await
    .unwrap()
    .unwrap();
    let notice: server_kit::store::RevocationNotice =
        serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(notice.jti, jti);
    // The token's remaining life plus the resource servers' 60 s leeway.
    let left = (claims["exp"].as_i64().unwrap() - auth::now_unix()).unsigned_abs();
    assert!(
        (left * 1000..=(left + 61) * 1000).contains(&notice.ttl_ms),
        "{notice:?}"
    );
    // The key is there too, with the same life (a replica that was not
    // subscribed finds it by its scan).
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{{revoked}}:{jti}"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl.unsigned_abs() <= notice.ttl_ms, "{pttl}");
}

#[tokio::test]
async fn starts_while_redis_is_down_and_uses_it_once_it_comes_up() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    // Nothing listens on this port until the restart below.
    redis.stop();
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    let get = |path: &'static str| {
        let http = app.http.clone();
        let url = app.url(path);
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let cache = r
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, cache, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(get("/health").await.0, 200);
    assert_eq!(
        get("/ready").await,
        (
            503,
            Some("no-store".to_owned()),
            json!({"status": "degraded", "redis": "down"})
        )
    );

    // Issuing needs no Redis (the per-IP limit falls back per
    // RATE_LIMIT_FAILURE_MODE=local); what must be stored answers 503 at once.
    let token = app.token(&[]).await;
    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_oauth_error(resp, 503, "temporarily_unavailable").await;
    let redis_handle = app.state().readiness.redis().unwrap().clone();
    assert_eq!(
        redis_handle.commands_sent(),
        0,
        "no request waited on a Redis known to be down"
    );

    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get("/ready").await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        get("/ready").await.2,
        json!({"status": "ready", "redis": "up"})
    );
    let resp = app
        .post_form(
            "/revoke",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.introspect(&token).await, json!({"active": false}));
}
