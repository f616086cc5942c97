//! Each client authentication method, and each way it is refused.

use auth::keys::{Algorithm, SigningKey};
use serde_json::{Value, json};

use crate::helpers::*;

const CC: (&str, &str) = ("grant_type", "client_credentials");
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::test]
async fn client_secret_post_works() {
    let app = spawn().await;
    let resp = app
        .post_form(
            "/token",
            None,
            &[
                CC,
                ("client_id", "post-only"),
                ("client_secret", FAST_SECRET),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        decode_parts(body["access_token"].as_str().unwrap()).1["client_id"],
        "post-only"
    );
}

#[tokio::test]
async fn basic_for_a_post_only_client_is_refused() {
    let app = spawn().await;
    let resp = app
        .post_form("/token", Some(("post-only", FAST_SECRET)), &[CC])
        .await;
    let www = resp.headers().get("www-authenticate").cloned();
    assert_oauth_error(resp, 401, "invalid_client").await;
    assert_eq!(
        www.unwrap(),
        "Basic realm=\"secure-mcp\", charset=\"UTF-8\""
    );
}

#[tokio::test]
async fn private_key_jwt_works_for_each_alg_and_pem_registration() {
    let app = spawn().await;
    let keys = app.client_keys;
    for (id, key, aud) in [
        ("jwt-es256", &keys.es256, app.url("/token")),
        ("jwt-rs256", &keys.rs256, app.base.clone()),
        ("jwt-eddsa-pem", &keys.eddsa, app.url("/token")),
    ] {
        let a = app.assertion(key, id, json!({"aud": aud}));
        let resp = app
            .post_form(
                "/token",
                None,
                &[
                    CC,
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &a),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200, "{id}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            decode_parts(body["access_token"].as_str().unwrap()).1["sub"],
            id
        );
    }
}

async fn assertion_refused(app: &TestApp, assertion: &str, description: &str) {
    let resp = app
        .post_form(
            "/token",
            None,
            &[
                CC,
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ],
        )
        .await;
    assert!(
        resp.headers().get("www-authenticate").is_none(),
        "no Basic challenge without Basic"
    );
    let body = assert_oauth_error(resp, 401, "invalid_client").await;
    assert_eq!(body["error_description"], description);
}

#[tokio::test]
async fn bad_assertions_are_refused() {
    let app = spawn().await;
    let es = &app.client_keys.es256;
    let now = auth::now_unix();
    // Expired (beyond the 30 s leeway).
    let a = app.assertion(es, "jwt-es256", json!({"exp": now - 31, "iat": now - 100}));
    assertion_refused(&app, &a, "client assertion has expired").await;
    // Lifetime longer than 5 minutes.
    let a = app.assertion(es, "jwt-es256", json!({"exp": now + 600}));
    assertion_refused(
        &app,
        &a,
        "client assertion exp must be at most 5 minutes ahead",
    )
    .await;
    // Wrong audience.
    let a = app.assertion(
        es,
        "jwt-es256",
        json!({"aud": "https://evil.example/token"}),
    );
    assertion_refused(
        &app,
        &a,
        "client assertion aud must be the issuer or the token endpoint",
    )
    .await;
    // Signed by a key that is not the client's.
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    let a = app.assertion(&other, "jwt-es256", json!({}));
    assertion_refused(&app, &a, "client authentication failed").await;
    // Signed with the right key type but claiming another client.
    let a = app.assertion(es, "jwt-rs256", json!({}));
    assertion_refused(&app, &a, "client authentication failed").await;
    // iss != sub.
    let a = app.assertion(es, "jwt-es256", json!({"sub": "someone-else"}));
    assertion_refused(
        &app,
        &a,
        "client assertion iss and sub must both equal client_id",
    )
    .await;
    // alg: none.
    let none = {
        use base64::Engine as _;
        let e = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            e(json!({"alg": "none"})),
            e(
                json!({"iss": "jwt-es256", "sub": "jwt-es256", "aud": app.url("/token"), "exp": now + 60, "jti": uuid()})
            )
        )
    };
    assertion_refused(
        &app,
        &none,
        "client assertion is malformed or uses an unsupported algorithm",
    )
    .await;
    // A secret client cannot authenticate with an assertion.
    let a = app.assertion(es, FAST_ID, json!({}));
    assertion_refused(&app, &a, "client authentication failed").await;
}

#[tokio::test]
async fn replayed_assertion_is_refused() {
    let app = spawn().await;
    let a = app.assertion(&app.client_keys.es256, "jwt-es256", json!({}));
    let pairs = [
        CC,
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", a.as_str()),
    ];
    assert_eq!(app.post_form("/token", None, &pairs).await.status(), 200);
    assertion_refused(&app, &a, "client assertion was already used").await;
}

