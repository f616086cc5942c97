//! Issued tokens: claims, headers, and verification by two independent verifiers.

use std::sync::Arc;

use auth::keys::Algorithm;
use auth::verify::{StaticKeys, Verifier};
use serde_json::Value;

use crate::helpers::*;

async fn issue_and_check(alg: Algorithm) {
    let app = spawn_with(Opts {
        alg: Some(alg),
        ..Opts::default()
    })
    .await;
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "ticket:create customer:read"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body.as_object().unwrap().len(),
        4,
        "access_token, token_type, expires_in, scope and nothing else: {body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "customer:read ticket:create");
    let token = body["access_token"].as_str().unwrap();

    let (header, claims) = decode_parts(token);
    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let kid = jwks.keys[0].kid.clone().unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], alg.as_str());
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(
        kid,
        jwks.keys[0].thumbprint().unwrap(),
        "kid is the RFC 7638 thumbprint"
    );
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["sub"], FAST_ID);
    assert_eq!(claims["client_id"], FAST_ID);
    assert_eq!(claims["aud"], LOCAL_MCP);
    assert_eq!(claims["scope"], "customer:read ticket:create");
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 900);
    assert!((iat - auth::now_unix()).abs() <= 5);
    assert!(claims["jti"].as_str().unwrap().len() >= 22);

    // Our verifier, fed only by the published JWKS.
    let verifier = Verifier::new(
        app.base.clone(),
        LOCAL_MCP,
        Arc::new(StaticKeys::new(&jwks)),
    );
    let verified = verifier.verify(token).await.unwrap();
    assert_eq!(verified.client_id, FAST_ID);
    // The same token is refused by a verifier for another audience.
    let other = Verifier::new(app.base.clone(), TLS_MCP, Arc::new(StaticKeys::new(&jwks)));
    assert_eq!(
        other.verify(token).await.unwrap_err().reason(),
        "wrong_audience"
    );

    // An independent JWT library, from the JWKS document alone.
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(&jwks.keys[0]).unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let jalg = match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    };
    let mut validation = jsonwebtoken::Validation::new(jalg);
    validation.set_audience(&[LOCAL_MCP]);
    validation.set_issuer(&[app.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.claims["scope"], "customer:read ticket:create");
}

#[tokio::test]
async fn rs256_token_verifies_with_both_verifiers() {
    issue_and_check(Algorithm::RS256).await;
}

#[tokio::test]
async fn es256_token_verifies_with_both_verifiers() {
    issue_and_check(Algorithm::ES256).await;
}

#[tokio::test]
async fn eddsa_token_verifies_with_both_verifiers() {
    issue_and_check(Algorithm::EdDSA).await;
}

#[tokio::test]
async fn omitted_scope_gets_the_default_scopes() {
    let app = spawn().await;
    let token = app.token(&[]).await;
    assert_eq!(decode_parts(&token).1["scope"], "customer:read");
}

#[tokio::test]
async fn dev_clients_get_their_documented_scopes() {
    let app = spawn().await;
    for (id, secret, scope) in [
        (
            "openai-mcp-client",
            "openai-client-secret",
            "account:calculate customer:read ticket:create",
        ),
        (
            "anthropic-mcp-client",
            "anthropic-client-secret",
            "account:calculate customer:read ticket:create",
        ),
        (
            "mcp-secure-client",
            "secure-client-secret-change-in-production",
            "account:calculate customer:read security:read ticket:create",
        ),
    ] {
        let resp = app
            .post_form(
                "/token",
                Some((id, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(resp.status(), 200, "{id}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["scope"], scope, "{id}");
    }
}

#[tokio::test]
async fn resource_becomes_the_audience_and_is_canonicalised() {
    let app = spawn_with(Opts {
        resources: Some(vec![LOCAL_MCP, TLS_MCP]),
        ..Opts::default()
    })
    .await;
    let token = app
        .token(&[("resource", "HTTPS://LOCALHOST:8001/mcp/")])
        .await;
    assert_eq!(decode_parts(&token).1["aud"], TLS_MCP);
    // Two effective resources and none requested: the client must choose.
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let body = assert_oauth_error(resp, 400, "invalid_target").await;
    assert_eq!(
        body["error_description"],
        "resource is required: this client may use several"
    );
}

#[tokio::test]
async fn tokens_are_unique() {
    let app = spawn().await;
    let a = decode_parts(&app.token(&[]).await).1;
    let b = decode_parts(&app.token(&[]).await).1;
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn health_answers() {
    let app = spawn().await;
    let resp = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}
