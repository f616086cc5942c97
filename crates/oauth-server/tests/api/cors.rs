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

/// Every header of an answer but `date`, `content-length` (a token's length
/// varies) and `ratelimit` (its reset moves with the clock; its remaining
/// count is checked apart), sorted.
fn headers_of(resp: &reqwest::Response) -> Vec<String> {
    let mut all: Vec<String> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length" | "ratelimit"))
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    all.sort();
    all
}

const ANY_ORIGIN: &str = "access-control-allow-origin: *";
const VARY: &str = "vary: origin, access-control-request-method, access-control-request-headers";
const POLICY: &str = "ratelimit-policy: \"oauth\";q=1;w=60";

/// The exact headers of every kind of `/token` and `/revoke` answer: CORS
/// (`*` and `vary`, with or without `Origin`) on a 200, 401, 405 and the
/// per-IP 429 alike, the RateLimit headers of the per-IP budget on all but
/// the preflight (which costs nothing), and the preflight's own. Pins what
/// the CORS layer, the per-IP `from_fn` and axum's method router wrote
/// before issue 15 folded them into one service.
#[tokio::test]
async fn token_and_revoke_answers_carry_exact_cors_and_ratelimit_headers() {
    let app = spawn_with(Opts {
        policy: Some((1, 5)),
        ..Opts::default()
    })
    .await;
    let send = |method: reqwest::Method, path: &str, basic: bool, origin: bool, body: String| {
        let mut req = app
            .http
            .request(method, app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if origin {
            req = req.header("origin", "https://host.example");
        }
        if basic {
            req = req.header("authorization", basic_header(FAST_ID, FAST_SECRET));
        }
        req.send()
    };
    let remaining = |r: &reqwest::Response, n: u32| {
        let v = header(r, "ratelimit").unwrap();
        assert!(v.starts_with(&format!("\"oauth\";r={n};t=")), "{v}");
    };
    let json_answer = [
        ANY_ORIGIN,
        "cache-control: no-store",
        "content-type: application/json",
        "pragma: no-cache",
        POLICY,
        VARY,
    ];
    let cc = || form(&[("grant_type", "client_credentials")]);

    // A token, with and without Origin.
    let resp = send(reqwest::Method::POST, "/token", true, true, cc())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    remaining(&resp, 4);
    assert_eq!(headers_of(&resp), json_answer);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let resp = send(reqwest::Method::POST, "/token", true, false, cc())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    remaining(&resp, 3);
    assert_eq!(headers_of(&resp), json_answer);

    // Another method: axum's 405, charged to the IP like any request.
    let resp = send(reqwest::Method::GET, "/token", true, true, cc())
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    remaining(&resp, 2);
    assert_eq!(header(&resp, "content-length"), Some("0"));
    assert_eq!(headers_of(&resp), [ANY_ORIGIN, "allow: POST", POLICY, VARY]);

    // A revocation.
    let resp = send(
        reqwest::Method::POST,
        "/revoke",
        true,
        true,
        form(&[("token", &token)]),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    remaining(&resp, 1);
    assert_eq!(header(&resp, "content-length"), Some("0"));
    assert_eq!(
        headers_of(&resp),
        [
            ANY_ORIGIN,
            "cache-control: no-store",
            "pragma: no-cache",
            POLICY,
            VARY
        ]
    );

    // No client authentication: 401 (the penalty no longer fits).
    let resp = send(reqwest::Method::POST, "/token", false, true, cc())
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    remaining(&resp, 0);
    assert_eq!(headers_of(&resp), json_answer);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"invalid_client","error_description":"client authentication is required"}"#
    );

    // The per-IP 429.
    let resp = send(reqwest::Method::POST, "/token", true, true, cc())
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "ratelimit"), Some("\"oauth\";r=0;t=60"));
    let mut refused = json_answer.to_vec();
    refused.push("retry-after: 60");
    refused.sort_unstable();
    assert_eq!(headers_of(&resp), refused);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"slow_down","error_description":"too many requests; retry after 60 s"}"#
    );

    // A preflight is answered before the budget (spent here), with `allow`.
    for path in ["/token", "/revoke"] {
        let resp = preflight(&app, path, "POST").await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-length"), Some("0"), "{path}");
        assert_eq!(
            headers_of(&resp),
            [
                "access-control-allow-headers: authorization,content-type,mcp-protocol-version",
                "access-control-allow-methods: POST,OPTIONS",
                ANY_ORIGIN,
                "access-control-max-age: 3600",
                "allow: POST",
                VARY,
            ],
            "{path}"
        );
    }
}
