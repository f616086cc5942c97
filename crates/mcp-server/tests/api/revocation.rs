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
