//! CORS for browser hosts: `/mcp` preflights are answered before
//! authentication for `MCP_ALLOWED_ORIGINS` only, answers to those origins
//! expose the challenge and the MCP/rate-limit headers, and the metadata
//! documents are readable from any origin.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const INSPECTOR: &str = "https://inspector.example.com";
const EXPOSED: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, RateLimit, RateLimit-Policy, Retry-After";
const CORS_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-credentials",
];

async fn with_origins(origins: &[&str]) -> TestApp {
    spawn_with(Options {
        origins: Some(origins.iter().map(|o| (*o).to_owned()).collect()),
        ..Options::default()
    })
    .await
}

/// A browser's preflight for a POST to `url` from `origin`.
async fn preflight(app: &TestApp, url: &str, origin: &str, headers: Option<&str>) -> Reply {
    let mut req = app
        .http
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "POST");
    if let Some(h) = headers {
        req = req.header("access-control-request-headers", h);
    }
    reply(req.send().await.unwrap()).await
}

fn assert_no_cors(r: &Reply) {
    for h in CORS_HEADERS {
        assert_eq!(r.header(h), None, "{h} on a refused answer");
    }
}

#[tokio::test]
async fn preflight_from_a_listed_origin_needs_no_token() {
    let app = with_origins(&[INSPECTOR]).await;
    let r = preflight(
        &app,
        &app.mcp_url,
        INSPECTOR,
        Some("Authorization, Content-Type, MCP-Protocol-Version, X-Not-Listed"),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("access-control-allow-origin"), Some(INSPECTOR));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, DELETE, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type, mcp-protocol-version"),
        "the requested headers that are listed, and only those"
    );
    assert_eq!(r.header("access-control-max-age"), Some("7200"));
    assert_eq!(
        r.header("vary"),
        Some("Origin, Access-Control-Request-Headers")
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("www-authenticate"), None);
    // Nothing was authenticated, so nothing was rejected.
    assert!(app.events("mcp.token_rejected").is_empty());

    // Without Access-Control-Request-Headers: the whole list.
    let r = preflight(&app, &app.mcp_url, INSPECTOR, None).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some(
            "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id, mcp-method, mcp-name"
        )
    );
}

#[tokio::test]
async fn preflight_from_another_origin_is_refused() {
    let app = with_origins(&[INSPECTOR]).await;
    for origin in ["https://evil.example.com", "http://localhost:5173", "null"] {
        let r = preflight(&app, &app.mcp_url, origin, Some("authorization")).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.text);
        assert_eq!(r.text, "Forbidden: Origin header is not allowed");
        assert_no_cors(&r);
    }
    // A rebinding page's preflight (foreign Host) is refused like its request.
    let r = reply(
        app.http
            .request(Method::OPTIONS, &app.mcp_url)
            .header("host", "evil.example.com")
            .header("origin", INSPECTOR)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text, "Forbidden: Host header is not allowed");
    assert_no_cors(&r);
    app.assert_alive().await;
}

#[tokio::test]
async fn an_empty_origin_list_is_refused_at_start() {
    // rmcp reads an empty list as "no Origin check": never start that way.
    let mut config =
        mcp_server::Config::new("http://localhost:8000/mcp", "http://localhost:8080").unwrap();
    config.allowed_origins.clear();
    config.jwks_url = Some("http://127.0.0.1:9/jwks".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = mcp_server::App::build_with_listener(config, listener)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "MCP_ALLOWED_ORIGINS: names no origin, which would switch the Origin check off: \
         list the browser origins allowed, or unset it for the loopback default"
    );
}

#[tokio::test]
async fn the_default_list_admits_loopback_pages() {
    let app = spawn().await;
    let r = preflight(&app, &app.mcp_url, "http://localhost:6274", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:6274")
    );
}

#[tokio::test]
async fn answers_to_a_listed_origin_expose_the_mcp_headers() {
    let app = with_origins(&[INSPECTOR]).await;
    let list = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string();
    // The 401 of the bearer layer: the browser must read the challenge.
    let r = app
        .post_raw(None, &[("origin", INSPECTOR)], list.clone())
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_MISSING));
    assert_eq!(r.header("access-control-allow-origin"), Some(INSPECTOR));
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // The 403 of the scope layer.
    let token = app
        .token(SECURE_CLIENT, Some("customer:read"), Some(RESOURCE))
        .await;
    let r = app
        .post_raw(
            Some(&token),
            &[
                ("origin", INSPECTOR),
                ("mcp-protocol-version", V2026),
                ("mcp-method", "tools/call"),
                ("mcp-name", "create_support_ticket"),
            ],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name":"create_support_ticket","arguments":{"customer_id":"12345","issue":"x","priority":"low"},
                "_meta":{"io.modelcontextprotocol/protocolVersion":V2026,"io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(r.header("access-control-allow-origin"), Some(INSPECTOR));
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));

    // rmcp's own answer (a 2025-11-25 initialize): the session id is exposed.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": V2025, "capabilities": {}, "clientInfo": {"name": "browser", "version": "1"}}});
    let token = app.secure_token().await;
    let r = app
        .post_raw(Some(&token), &[("origin", INSPECTOR)], init.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("mcp-session-id").is_some());
    assert!(r.header("ratelimit").is_some());
    assert_eq!(r.header("access-control-allow-origin"), Some(INSPECTOR));
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));
    assert_eq!(r.header("vary"), Some("Origin"));

    // Without Origin (not a browser) no CORS header is added.
    let r = app.post_raw(Some(&token), &[], init.to_string()).await;
    assert_eq!(r.status, 200);
    assert_no_cors(&r);
}

#[tokio::test]
async fn a_rate_limited_answer_to_a_listed_origin_is_readable() {
    let app = spawn_with(Options {
        origins: Some(vec![INSPECTOR.to_owned()]),
        policy: Some((1, 1)),
        ..Options::default()
    })
    .await;
    let token = app.secure_token().await;
    let ping = || {
        app.post_raw(
            Some(&token),
            &[
                ("origin", INSPECTOR),
                ("mcp-protocol-version", V2026),
                ("mcp-method", "tools/list"),
            ],
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{
                "_meta":{"io.modelcontextprotocol/protocolVersion":V2026,"io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        )
    };
    assert_eq!(ping().await.status, 200);
    let r = ping().await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.header("access-control-allow-origin"), Some(INSPECTOR));
    assert_eq!(r.header("access-control-expose-headers"), Some(EXPOSED));
}

#[tokio::test]
async fn metadata_documents_are_readable_from_any_origin() {
    let app = with_origins(&[INSPECTOR]).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let url = format!("http://{}{path}", app.mcp_addr);
        let r = reply(
            app.http
                .get(&url)
                .header("origin", "https://anywhere.example")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
        assert_eq!(r.json()["resource"], RESOURCE);

        let r = preflight(
            &app,
            &url,
            "https://anywhere.example",
            Some("mcp-protocol-version"),
        )
        .await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("GET, OPTIONS")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("mcp-protocol-version")
        );
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }
}
