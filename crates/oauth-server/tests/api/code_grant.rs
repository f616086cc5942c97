//! `grant_type=authorization_code`: PKCE, the code's bindings, replay,
//! expiry, public clients. Codes are issued straight into the server's code
//! store (what /authorize does after consent).

use std::time::Duration;

use auth::scope::ScopeSet;
use oauth_server::codes::{AuthorizationCode, Codes};
use serde_json::Value;

use crate::helpers::*;

pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const SCOPE: &str = "customer:read ticket:create";

/// A fresh random verifier (43 base64url characters).
pub fn verifier() -> String {
    oauth_server::codes::random_token().unwrap()
}

/// What /authorize would store after alice consented for `client_id`.
pub fn grant(client_id: &str, verifier: &str) -> AuthorizationCode {
    AuthorizationCode {
        client_id: client_id.to_owned(),
        redirect_uri: REDIRECT.to_owned(),
        redirect_uri_sent: true,
        code_challenge: auth::pkce::s256_challenge(verifier),
        resource: LOCAL_MCP.to_owned(),
        scope: ScopeSet::parse(SCOPE).unwrap(),
        sub: "alice".to_owned(),
        auth_time: auth::now_unix(),
    }
}

pub async fn issue_code(app: &TestApp, grant: &AuthorizationCode) -> String {
    app.state().codes.issue(grant).await.unwrap()
}

/// The token request of a public client (`client_id` in the form).
pub async fn exchange(app: &TestApp, pairs: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code")];
    form.extend_from_slice(pairs);
    app.post_form("/token", None, &form).await
}

