//! The OAuth server and the MCP metadata through nginx publish the public
//! https URLs; tokens obtained through nginx name them.

use base64::Engine as _;
use serde_json::Value;

use crate::helpers::{CLIENT, Stack, form};

#[tokio::test]
async fn metadata_through_nginx_shows_the_public_https_urls() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let issuer = &stack.issuer;
    assert!(issuer.starts_with("https://localhost:"), "{issuer}");

    let asm: Value = stack
        .http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], issuer.as_str());
    assert_eq!(asm["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(asm["jwks_uri"].as_str().unwrap(), format!("{issuer}/jwks"));
    for (k, v) in asm.as_object().unwrap() {
        if let Some(s) = v.as_str().filter(|s| s.contains("://")) {
            assert!(s.starts_with(issuer.as_str()), "{k} = {s}");
        }
    }
    // The JWKS is reachable at the advertised (public) URL.
    let jwks: Value = stack
        .http
        .get(asm["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    let mcp_base = stack.resource.trim_end_matches("/mcp");
    let prm_url = format!("{mcp_base}/.well-known/oauth-protected-resource/mcp");
    let prm: Value = stack
        .http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], stack.resource.as_str());
    assert_eq!(prm["authorization_servers"][0], issuer.as_str());

    // The challenge on /mcp points at the public metadata URL.
    let resp = stack.http.post(&stack.resource).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm_url}\"")),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_token_through_nginx_names_the_https_issuer_and_resource() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let resp = stack
        .http
        .post(format!("{}/token", stack.issuer))
        .basic_auth(CLIENT.0, Some(CLIENT.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("resource", stack.resource.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers().contains_key("strict-transport-security"));
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], stack.issuer.as_str());
    assert_eq!(claims["aud"], stack.resource.as_str());
}
