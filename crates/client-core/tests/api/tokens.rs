//! The token source against the real oauth-server: every client
//! authentication method, refusals mapped to one-line fixes, caching,
//! renewal before expiry, and exactly one re-authentication after a
//! rejection.

use std::time::Duration;

use client_core::McpClient;
use client_core::mcp::token_source;
use serde_json::json;

use crate::support::stack::{JWT_CLIENT, OPENAI_CLIENT, Options, Stack, claims, fast_retry, http};

#[tokio::test]
async fn every_client_authentication_method_gets_a_token() {
    let stack = Stack::start().await;
    let key_file = stack.dir.join("client-key.pem");
    std::fs::write(&key_file, &stack.jwt_key_pem).unwrap();
    let key = key_file.to_str().unwrap();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("client_secret_basic (discovered)", vec![]),
        (
            "client_secret_post (forced)",
            vec![("OAUTH_TOKEN_AUTH_METHOD", "client_secret_post")],
        ),
        (
            "client_secret_basic with OAUTH_TOKEN_URL",
            vec![("OAUTH_TOKEN_URL", stack.token_url.as_str())],
        ),
    ];
    for (name, extra) in cases {
        let tokens = token_source(&http(), &stack.config(OPENAI_CLIENT, &extra))
            .await
            .unwrap();
        let token = tokens
            .token()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            claims(token.expose())["client_id"],
            OPENAI_CLIENT.0,
            "{name}"
        );
    }
    // private_key_jwt: assertion audience = the issuer when discovered, the
    // token endpoint when configured; the server accepts both.
    for extra in [vec![], vec![("OAUTH_TOKEN_URL", stack.token_url.as_str())]] {
        let mut vars = vec![("OAUTH_CLIENT_SECRET", ""), ("OAUTH_CLIENT_KEY_FILE", key)];
        vars.extend(extra);
        let config = stack.config((JWT_CLIENT, ""), &vars);
        let tokens = token_source(&http(), &config).await.unwrap();
        let token = tokens.token().await.unwrap();
        assert_eq!(claims(token.expose())["client_id"], JWT_CLIENT);
        assert_eq!(claims(token.expose())["aud"], stack.mcp_url);
    }
}

#[tokio::test]
async fn refusals_are_one_line_with_the_fix() {
    let stack = Stack::start().await;
    let refusal = |extra: Vec<(&'static str, String)>, client: (&'static str, &'static str)| {
        let stack = &stack;
        async move {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let tokens = token_source(&http(), &stack.config(client, &extra))
                .await
                .unwrap();
            tokens.token().await.unwrap_err().to_string()
        }
    };

    let e = refusal(vec![], (OPENAI_CLIENT.0, "wrong-secret")).await;
    assert!(
        e.starts_with(
            "the authorization server refused client `openai-mcp-client`: invalid_client"
        ),
        "{e}"
    );
    assert!(
        e.ends_with("— check OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (or OAUTH_CLIENT_KEY_FILE) against the server's client registry"),
        "{e}"
    );

    let e = refusal(
        vec![("OAUTH_SCOPES", "security:read".into())],
        OPENAI_CLIENT,
    )
    .await;
    assert!(
        e.starts_with("the authorization server refused client `openai-mcp-client`: invalid_scope"),
        "{e}"
    );
    assert!(e.ends_with("— request only scopes this client is allowed (OAUTH_SCOPES), or add them to its allowed_scopes on the authorization server"), "{e}");

    // A resource this client may not have tokens for (no discovery: it would
    // refuse the mismatch itself).
    let e = refusal(
        vec![
            ("OAUTH_TOKEN_URL", stack.token_url.clone()),
            ("MCP_SERVER_URL", "http://127.0.0.1:9/elsewhere".into()),
        ],
        OPENAI_CLIENT,
    )
    .await;
    assert!(
        e.starts_with(
            "the authorization server refused client `openai-mcp-client`: invalid_target"
        ),
        "{e}"
    );
    assert!(
        e.ends_with(
            "(allowed_resources) and that the authorization server serves (OAUTH_RESOURCES)"
        ),
        "{e}"
    );

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/token");
    let e = refusal(vec![("OAUTH_TOKEN_URL", url.clone())], OPENAI_CLIENT).await;
    assert!(
        e.starts_with(&format!(
            "cannot reach the token endpoint {url} (after 5 attempts in "
        )),
        "{e}"
    );
}

