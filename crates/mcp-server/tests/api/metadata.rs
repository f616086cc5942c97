//! RFC 9728 metadata and /health.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn protected_resource_metadata_both_forms() {
    let app = spawn().await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [app.issuer],
                "scopes_supported": ["customer:read", "ticket:create", "account:calculate", "security:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "secure-mcp customer service",
            })
        );
    }
    // The 401 challenge points at the path-specific form.
    assert!(CHALLENGE_MISSING.contains(PRM_URL));
}

#[tokio::test]
async fn health_needs_no_token_and_says_nothing() {
    let app = spawn().await;
    let r = app.get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));
    assert!(server_kit::healthcheck::check(app.mcp_addr, std::time::Duration::from_secs(2)).await);
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    assert!(!server_kit::healthcheck::check(closed, std::time::Duration::from_secs(2)).await);
}
