//! Brute-force protection on the client-authenticated endpoints.

use crate::helpers::*;

const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn token_with_xff(app: &TestApp, xff: Option<&str>, secret: &str) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic_header(FAST_ID, secret))
        .body(form(&[CC]));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn per_ip_budget_answers_429_with_headers() {
    let app = spawn_with(Opts {
        policy: Some((1, 3)),
        ..Opts::default()
    })
    .await;
    for remaining in [2, 1, 0] {
        let resp = token_with_xff(&app, None, FAST_SECRET).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["ratelimit-policy"], "\"oauth\";q=1;w=60");
        let rl = resp.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            rl.starts_with(&format!("\"oauth\";r={remaining};t=")),
            "{rl}"
        );
    }
    let resp = token_with_xff(&app, None, FAST_SECRET).await;
    assert_eq!(resp.headers()["retry-after"], "60");
    assert_eq!(resp.headers()["ratelimit"], "\"oauth\";r=0;t=60");
    let body = assert_oauth_error(resp, 429, "slow_down").await;
    assert_eq!(
        body["error_description"],
        "too many requests; retry after 60 s"
    );
    // Unlimited routes keep serving.
    assert_eq!(
        app.http
            .get(app.url("/jwks"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn failed_authentication_costs_more() {
    let app = spawn_with(Opts {
        policy: Some((1, 10)),
        ..Opts::default()
    })
    .await;
    // Two failures: 1 + 5, then 1 (+ a penalty that no longer fits).
    for _ in 0..2 {
        assert_eq!(token_with_xff(&app, None, "wrong").await.status(), 401);
    }
    // 10 - 6 - 1 = 3 units left: exactly three more requests.
    for _ in 0..3 {
        assert_eq!(token_with_xff(&app, None, FAST_SECRET).await.status(), 200);
    }
    assert_eq!(token_with_xff(&app, None, FAST_SECRET).await.status(), 429);
}

#[tokio::test]
async fn per_client_budget_holds_across_addresses() {
    let app = spawn_with(Opts {
        policy: Some((1, 3)),
        trusted_proxies: Some("127.0.0.1/32"),
        ..Opts::default()
    })
    .await;
    for i in 0..3 {
        let resp = token_with_xff(&app, Some(&format!("10.0.0.{i}")), FAST_SECRET).await;
        assert_eq!(resp.status(), 200);
    }
    // A fresh address, but the client's own budget is spent.
    let resp = token_with_xff(&app, Some("10.0.0.99"), FAST_SECRET).await;
    assert_oauth_error(resp, 429, "slow_down").await;
    // Another client from that address is unaffected.
    let resp = app
        .http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "10.0.0.98")
        .body(form(&[
            CC,
            ("client_id", "post-only"),
            ("client_secret", FAST_SECRET),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = spawn_with(Opts {
        policy: Some((1, 2)),
        ..Opts::default()
    })
    .await;
    for i in 0..2 {
        let resp = token_with_xff(&app, Some(&format!("203.0.113.{i}")), FAST_SECRET).await;
        assert_eq!(resp.status(), 200);
    }
    let resp = token_with_xff(&app, Some("203.0.113.77"), FAST_SECRET).await;
    assert_oauth_error(resp, 429, "slow_down").await;
}