#[tokio::test]
async fn tokens_are_cached_and_renewed_before_they_expire() {
    let stack = Stack::start_with(Options {
        token_ttl: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await;
    let config = stack.config(OPENAI_CLIENT, &[]);
    let client = McpClient::connect_using(http(), &config).await.unwrap();
    let tokens = client.tokens().unwrap().clone();
    let first = tokens.token().await.unwrap();
    assert_eq!(
        tokens.token().await.unwrap().serial(),
        first.serial(),
        "cached"
    );
    assert_eq!(first.expires_in(), Some(Duration::from_secs(2)));

    // A conversation longer than two token lifetimes: every call succeeds
    // and the client renewed on its own, without a single rejection.
    let mut serials = Vec::new();
    for _ in 0..6 {
        let out = client
            .call_tool("get_customer_info", json!({"customer_id": "12345"}))
            .await
            .unwrap();
        assert!(!out.is_error, "{}", out.text);
        serials.push(tokens.token().await.unwrap().serial());
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let fetched = tokens.fetch_count();
    assert!(
        (3..=6).contains(&fetched),
        "fetched {fetched} tokens: {serials:?}"
    );
    // Only discovery's deliberate token-less probe was turned away.
    let rejected: Vec<_> = stack
        .mcp
        .audit()
        .recent(1000)
        .into_iter()
        .filter(|e| e.event == "mcp.token_rejected")
        .map(|e| e.reason)
        .collect();
    assert_eq!(
        rejected,
        vec![Some("missing_token")],
        "no token was ever rejected"
    );
    client.close(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_revoked_token_triggers_exactly_one_reauthentication() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let stack = Stack::start_with(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let config = stack.config(OPENAI_CLIENT, &[]);
    let client = McpClient::connect_using(http(), &config).await.unwrap();
    let tokens = client.tokens().unwrap().clone();
    assert_eq!(tokens.fetch_count(), 1);
    let current = tokens.token().await.unwrap();
    stack.revoke(OPENAI_CLIENT, current.expose()).await;
    // The revocation reaches the mcp-server by Redis pub/sub, a moment later.
    let jti = {
        use base64::Engine as _;
        let payload = current.expose().split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stack.mcp.revocations().is_revoked(&jti).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revocation never reached the mcp-server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let out = client
        .call_tool("get_customer_info", json!({"customer_id": "12345"}))
        .await
        .unwrap();
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(tokens.fetch_count(), 2, "one re-authentication");
    assert_ne!(tokens.token().await.unwrap().serial(), current.serial());
    client.close(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_server_that_rejects_fresh_tokens_fails_after_one_reauthentication() {
    // The mcp-server expects another audience than the one the client asks for.
    let stack = Stack::start_with(Options {
        mcp_resource: Some("http://localhost:8000/mcp".into()),
        ..Options::default()
    })
    .await;
    let config = stack.config(OPENAI_CLIENT, &[("OAUTH_TOKEN_URL", &stack.token_url)]);
    let tokens = token_source(&http(), &config).await.unwrap();
    let url = url::Url::parse(&stack.mcp_url).unwrap();
    let err = McpClient::connect_with(http(), tokens.clone(), &url, fast_retry())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the MCP server rejected a freshly issued token — the MCP server's OAUTH_ISSUER and \
         MCP_RESOURCE_URL must match this authorization server and MCP_SERVER_URL"
    );
    assert_eq!(tokens.fetch_count(), 2);
}
