//! Per-IP limits see the real client address through nginx; a client's own
//! X-Forwarded-For changes nothing.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use crate::helpers::{CLIENT, Opts, Stack, form};

#[tokio::test]
async fn per_ip_limits_key_on_the_real_client_address() {
    // burst 10; a failed client authentication costs 1 + 5.
    let Some(stack) = Stack::start_with(Opts {
        oauth_policy: Some((60, 10)),
        ..Opts::default()
    })
    .await
    else {
        return;
    };
    let attacker_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let honest_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let attacker = stack.http_from(attacker_ip);
    let token_url = format!("{}/token", stack.issuer);
    let bad_login = |spoof: &'static str| {
        attacker
            .post(&token_url)
            .basic_auth(CLIENT.0, Some("wrong-secret"))
            .header("x-forwarded-for", spoof)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("grant_type", "client_credentials")]))
            .send()
    };

    // Failed logins, each claiming another address (the honest client's
    // included). Were X-Forwarded-For believed, every one would get a fresh
    // budget; keyed on the real address, burst 10 runs out within 10 tries.
    let spoofs = [
        "203.0.113.7",
        "198.51.100.1, 127.0.0.3",
        "127.0.0.3",
        "10.0.0.1",
        "::1",
        "127.0.0.2",
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.4",
        "192.0.2.5",
    ];
    let mut statuses = Vec::new();
    for spoof in spoofs {
        statuses.push(bad_login(spoof).await.unwrap().status().as_u16());
    }
    let first_429 = statuses.iter().position(|s| *s == 429);
    assert!(
        first_429.is_some_and(|i| i >= 1 && statuses[..i].iter().all(|s| *s == 401)),
        "spoofed X-Forwarded-For escaped the per-IP limit: {statuses:?}"
    );
    assert!(
        statuses[first_429.unwrap_or(0)..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    let resp = bad_login("192.0.2.55").await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "slow_down", "{body}");

    // Another address, through the same nginx, is not affected: the server
    // keys on the address nginx saw, not on nginx's own address.
    let honest = stack.http_from(honest_ip);
    let resp = honest
        .post(&token_url)
        .basic_auth(CLIENT.0, Some(CLIENT.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("resource", stack.resource.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn x_forwarded_for_is_believed_from_nginx_only() {
    let Some(stack) = Stack::start_with(Opts {
        oauth_policy: Some((60, 10)),
        ..Opts::default()
    })
    .await
    else {
        return;
    };
    // Straight to the oauth-server (as a container on the internal network
    // could), from an address that is not nginx's: every request claims a
    // new address, yet they all share one budget, the peer's.
    let direct = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)))
        .build()
        .unwrap();
    let url = format!("http://{}/token", stack.oauth_addr);
    let mut statuses = Vec::new();
    for i in 0..12 {
        let resp = direct
            .post(&url)
            .basic_auth(CLIENT.0, Some("wrong-secret"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("grant_type", "client_credentials")]))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert!(
        statuses.ends_with(&[429, 429]),
        "an untrusted peer chose its own rate-limit key: {statuses:?}"
    );
}

#[tokio::test]
async fn mcp_failed_auth_limit_keys_on_the_real_client_address() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let post = |client: &reqwest::Client, spoof: String| {
        client
            .post(&stack.resource)
            .bearer_auth("forged.token.value")
            .header("x-forwarded-for", spoof)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
    };
    // Each replica allows 10 failed authentications per address (in
    // process); 40 forged tokens spread over both, each claiming another
    // address, spend both budgets of the ONE real address.
    let attacker = stack.http_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(
            post(&attacker, format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // Both budgets (10 each) plus what refilled meanwhile (30/min = one unit
    // per 2 s per replica) is all the real address can get; had the spoofed
    // header picked the key, all 40 would have been verified (401).
    let refilled = 2 * (started.elapsed().as_secs() / 2 + 1);
    let verified = statuses.iter().filter(|s| **s == 401).count() as u64;
    assert!(
        verified <= 20 + refilled,
        "spoofed X-Forwarded-For escaped the failed-auth limit: {statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    // Another real address through the same nginx is judged on its own.
    let other = stack.http_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    let resp = post(&other, "198.51.100.1".to_owned()).await.unwrap();
    assert_eq!(resp.status(), 401);
}
