//! Every way a token can be wrong → 401 with the RFC 9728 challenge; the
//! reason goes to the audit log only.

use auth::AccessTokenClaims;
use auth::keys::{Algorithm, SigningKey};
use serde_json::json;

use crate::helpers::*;

/// Asserts the 401 shape and the audited reason, then that the same request
/// with a good token would have worked (so the 401 is about the token).
async fn assert_refused(app: &TestApp, token: Option<&str>, reason: &str) {
    for (label, r) in [
        ("2026", app.call_2026(token, "tools/list", json!({})).await),
        ("legacy", app.post_raw(token, &[], json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":V2025,"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}).to_string()).await),
    ] {
        assert_eq!(r.status, 401, "{label} {reason}: {}", r.text);
        let expected = if token.is_some() { CHALLENGE_INVALID } else { CHALLENGE_MISSING };
        assert_eq!(r.header("www-authenticate"), Some(expected), "{label} {reason}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        // A fixed body: the caller is never told why.
        let expected_body = if token.is_some() {
            json!({"error": "invalid_token", "error_description": "The access token is invalid, expired or not meant for this resource"})
        } else {
            json!({"error": "unauthorized", "error_description": "A bearer access token is required"})
        };
        assert_eq!(r.json(), expected_body, "{label} {reason}");
    }
    let events = app.events("mcp.token_rejected");
    let last = events.last().expect("an audit event");
    assert_eq!(last.reason, Some(reason_static(reason)), "audit reason");
    assert_eq!(last.outcome, "rejected");
}

fn reason_static(r: &str) -> &'static str {
    // AuditEvent::reason is &'static str; map the strings the tests use.
    [
        "missing_token",
        "malformed_authorization",
        "malformed",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "unknown_kid",
        "bad_signature",
        "unsupported_alg",
        "wrong_typ",
        "bad_claims",
        "missing_kid",
        "revoked",
    ]
    .into_iter()
    .find(|s| *s == r)
    .unwrap_or_else(|| panic!("unexpected reason {r}"))
}

#[tokio::test]
async fn missing_and_malformed_tokens() {
    let app = spawn().await;
    assert_refused(&app, None, "missing_token").await;
    assert_refused(&app, Some("not-a-jwt"), "malformed").await;
    assert_refused(&app, Some("a.b.c"), "malformed").await;

    // Another scheme counts as no token; a bare "Bearer" as a malformed one.
    let r = reply(
        app.http
            .post(&app.mcp_url)
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_MISSING));
    let r = reply(
        app.http
            .post(&app.mcp_url)
            .header("authorization", "Bearer")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(CHALLENGE_INVALID));
    assert_eq!(
        app.events("mcp.token_rejected").last().unwrap().reason,
        Some("malformed_authorization")
    );

    // GET and DELETE on the endpoint are protected too.
    let r = reply(
        app.http
            .get(&app.mcp_url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = reply(
        app.http
            .delete(&app.mcp_url)
            .header("mcp-session-id", "x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn claim_failures() {
    let app = spawn().await;
    let now = auth::now_unix();
    let good = app.claims();

    let expired = AccessTokenClaims {
        iat: now - 1000,
        nbf: now - 1000,
        exp: now - 61,
        ..good.clone()
    };
    assert_refused(&app, Some(&app.sign(&expired)), "expired").await;

    let future = AccessTokenClaims {
        nbf: now + 120,
        ..good.clone()
    };
    assert_refused(&app, Some(&app.sign(&future)), "not_yet_valid").await;

    let wrong_iss = AccessTokenClaims {
        iss: "http://127.0.0.1:1".into(),
        ..good.clone()
    };
    assert_refused(&app, Some(&app.sign(&wrong_iss)), "wrong_issuer").await;

    let wrong_typ = auth::jwt::sign(&app.signing_key(), "JWT", &good).unwrap();
    assert_refused(&app, Some(&wrong_typ), "wrong_typ").await;

    // The control: the same claims, correctly signed, are accepted.
    let r = app
        .call_2026(Some(&app.sign(&good)), "tools/list", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn token_for_another_audience_from_our_own_server() {
    let app = spawn().await;
    let other = app.token(SECURE_CLIENT, None, Some(OTHER_RESOURCE)).await;
    assert_refused(&app, Some(&other), "wrong_audience").await;
    // The same client's token for this resource works.
    let mine = app.secure_token().await;
    assert_eq!(
        app.call_2026(Some(&mine), "tools/list", json!({}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn signature_attacks() {
    let app = spawn().await;
    let claims = serde_json::to_value(app.claims()).unwrap();
    let real_kid = app.signing_key().kid().to_owned();

    // Signed by a key the authorization server never published.
    let foreign = SigningKey::generate(Algorithm::RS256).unwrap();
    assert_refused(
        &app,
        Some(&auth::jwt::sign(&foreign, "at+jwt", &app.claims()).unwrap()),
        "unknown_kid",
    )
    .await;

    // A real token with its payload swapped: the signature no longer matches.
    let real = app.secure_token().await;
    let parts: Vec<&str> = real.split('.').collect();
    let mut tampered = app.claims();
    tampered.client_id = "someone-else".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&tampered).unwrap()
        ),
        parts[2]
    );
    assert_refused(&app, Some(&forged), "bad_signature").await;

    // alg "none", with and without an (empty) signature.
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": real_kid});
    assert_refused(&app, Some(&compact(&none, &claims, b"")), "unsupported_alg").await;
    assert_refused(
        &app,
        Some(&compact(&none, &claims, b"x")),
        "unsupported_alg",
    )
    .await;

    // HMAC confusion: HS256 keyed with the public key the server publishes.
    let jwks: serde_json::Value = app
        .http
        .get(format!("{}/jwks", app.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let pem = app.signing_key().public_key_pem().unwrap();
    for secret in [public.as_slice(), pem.as_bytes()] {
        let header = jsonwebtoken::Header {
            alg: jsonwebtoken::Algorithm::HS256,
            typ: Some("at+jwt".into()),
            kid: Some(real_kid.clone()),
            ..Default::default()
        };
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_refused(&app, Some(&token), "unsupported_alg").await;
    }
}
