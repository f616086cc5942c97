//! Malformed and refused requests get exact RFC 6749 errors, never a 500,
//! and the server keeps serving.

use serde_json::Value;

use crate::helpers::*;

const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn token_err(app: &TestApp, pairs: &[(&str, &str)], status: u16, code: &str) -> Value {
    let resp = app
        .post_form("/token", Some((FAST_ID, FAST_SECRET)), pairs)
        .await;
    assert_oauth_error(resp, status, code).await
}

#[tokio::test]
async fn scope_requests_get_the_intersection_and_unknown_scopes_are_refused() {
    let app = spawn().await;
    // More than allowed: the allowed part is granted, and named in `scope`.
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[CC, ("scope", "customer:read account:calculate")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "customer:read");
    // Nothing of it allowed: invalid_scope.
    let body = token_err(
        &app,
        &[CC, ("scope", "account:calculate")],
        400,
        "invalid_scope",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "none of the requested scopes may be granted to this client"
    );
    // A scope no client of this server may hold: invalid_scope, named.
    let body = token_err(
        &app,
        &[CC, ("scope", "customer:read admin")],
        400,
        "invalid_scope",
    )
    .await;
    assert_eq!(body["error_description"], "unknown scope: admin");
    let body = token_err(
        &app,
        &[CC, ("scope", "customer:read  ticket:create")],
        400,
        "invalid_scope",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("scope is malformed")
    );
    let resp = app
        .post_form("/token", Some(("no-default-scope", FAST_SECRET)), &[CC])
        .await;
    assert_oauth_error(resp, 400, "invalid_scope").await;
}

#[tokio::test]
async fn unknown_or_malformed_resource_is_invalid_target() {
    let app = spawn().await;
    let body = token_err(
        &app,
        &[CC, ("resource", "https://evil.example/mcp")],
        400,
        "invalid_target",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "resource is not allowed for this client"
    );
    // Allowed for the client, but not served by this issuer (OAUTH_RESOURCES).
    token_err(&app, &[CC, ("resource", TLS_MCP)], 400, "invalid_target").await;
    let body = token_err(
        &app,
        &[CC, ("resource", "http://localhost:8000/mcp#frag")],
        400,
        "invalid_target",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("fragment")
    );
    token_err(
        &app,
        &[CC, ("resource", "/relative")],
        400,
        "invalid_target",
    )
    .await;
}

#[tokio::test]
async fn grant_type_errors() {
    let app = spawn().await;
    let body = token_err(&app, &[("scope", "customer:read")], 400, "invalid_request").await;
    assert_eq!(body["error_description"], "grant_type is required");
    token_err(
        &app,
        &[("grant_type", "password")],
        400,
        "unsupported_grant_type",
    )
    .await;
    // Supported, but not registered for this client.
    let body = token_err(
        &app,
        &[("grant_type", "authorization_code"), ("code", "x")],
        400,
        "unauthorized_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "this client may not use the authorization_code grant"
    );
    token_err(
        &app,
        &[("grant_type", "made_up")],
        400,
        "unsupported_grant_type",
    )
    .await;
}

#[tokio::test]
async fn duplicate_parameters_are_invalid_request() {
    let app = spawn().await;
    let body = token_err(
        &app,
        &[CC, ("scope", "customer:read"), ("scope", "ticket:create")],
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(body["error_description"], "parameter `scope` is repeated");
    token_err(&app, &[CC, CC], 400, "invalid_request").await;
}

#[tokio::test]
async fn non_form_bodies_are_invalid_request() {
    let app = spawn().await;
    for (ct, body) in [
        (
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.to_owned(),
        ),
        ("text/plain", "grant_type=client_credentials".to_owned()),
    ] {
        let resp = app
            .http
            .post(app.url("/token"))
            .header("content-type", ct)
            .header("authorization", basic_header(FAST_ID, FAST_SECRET))
            .body(body)
            .send()
            .await
            .unwrap();
        let body = assert_oauth_error(resp, 400, "invalid_request").await;
        assert_eq!(
            body["error_description"],
            "Content-Type must be application/x-www-form-urlencoded"
        );
    }
    let resp = app.http.post(app.url("/token")).send().await.unwrap();
    assert_oauth_error(resp, 400, "invalid_request").await;
    // Binary garbage in a form body: still a clean error.
    let resp = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x00, b'&', b'%'])
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn one_megabyte_body_is_refused_and_server_keeps_serving() {
    let app = spawn().await;
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(1024 * 1024)
    );
    let resp = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic_header(FAST_ID, FAST_SECRET))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let body = assert_oauth_error(resp, 413, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "request body exceeds 16384 bytes"
    );
    // Chunked (no Content-Length): refused while reading, over a raw socket.
    let status = raw_chunked_post(&app, big.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // Still serving.
    assert!(!app.token(&[]).await.is_empty());
}

/// Sends a chunked POST /token and returns the response's status line.
async fn raw_chunked_post(app: &TestApp, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        // The server may answer and close early; later writes may fail.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || s.write_all(chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let app = spawn().await;
    let resp = app.http.get(app.url("/token")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = app.http.post(app.url("/jwks")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

/// Issue 13 item 3: a body that does not arrive within
/// `HTTP_REQUEST_TIMEOUT_SECS` gets 408 as an RFC 6749 error, while 200
/// such clients do not keep a normal token request from being served.
#[tokio::test]
async fn a_trickled_body_gets_408_and_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|c: &mut oauth_server::Config| {
            c.connections.request_timeout = std::time::Duration::from_secs(1);
        })),
        ..Opts::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(
            b"POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type=",
        )
        .await
        .unwrap();
        slow.push(c);
    }
    let resp = app
        .post_form("/token", Some((FAST_ID, FAST_SECRET)), &[CC])
        .await;
    assert_eq!(resp.status(), 200, "served while 200 clients trickle");
    for c in &mut slow {
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(30), c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "invalid_request",
                "error_description": "the request did not arrive in time (HTTP_REQUEST_TIMEOUT_SECS); send it again"
            })
        );
    }
}