/// A complete, valid exchange for `claude-desktop-client`: (code, response body).
pub async fn sign_in(app: &TestApp) -> (String, Value) {
    let v = verifier();
    let code = issue_code(app, &grant(PUBLIC_ID, &v)).await;
    let resp = exchange(
        app,
        &[
            ("client_id", PUBLIC_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    (code, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_public_client_exchanges_a_code_for_user_tokens() {
    let app = spawn().await;
    let v = verifier();
    let code = issue_code(&app, &grant(PUBLIC_ID, &v)).await;
    let resp = exchange(
        &app,
        &[
            ("client_id", PUBLIC_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &v),
            ("resource", LOCAL_MCP),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], SCOPE);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 43, "256-bit base64url");
    let access = body["access_token"].as_str().unwrap();
    let (header, claims) = decode_parts(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], PUBLIC_ID);
    assert_eq!(claims["aud"], LOCAL_MCP);
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(claims["iss"], app.base.as_str());
    let seen = app.introspect_any(access).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], "alice");
}

#[tokio::test]
async fn a_confidential_client_without_the_refresh_grant_gets_no_refresh_token() {
    let app = spawn().await;
    let v = verifier();
    let mut g = grant(WEB_APP, &v);
    g.redirect_uri = "https://app.example/cb".into();
    g.scope = ScopeSet::parse("customer:read").unwrap();
    let code = issue_code(&app, &g).await;
    let resp = app
        .post_form(
            "/token",
            Some((WEB_APP, FAST_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example/cb"),
                ("code_verifier", &v),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(
        decode_parts(body["access_token"].as_str().unwrap()).1["sub"],
        "alice"
    );
}

/// OAuth 2.1 §4.1.3: the token request repeats `redirect_uri` only when the
/// authorization request named it (a client with one registered https URI
/// may leave it out of both).
#[tokio::test]
async fn redirect_uri_is_required_at_token_only_when_it_was_sent() {
    let app = spawn().await;
    for (sent, status) in [(false, 200), (true, 400)] {
        let v = verifier();
        let mut g = grant(WEB_APP, &v);
        g.redirect_uri = "https://app.example/cb".into();
        g.redirect_uri_sent = sent;
        g.scope = ScopeSet::parse("customer:read").unwrap();
        let code = issue_code(&app, &g).await;
        let resp = app
            .post_form(
                "/token",
                Some((WEB_APP, FAST_SECRET)),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", &v),
                ],
            )
            .await;
        assert_eq!(resp.status(), status, "redirect_uri sent: {sent}");
        if status == 400 {
            let body = assert_oauth_error(resp, 400, "invalid_grant").await;
            assert_eq!(
                body["error_description"],
                "redirect_uri must equal the one of the authorization request"
            );
        }
    }
}

/// Each mismatch is `invalid_grant`, and the code is used up by it: the
/// correct request afterwards fails too.
#[tokio::test]
async fn every_binding_mismatch_is_invalid_grant_and_consumes_the_code() {
    let app = spawn().await;
    let other_verifier = verifier();
    // (case, the parameter that differs from the good request, description)
    let cases: [(&str, (&str, String), &str); 5] = [
        (
            "wrong verifier",
            ("code_verifier", other_verifier.clone()),
            "code_verifier does not match the code_challenge",
        ),
        (
            "malformed verifier",
            ("code_verifier", "short".into()),
            "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]",
        ),
        (
            "redirect_uri on another port",
            ("redirect_uri", "http://127.0.0.1:53683/callback".into()),
            "redirect_uri must equal the one of the authorization request",
        ),
        (
            "resource",
            ("resource", TLS_MCP.into()),
            "resource must equal the one of the authorization request",
        ),
        (
            "client",
            ("client_id", OTHER_PUBLIC.into()),
            "the authorization code was issued to another client",
        ),
    ];
    for (name, (key, value), description) in cases {
        let v = verifier();
        let code = issue_code(&app, &grant(PUBLIC_ID, &v)).await;
        let mut pairs: Vec<(&str, String)> = vec![
            ("client_id", PUBLIC_ID.into()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("code_verifier", v.clone()),
        ];
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(p) => p.1 = value,
            None => pairs.push((key, value)),
        }
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = assert_oauth_error(exchange(&app, &borrowed).await, 400, "invalid_grant").await;
        assert_eq!(body["error_description"], description, "{name}");
        let good = [
            ("client_id", PUBLIC_ID),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", v.as_str()),
        ];
        let body = assert_oauth_error(exchange(&app, &good).await, 400, "invalid_grant").await;
        assert_eq!(
            body["error_description"], "authorization code is invalid, expired or already used",
            "{name}: consumed"
        );
    }
}

#[tokio::test]
async fn missing_parameters() {
    let app = spawn().await;
    let v = verifier();
    let code = issue_code(&app, &grant(PUBLIC_ID, &v)).await;
    let body = assert_oauth_error(
        exchange(
            &app,
            &[
                ("client_id", PUBLIC_ID),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "code_verifier is required (PKCE)"
    );

    let code = issue_code(&app, &grant(PUBLIC_ID, &v)).await;
    let body = assert_oauth_error(
        exchange(
            &app,
            &[
                ("client_id", PUBLIC_ID),
                ("code", &code),
                ("code_verifier", &v),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "redirect_uri must equal the one of the authorization request"
    );

    let body = assert_oauth_error(
        exchange(&app, &[("client_id", PUBLIC_ID), ("code_verifier", &v)]).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(body["error_description"], "code is required");

    let body = assert_oauth_error(
        exchange(
            &app,
            &[
                ("client_id", PUBLIC_ID),
                ("code", "not-a-code"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &v),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "authorization code is invalid, expired or already used"
    );
}

/// OAuth 2.1 §4.1.3: a second use fails and revokes what the first issued.
pub async fn replay_revokes_the_first_exchange(app: &TestApp) {
    let v = verifier();
    let code = issue_code(app, &grant(PUBLIC_ID, &v)).await;
    let pairs = [
        ("client_id", PUBLIC_ID),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", v.as_str()),
    ];
    let first = exchange(app, &pairs).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect_any(access).await["active"], true);
    assert_eq!(app.introspect_any(refresh).await["active"], true);

    let body = assert_oauth_error(exchange(app, &pairs).await, 400, "invalid_grant").await;
    assert_eq!(
        body["error_description"],
        "authorization code is invalid, expired or already used"
    );
    assert_eq!(app.introspect_any(access).await["active"], false);
    assert_eq!(app.introspect_any(refresh).await["active"], false);
    let refused = app
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_ID),
                ("refresh_token", refresh),
            ],
        )
        .await;
    assert_oauth_error(refused, 400, "invalid_grant").await;
}

#[tokio::test]
async fn code_replay_revokes_the_tokens_of_the_first_exchange() {
    replay_revokes_the_first_exchange(&spawn().await).await;
}

#[tokio::test]
async fn redis_code_replay_revokes_the_tokens_of_the_first_exchange() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    replay_revokes_the_first_exchange(&app).await;
}

async fn expired_code_is_invalid_grant(app: &TestApp) {
    // The app's own store, with a lifetime short enough to wait out.
    let codes = Codes::new(app.state().kv.clone(), Duration::from_secs(60))
        .with_code_ttl(Duration::from_millis(1));
    let v = verifier();
    let code = codes.issue(&grant(PUBLIC_ID, &v)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let body = assert_oauth_error(
        exchange(
            app,
            &[
                ("client_id", PUBLIC_ID),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &v),
            ],
        )
        .await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "authorization code is invalid, expired or already used"
    );
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    expired_code_is_invalid_grant(&spawn().await).await;
}

#[tokio::test]
async fn redis_an_expired_code_is_invalid_grant() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    expired_code_is_invalid_grant(&app).await;
}

#[tokio::test]
async fn public_clients_only_get_the_interactive_grants() {
    let app = spawn().await;
    let body = assert_oauth_error(
        app.post_form(
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", PUBLIC_ID),
            ],
        )
        .await,
        400,
        "unauthorized_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "a public client may only use the authorization_code and refresh_token grants"
    );
    // A public client cannot introspect.
    assert_oauth_error(
        app.post_form(
            "/introspect",
            None,
            &[("client_id", PUBLIC_ID), ("token", "x")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // A confidential client cannot drop its secret to pass as public.
    let body = assert_oauth_error(
        app.post_form(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", WEB_APP),
                ("code", "x"),
            ],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "client authentication is required"
    );
    // An unknown client_id alone reads the same.
    assert_oauth_error(
        app.post_form(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
                ("code", "x"),
            ],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // A confidential client is refused the code grant it is not registered for.
    assert_oauth_error(
        app.post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[("grant_type", "authorization_code"), ("code", "x")],
        )
        .await,
        400,
        "unauthorized_client",
    )
    .await;
}

#[tokio::test]
async fn client_credentials_is_unchanged_for_confidential_clients() {
    let app = spawn().await;
    let token = app.token(&[]).await;
    let (_, claims) = decode_parts(&token);
    assert_eq!(claims["sub"], FAST_ID);
    assert_eq!(claims["client_id"], FAST_ID);
    assert_eq!(claims["scope"], "customer:read");
    assert_eq!(claims["aud"], LOCAL_MCP);
    let resp = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
}

/// The whole chain with the real /authorize: alice signs in and approves,
/// the code from the redirect is exchanged, and the refresh token rotates.
#[tokio::test]
async fn a_code_from_authorize_is_exchanged_and_refreshed() {
    use stack::signin::{AuthorizeRequest, Decision, Person};
    let app = spawn().await;
    let request = AuthorizeRequest::new(PUBLIC_ID, REDIRECT)
        .unwrap()
        .scope(SCOPE)
        .resource(LOCAL_MCP);
    let url = request.url(&app.base).unwrap();
    let mut alice = Person::new("alice", "alice-dev-password").unwrap();
    let back = alice.authorize(&url, Decision::Approve).await.unwrap();
    assert_eq!(back.iss.as_deref(), Some(app.base.as_str()));
    let code = back.code.expect("a code in the redirect");
    let resp = exchange(
        &app,
        &[
            ("client_id", PUBLIC_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &request.pkce.verifier),
            ("resource", LOCAL_MCP),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = decode_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], PUBLIC_ID);
    assert_eq!(claims["scope"], SCOPE);
    let resp = app
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_ID),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
}
