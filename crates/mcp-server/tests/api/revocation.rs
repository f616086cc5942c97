//! With Redis shared by both servers, a revoked token is refused on its next request.

use serde_json::json;

use crate::helpers::*;

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

    let resp = app
        .http
        .post(format!("{}/revoke", app.issuer))
        .basic_auth(SECURE_CLIENT.0, Some(SECURE_CLIENT.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_encode(&[
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let r = app.call_2026(Some(&token), "tools/list", json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
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

    // Redis gone: refuse (503) rather than accept a possibly revoked token.
    redis.stop();
    let r = app.call_2026(Some(&other), "tools/list", json!({})).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
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
