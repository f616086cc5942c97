//! A person signs in through nginx over TLS, the way a deployment serves it:
//! the https issuer gives the `__Host-` cookie with `Secure`, nginx passes
//! the pages' own Content-Security-Policy (one copy of each security header,
//! while JSON answers keep nginx's strict default), and the code from the
//! redirect is exchanged and used through nginx.

use reqwest::redirect::Policy;
use serde_json::Value;
use stack::signin::{AuthorizeRequest, Decision, Person};

use crate::helpers::{Stack, form, list_tools_2026};

const HOST_CLIENT: &str = "claude-desktop-client";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

#[tokio::test]
async fn a_person_signs_in_through_nginx_over_tls() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let http = stack
        .inner
        .http_builder()
        .unwrap()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let request = AuthorizeRequest::new(HOST_CLIENT, REDIRECT)
        .unwrap()
        .scope("customer:read")
        .resource(&stack.resource);
    let url = request.url(&stack.issuer).unwrap();

    // The login page as a browser gets it through nginx.
    let page = http.get(url.clone()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-securemcp_session="), "{cookie}");
    let flags: Vec<&str> = cookie.split("; ").skip(1).collect();
    for flag in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(flags.contains(&flag), "{flag} missing in {cookie}");
    }
    let csp: Vec<&str> = h
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(csp.len(), 1, "one policy, the page's: {csp:?}");
    assert!(csp[0].contains("style-src 'sha256-"), "{}", csp[0]);
    assert!(csp[0].contains("frame-ancestors 'none'"), "{}", csp[0]);
    assert!(!csp[0].contains("unsafe-inline"), "{}", csp[0]);
    for name in [
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "strict-transport-security",
    ] {
        assert_eq!(h.get_all(name).iter().count(), 1, "{name}");
    }
    assert_eq!(h["x-frame-options"], "DENY");

    // JSON answers keep nginx's strict policy.
    let meta = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            stack.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        meta.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );

    // The whole sign-in, the exchange and a call, through nginx.
    let mut alice = Person::with_client(http.clone(), stack::ALICE.0, stack::ALICE.1);
    let back = alice.authorize(&url, Decision::Approve).await.unwrap();
    assert_eq!(back.state.as_deref(), Some(request.state.as_str()));
    assert_eq!(back.iss.as_deref(), Some(stack.issuer.as_str()));
    let code = back.code.expect("a code in the redirect");
    let resp = http
        .post(format!("{}/token", stack.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "authorization_code"),
            ("client_id", HOST_CLIENT),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &request.pkce.verifier),
            ("resource", &stack.resource),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    assert_eq!(token["scope"], "customer:read");
    assert!(token["refresh_token"].is_string(), "{token}");
    let reply = list_tools_2026(
        &stack.http,
        &stack.resource,
        token["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("get_customer_info"), "{}", reply.text);
    assert!(
        !reply.text.contains("create_support_ticket"),
        "alice approved customer:read only: {}",
        reply.text
    );
}