#[tokio::test]
async fn wrong_secret_and_unknown_client_read_the_same() {
    let app = spawn().await;
    for (id, secret) in [
        (FAST_ID, "wrong"),
        ("nobody", FAST_SECRET),
        ("openai-mcp-client", ""),
    ] {
        let resp = app.post_form("/token", Some((id, secret)), &[CC]).await;
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic realm=\"secure-mcp\", charset=\"UTF-8\""
        );
        let body = assert_oauth_error(resp, 401, "invalid_client").await;
        assert_eq!(body["error_description"], "client authentication failed");
    }
    // client_secret_post with a wrong secret: 401, no Basic challenge.
    let resp = app
        .post_form(
            "/token",
            None,
            &[CC, ("client_id", FAST_ID), ("client_secret", "wrong")],
        )
        .await;
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_oauth_error(resp, 401, "invalid_client").await;
}

#[tokio::test]
async fn secret_for_a_private_key_jwt_client_is_refused() {
    let app = spawn().await;
    let resp = app
        .post_form("/token", Some(("jwt-es256", "anything")), &[CC])
        .await;
    let body = assert_oauth_error(resp, 401, "invalid_client").await;
    assert_eq!(body["error_description"], "client authentication failed");
}

#[tokio::test]
async fn missing_or_multiple_credentials() {
    let app = spawn().await;
    let body = assert_oauth_error(
        app.post_form("/token", None, &[CC]).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "client authentication is required"
    );
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[CC, ("client_secret", FAST_SECRET), ("client_id", FAST_ID)],
        )
        .await;
    let body = assert_oauth_error(resp, 400, "invalid_request").await;
    assert_eq!(
        body["error_description"],
        "use exactly one client authentication method"
    );
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[CC, ("client_id", "other")],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    let resp = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic %%%not-base64")
        .body(form(&[CC]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"secure-mcp\", charset=\"UTF-8\""
    );
    assert_oauth_error(resp, 401, "invalid_client").await;
}

#[tokio::test]
async fn interactive_client_cannot_use_client_credentials() {
    let app = spawn().await;
    // claude-desktop-client has no secret: any secret is refused.
    let resp = app
        .post_form("/token", Some(("claude-desktop-client", "x")), &[CC])
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
}

/// Issue 13 items 6 and 7: an unknown client, a client without a usable
/// secret and a wrong secret each cost exactly one argon2id verification
/// (the registry's dummy hash stands in for the missing one); a good secret
/// is verified once and then remembered, under a keyed hash, for a while.
#[tokio::test]
async fn unknown_and_wrong_cost_one_verification_and_a_good_secret_is_remembered() {
    let app = spawn().await;
    let state = app.state();
    let count = || state.passwords.verifications();
    let dev = ("openai-mcp-client", "openai-client-secret");
    let refused = |id: &'static str, secret: &'static str| {
        let app = &app;
        async move {
            let resp = app.post_form("/token", Some((id, secret)), &[CC]).await;
            let body = assert_oauth_error(resp, 401, "invalid_client").await;
            assert_eq!(body["error_description"], "client authentication failed");
        }
    };
    for (id, secret) in [
        (dev.0, "not-the-secret"),
        ("nobody", dev.1),
        ("jwt-es256", dev.1),
        ("claude-desktop-client", dev.1),
    ] {
        let before = count();
        refused(id, secret).await;
        assert_eq!(count() - before, 1, "{id}: one verification");
    }
    let memo = state.clients.secrets().memo();
    assert!(memo.is_empty(), "failures are never remembered");

    let before = count();
    for round in 0..3 {
        let resp = app.post_form("/token", Some(dev), &[CC]).await;
        assert_eq!(resp.status(), 200, "round {round}");
    }
    assert_eq!(count() - before, 1, "verified once, then remembered");
    assert_eq!(memo.len(), 1);

    // A remembered good secret does not vouch for another secret or client.
    let before = count();
    refused(dev.0, "openai-client-secreT").await;
    refused("anthropic-mcp-client", dev.1).await;
    assert_eq!(count() - before, 2);
    // A generated (sha256) secret never costs an argon2id verification.
    let before = count();
    refused(FAST_ID, "wrong").await;
    assert_eq!(
        app.post_form("/token", Some((FAST_ID, FAST_SECRET)), &[CC])
            .await
            .status(),
        200
    );
    assert_eq!(count(), before);
}
