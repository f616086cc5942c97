//! CORS: browser-based MCP hosts call discovery, JWKS, /token, /revoke and
//! /register from any origin (no credentials); /introspect and /authorize
//! are not for scripts of other origins.

use serde_json::Value;

use crate::helpers::*;

/// The preflight a browser sends before a cross-origin POST with a JSON or
/// form body and the MCP headers.
async fn preflight(app: &TestApp, path: &str, method: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", "https://host.example")
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn browser_endpoints_answer_preflights_for_any_origin() {
    let app = spawn().await;
    for (path, method, allowed) in [
        ("/token", "POST", "POST,OPTIONS"),
        ("/revoke", "POST", "POST,OPTIONS"),
        ("/register", "POST", "POST,OPTIONS"),
        (
            "/.well-known/oauth-authorization-server",
            "GET",
            "GET,OPTIONS",
        ),
        ("/jwks", "GET", "GET,OPTIONS"),
        ("/.well-known/jwks.json", "GET", "GET,OPTIONS"),
    ] {
        let resp = preflight(&app, path, method).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            header(&resp, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert_eq!(
            header(&resp, "access-control-allow-methods"),
            Some(allowed),
            "{path}"
        );
        assert_eq!(
            header(&resp, "access-control-allow-headers"),
            Some("authorization,content-type,mcp-protocol-version"),
            "{path}"
        );
        assert_eq!(
            header(&resp, "access-control-max-age"),
            Some("3600"),
            "{path}"
        );
        assert_eq!(
            header(&resp, "access-control-allow-credentials"),
            None,
            "{path}: never credentials"
        );
    }
}

#[tokio::test]
async fn actual_responses_carry_allow_origin() {
    let app = spawn().await;
    let resp = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("origin", "https://host.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    // An error from /token is readable by the page too.
    let resp = app
        .http
        .post(app.url("/token"))
        .header("origin", "https://host.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "access-control-allow-origin"), Some("*"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn introspection_and_authorize_get_no_cors() {
    let app = spawn().await;
    let resp = preflight(&app, "/authorize", "POST").await;
    assert!(
        !resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
    let resp = preflight(&app, "/introspect", "POST").await;
    assert_eq!(resp.status(), 405);
    assert!(
        !resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
    let resp = app
        .post_form(
            "/introspect",
            Some((FAST_ID, FAST_SECRET)),
            &[("token", "x")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}
