//! After the authorization server rotates its keys, tokens with the new
//! `kid` are accepted without restarting mcp-server.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn new_kid_is_fetched_on_first_sight() {
    let app = spawn().await;
    let old_token = app.secure_token().await;
    let old_kid = app.signing_key().kid().to_owned();
    assert_eq!(
        app.call_2026(Some(&old_token), "tools/list", json!({}))
            .await
            .status,
        200
    );

    // `oauth-server keys rotate`, then the running server picks the key up.
    oauth_server::keystore::rotate(
        &app.keys_dir,
        app.signing_key().alg(),
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    assert!(app.oauth.keys.reload().unwrap());
    let new_kid = app.signing_key().kid().to_owned();
    assert_ne!(new_kid, old_kid);

    let new_token = app.secure_token().await;
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            new_token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());

    let r = app
        .call_2026(Some(&new_token), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 200, "new kid accepted: {}", r.text);
    // Tokens signed with the old key stay valid while it is published.
    assert_eq!(
        app.call_2026(Some(&old_token), "tools/list", json!({}))
            .await
            .status,
        200
    );
    assert!(app.events("mcp.token_rejected").is_empty());
}
