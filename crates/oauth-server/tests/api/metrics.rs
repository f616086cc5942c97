//! `/metrics` on `OAUTH_METRICS_BIND`: a scripted sequence against the real
//! server, then exact values scraped from the real metrics listener.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use stack::signin::{AuthorizeRequest, Decision, Person};

use crate::code_grant::{REDIRECT, SCOPE, exchange, grant, issue_code, verifier};
use crate::helpers::*;

/// Every sample of one scrape: `name{labels}` → value.
struct Scrape {
    samples: HashMap<String, f64>,
    text: String,
}

impl Scrape {
    /// The value of `key`, or 0 when the series does not exist (yet).
    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let addr = app.state().metrics_addr.expect("metrics on");
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        server_kit::metrics::CONTENT_TYPE
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect();
    Scrape { samples, text }
}

async fn token_status(app: &TestApp, basic: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> u16 {
    app.post_form("/token", basic, pairs)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_scripted_sequence_scrapes_to_exact_values() {
    let app = spawn().await;
    let before = scrape(&app).await;
    assert_eq!(before.get("securemcp_signing_keys"), 1.0, "{}", before.text);
    assert_eq!(app.jwks().await.keys.len(), 1);
    assert_eq!(before.get("securemcp_login_failures_total"), 0.0);
    // Families without a Redis are not registered at all.
    assert!(
        !before.text.contains("securemcp_redis_up"),
        "{}",
        before.text
    );

    // Two client_credentials tokens (client_secret_basic).
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(
        token_status(&app, Some((FAST_ID, FAST_SECRET)), &cc).await,
        200
    );
    assert_eq!(
        token_status(&app, Some((FAST_ID, FAST_SECRET)), &cc).await,
        200
    );
    // A wrong secret through the Authorization header…
    assert_eq!(
        token_status(&app, Some((FAST_ID, "not-the-secret")), &cc).await,
        401
    );
    // …and an unknown client through the form: counted by method only.
    assert_eq!(
        token_status(
            &app,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody-metrics-probe"),
                ("client_secret", "whatever-secret"),
            ],
        )
        .await,
        401
    );

    // A failed sign-in at /authorize (GET the login page, POST it: 2 requests).
    let request = AuthorizeRequest::new(PUBLIC_ID, REDIRECT)
        .unwrap()
        .scope(SCOPE)
        .resource(LOCAL_MCP);
    let url = request.url(&app.base).unwrap();
    let refused = Person::new("alice", "not-her-password")
        .unwrap()
        .authorize(&url, Decision::Approve)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().starts_with("login refused"),
        "{refused}"
    );

    // A whole code flow (login page, login, consent: 3 requests), the
    // exchange (a public client: method none) and one refresh.
    let back = Person::new("alice", "alice-dev-password")
        .unwrap()
        .authorize(&url, Decision::Approve)
        .await
        .unwrap();
    let code = back.code.expect("a code");
    let resp = exchange(
        &app,
        &[
            ("client_id", PUBLIC_ID),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &request.pkce.verifier),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_status(
            &app,
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_ID),
                ("refresh_token", refresh),
            ],
        )
        .await,
        200
    );
    // A path the router does not know is `other`, not its own label.
    let nope = app.http.get(app.url("/nope/x1")).send().await.unwrap();
    assert_eq!(nope.status(), 404);

    let m = scrape(&app).await;
    let expect = [
        (
            r#"securemcp_tokens_issued_total{grant_type="client_credentials",client_id="fast-client"}"#,
            2.0,
        ),
        (
            r#"securemcp_tokens_issued_total{grant_type="authorization_code",client_id="claude-desktop-client"}"#,
            1.0,
        ),
        (
            r#"securemcp_tokens_issued_total{grant_type="refresh_token",client_id="claude-desktop-client"}"#,
            1.0,
        ),
        (
            r#"securemcp_client_auth_failures_total{method="client_secret_basic"}"#,
            1.0,
        ),
        (
            r#"securemcp_client_auth_failures_total{method="client_secret_post"}"#,
            1.0,
        ),
        (
            r#"securemcp_client_auth_failures_total{method="private_key_jwt"}"#,
            0.0,
        ),
        (
            r#"securemcp_client_auth_failures_total{method="none"}"#,
            0.0,
        ),
        ("securemcp_login_failures_total", 1.0),
        ("securemcp_signing_keys", 1.0),
        (
            r#"securemcp_http_requests_total{route="/token",status="200"}"#,
            4.0,
        ),
        (
            r#"securemcp_http_requests_total{route="/token",status="401"}"#,
            2.0,
        ),
        (
            r#"securemcp_http_requests_total{route="/authorize",status="200"}"#,
            4.0,
        ),
        (
            r#"securemcp_http_requests_total{route="/authorize",status="303"}"#,
            1.0,
        ),
        (
            r#"securemcp_http_requests_total{route="/jwks",status="200"}"#,
            1.0,
        ),
        (
            r#"securemcp_http_requests_total{route="other",status="404"}"#,
            1.0,
        ),
        (
            r#"securemcp_http_request_duration_seconds_count{route="/token"}"#,
            6.0,
        ),
        (
            r#"securemcp_http_request_duration_seconds_count{route="/authorize"}"#,
            5.0,
        ),
        (
            r#"securemcp_http_request_duration_seconds_count{route="other"}"#,
            1.0,
        ),
        // Per IP: 6 token requests + 5 authorize requests; per client: the
        // 4 authenticated token requests; per username: the 2 sign-ins.
        (
            r#"securemcp_ratelimit_decisions_total{limiter="ip",decision="allowed"}"#,
            11.0,
        ),
        (
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"}"#,
            4.0,
        ),
        (
            r#"securemcp_ratelimit_decisions_total{limiter="login",decision="allowed"}"#,
            2.0,
        ),
        (
            r#"securemcp_ratelimit_decisions_total{limiter="ip",decision="limited"}"#,
            0.0,
        ),
    ];
    for (key, want) in expect {
        assert_eq!(m.get(key), want, "{key}\n{}", m.text);
    }
    // The histogram's +Inf bucket holds every observation (prometheus-client
    // writes `le` first).
    assert_eq!(
        m.get(r#"securemcp_http_request_duration_seconds_bucket{le="+Inf",route="/token"}"#),
        6.0,
        "{}",
        m.text
    );
    // Claimed ids of failed authentications never become label values.
    assert!(!m.text.contains("nobody-metrics-probe"), "{}", m.text);
    assert!(!m.text.contains("/nope"), "{}", m.text);
}

