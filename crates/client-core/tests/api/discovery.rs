//! Finding the token endpoint from the MCP server: 401 challenge → RFC 9728
//! metadata → RFC 8414 metadata, with the resource and issuer checked.

use client_core::discovery;
use client_core::mcp::token_source;

use crate::support::stack::{OPENAI_CLIENT, Options, Stack, claims, fast_retry, http};

#[tokio::test]
async fn discovers_the_authorization_server_from_the_mcp_server_alone() {
    let stack = Stack::start().await;
    let url = url::Url::parse(&stack.mcp_url).unwrap();
    let found = discovery::discover(&http(), &url, &fast_retry())
        .await
        .unwrap();
    assert_eq!(found.resource, stack.mcp_url);
    assert_eq!(found.issuer, stack.issuer);
    assert_eq!(found.token_endpoint.as_str(), stack.token_url);
    assert!(
        found
            .auth_methods
            .iter()
            .any(|m| m == "client_secret_basic")
    );
    for scope in [
        "customer:read",
        "ticket:create",
        "account:calculate",
        "security:read",
    ] {
        assert!(found.scopes_supported.iter().any(|s| s == scope), "{scope}");
    }

    // The token source built from it gets a token for exactly this resource.
    let tokens = token_source(&http(), &stack.config(OPENAI_CLIENT, &[]))
        .await
        .unwrap();
    let token = tokens.token().await.unwrap();
    let c = claims(token.expose());
    assert_eq!(c["aud"], stack.mcp_url);
    assert_eq!(c["iss"], stack.issuer);
    assert_eq!(c["client_id"], OPENAI_CLIENT.0);
    assert_eq!(c["scope"], "account:calculate customer:read ticket:create");
}

#[tokio::test]
async fn metadata_for_another_resource_is_refused() {
    let stack = Stack::start_with(Options {
        mcp_resource: Some("http://localhost:8000/mcp".into()),
        ..Options::default()
    })
    .await;
    let err = token_source(&http(), &stack.config(OPENAI_CLIENT, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot discover the authorization server: the MCP server says it is http://localhost:8000/mcp, \
             but MCP_SERVER_URL is {} — set MCP_SERVER_URL to the server's public URL",
            stack.mcp_url
        )
    );
}

#[tokio::test]
async fn an_issuer_that_does_not_match_its_metadata_is_refused() {
    let stack = Stack::start_with(Options {
        mcp_issuer_alias: true,
        ..Options::default()
    })
    .await;
    let alias = stack.issuer.replace("127.0.0.1", "localhost");
    // The client is configured for the issuer the MCP server names, whose
    // metadata then calls itself something else.
    let err = token_source(
        &http(),
        &stack.config(OPENAI_CLIENT, &[("OAUTH_ISSUER", &alias)]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot discover the authorization server: authorization server metadata from \
             {alias}/.well-known/oauth-authorization-server has issuer {:?}, expected {alias:?} — \
             refusing to use it (RFC 8414 §3.3)",
            stack.issuer
        )
    );
}

#[tokio::test]
async fn an_unreachable_mcp_server_is_named() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
    let err = discovery::discover(&http(), &url, &fast_retry())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach http://127.0.0.1:{port}/mcp: ")),
        "{text}"
    );
}
