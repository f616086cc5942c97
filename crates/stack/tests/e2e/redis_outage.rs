//! A Redis outage under continuous load, through nginx with two mcp-server
//! replicas, with the default configuration: no request fails, revocations
//! made before the outage stay refused during it, and one made after it
//! reaches both replicas.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{CLIENT, form, list_tools_2026};

/// Polls `check` (every 25 ms) until it holds; fails after 15 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_redis_outage_under_load_fails_no_request_and_revocations_still_reach_every_replica() {
    let Some(mut redis) = testkit::RedisServer::start() else {
        return;
    };
    let Some(owned) = stack::Stack::builder()
        .redis(stack::Redis::Url(redis.url()))
        .nginx()
        .client(
            stack::Client::with_secret(CLIENT.0, CLIENT.1)
                .allowed_scopes(&["customer:read"])
                .default_scopes(&["customer:read"]),
        )
        .mcp_config(|c| {
            c.rate_limit.policy = ratelimit::Policy::new(600_000, 10_000).unwrap();
        })
        .start_or_skip()
        .await
    else {
        return;
    };
    let stack = &owned;
    let http = stack.http();
    let replicas: Vec<String> = (0..2).map(|i| stack.replica_url(i).unwrap()).collect();
    let token = || async { stack.token(CLIENT, None, None).await.unwrap() };
    let (valid, revoked, later) = (token().await, token().await, token().await);
    let revoke = move |t: String| async move {
        http.post(format!("{}/revoke", stack.issuer()))
            .basic_auth(CLIENT.0, Some(CLIENT.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", &t)]))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let refused_everywhere = |t: String| {
        let replicas = replicas.clone();
        async move {
            for url in &replicas {
                if list_tools_2026(http, url, &t).await.status != 401 {
                    return false;
                }
            }
            true
        }
    };
    let ready = |up: bool| {
        let replicas = replicas.clone();
        async move {
            for url in &replicas {
                let base = url.trim_end_matches("/mcp");
                let status = http
                    .get(format!("{base}/ready"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                if status.is_success() != up {
                    return false;
                }
            }
            true
        }
    };

    assert_eq!(revoke(revoked.clone()).await, 200);
    until("the revocation to reach both replicas", || {
        refused_everywhere(revoked.clone())
    })
    .await;

    // Continuous load through nginx with the valid token.
    let stop = AtomicBool::new(false);
    let (sent, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let worker = || async {
        while !stop.load(Ordering::SeqCst) {
            let r = list_tools_2026(http, stack.mcp_url(), &valid).await;
            sent.fetch_add(1, Ordering::SeqCst);
            if r.status != 200 {
                failed.fetch_add(1, Ordering::SeqCst);
                eprintln!("failed: {} {}", r.status, r.text);
            }
        }
    };
    let scenario = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.stop();
        until("both replicas to report the outage", || ready(false)).await;
        // During the outage (2 s of load): served, and the earlier
        // revocation holds.
        let before = sent.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(refused_everywhere(revoked.clone()).await);
        assert!(
            sent.load(Ordering::SeqCst) > before,
            "the load went on during the outage"
        );
        redis.restart();
        until("both replicas to be ready again", || ready(true)).await;
        // A revocation made after the outage reaches both replicas.
        assert_eq!(revoke(later.clone()).await, 200);
        until("the new revocation to reach both replicas", || {
            refused_everywhere(later.clone())
        })
        .await;
        assert!(refused_everywhere(revoked.clone()).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(worker(), worker(), worker(), scenario);

    let (sent, failed) = (sent.into_inner(), failed.into_inner());
    assert!(sent > 0);
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    for replica in stack.replicas() {
        let events = replica.state().unwrap().audit().recent(100_000);
        let count = |name: &str| events.iter().filter(|e| e.event == name).count();
        assert_eq!(
            (count("revocation.stale"), count("revocation.synced")),
            (1, 1),
            "one outage, audited once on each replica"
        );
    }
}