#[tokio::test]
async fn registered_clients_share_the_dynamic_label() {
    let app = spawn().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = app
            .http
            .post(app.url("/register"))
            .header("content-type", "application/json")
            .body(json!({"redirect_uris": ["http://127.0.0.1/callback"]}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        ids.push(body["client_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let v = verifier();
        let code = issue_code(&app, &grant(id, &v)).await;
        let resp = exchange(
            &app,
            &[
                ("client_id", id),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &v),
            ],
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    let m = scrape(&app).await;
    assert_eq!(
        m.get(
            r#"securemcp_tokens_issued_total{grant_type="authorization_code",client_id="dynamic"}"#
        ),
        2.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.get(r#"securemcp_ratelimit_decisions_total{limiter="registration",decision="allowed"}"#),
        2.0
    );
    assert_eq!(
        m.get(r#"securemcp_http_requests_total{route="/register",status="201"}"#),
        2.0
    );
    for id in &ids {
        assert!(!m.text.contains(id.as_str()), "{id} is not a label value");
    }
}

#[tokio::test]
async fn metrics_are_off_when_the_bind_is_empty() {
    let app = spawn_with(Opts {
        configure: Some(Arc::new(|c| c.metrics_bind = None)),
        ..Opts::default()
    })
    .await;
    assert_eq!(app.state().metrics_addr, None);
    // The API serves as ever.
    assert!(!app.token(&[]).await.is_empty());
}

/// Scrapes until `key` reads `want` (a state another task changes), at most
/// 15 s; returns the last scrape.
async fn scrape_until(app: &TestApp, key: &str, want: f64) -> Scrape {
    for _ in 0..150 {
        let m = scrape(app).await;
        if m.get(key) == want {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    scrape(app).await
}

#[tokio::test]
async fn with_redis_redis_up_follows_the_breaker() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let app = spawn_with(Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    })
    .await;
    let m = scrape(&app).await;
    assert_eq!(m.get("securemcp_redis_up"), 1.0, "{}", m.text);
    assert!(
        m.text
            .contains("# TYPE securemcp_redis_command_duration_seconds histogram"),
        "{}",
        m.text
    );

    redis.stop();
    // A token request finds Redis gone (the limiter and stores use it).
    let _ = app
        .post_form(
            "/token",
            Some((FAST_ID, FAST_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let m = scrape_until(&app, "securemcp_redis_up", 0.0).await;
    assert_eq!(m.get("securemcp_redis_up"), 0.0, "{}", m.text);

    redis.restart();
    let m = scrape_until(&app, "securemcp_redis_up", 1.0).await;
    assert_eq!(m.get("securemcp_redis_up"), 1.0, "{}", m.text);
}
