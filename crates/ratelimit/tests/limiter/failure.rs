//! Failure modes: what a `ResilientLimiter` does when Redis dies, hangs or
//! comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ratelimit::{
    Decision, FailureMode, Limiter, LimiterError, MemoryLimiter, Policy, RedisLimiter,
    ResilientLimiter,
};
use testkit::RedisServer;

use crate::support::{AuditEvents, TEST_REDIS_TIMEOUT, check, redis_limiter};

const DEGRADED: &str = "ratelimit.degraded";
const RECOVERED: &str = "ratelimit.recovered";

/// A primary that can be switched off, counting the calls it receives.
#[derive(Debug, Default)]
struct Switchable {
    down: AtomicBool,
    calls: AtomicUsize,
    inner: MemoryLimiter,
}

#[async_trait]
impl Limiter for Switchable {
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(LimiterError::Timeout(Duration::from_millis(50)));
        }
        self.inner.check(key, cost, policy).await
    }
}

fn policy() -> Policy {
    Policy::new(1, 3).unwrap() // T = 60 s: nothing refills during a test
}

#[tokio::test]
async fn one_event_per_transition_and_automatic_recovery() {
    let events = AuditEvents::capture();
    let primary = Arc::new(Switchable::default());
    let limiter = ResilientLimiter::new(primary.clone(), FailureMode::Local)
        .with_probe_interval(Duration::ZERO);
    let p = policy();

    assert!(check(&limiter, "k", 1, &p).await.allowed);
    assert!(!limiter.is_degraded());

    primary.down.store(true, Ordering::SeqCst);
    // The fallback has its own, full bucket: 3 allowed, then limited.
    for expected_remaining in [2, 1, 0] {
        let d = check(&limiter, "k", 1, &p).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, expected_remaining);
    }
    assert!(!check(&limiter, "k", 1, &p).await.allowed);
    assert!(limiter.is_degraded());
    assert_eq!(events.all(), [DEGRADED]);

    primary.down.store(false, Ordering::SeqCst);
    // Back on the primary, whose bucket for "k" has 2 left.
    assert_eq!(check(&limiter, "k", 1, &p).await.remaining, 1);
    assert!(!limiter.is_degraded());
    assert_eq!(events.all(), [DEGRADED, RECOVERED]);

    primary.down.store(true, Ordering::SeqCst);
    check(&limiter, "k", 1, &p).await;
    check(&limiter, "k", 1, &p).await;
    assert_eq!(events.all(), [DEGRADED, RECOVERED, DEGRADED]);
}

/// While degraded, the primary is tried once per probe interval, not on
/// every request (which would add the timeout to every request).
#[tokio::test]
async fn degraded_requests_skip_the_primary_until_the_next_probe() {
    let primary = Arc::new(Switchable::default());
    primary.down.store(true, Ordering::SeqCst);
    let limiter = ResilientLimiter::new(primary.clone(), FailureMode::Local)
        .with_probe_interval(Duration::from_secs(3600));
    let p = policy();
    for _ in 0..10 {
        check(&limiter, "k", 1, &p).await;
    }
    assert_eq!(primary.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn open_and_closed_modes_without_redis() {
    let p = policy();
    let primary = Arc::new(Switchable::default());
    primary.down.store(true, Ordering::SeqCst);

    let open = ResilientLimiter::new(primary.clone(), FailureMode::Open);
    for _ in 0..10 {
        let d = check(&open, "k", 1, &p).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 3);
    }

    let closed = ResilientLimiter::new(primary, FailureMode::Closed);
    for _ in 0..2 {
        let err = closed.check("k", 1, &p).await.unwrap_err();
        assert!(
            matches!(err, LimiterError::Unavailable { retry_after, .. } if retry_after == Duration::from_secs(1)),
            "{err:?}"
        );
        assert_eq!(err.retry_after(), Duration::from_secs(1));
    }
}

/// Polls `limiter` with fresh keys until it is healthy again (bounded).
async fn wait_for_recovery(limiter: &ResilientLimiter) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while limiter.is_degraded() {
        assert!(Instant::now() < deadline, "never recovered after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
        check(limiter, &format!("rl:probe:{i}"), 1, &policy()).await;
        i += 1;
    }
}

async fn resilient(server: &RedisServer, mode: FailureMode) -> ResilientLimiter {
    ResilientLimiter::new(Arc::new(redis_limiter(server).await), mode)
        .with_probe_interval(Duration::from_millis(20))
}

/// Kill redis-server mid-run: `local` keeps limiting with no error, logs one
/// degraded event, and recovers (one event) once Redis is back.
#[tokio::test]
async fn local_mode_survives_a_redis_crash() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let events = AuditEvents::capture();
    let limiter = resilient(&server, FailureMode::Local).await;
    let p = policy();
    assert_eq!(check(&limiter, "rl:c", 1, &p).await.remaining, 2);
    assert_eq!(check(&limiter, "rl:c", 1, &p).await.remaining, 1);

    server.stop();
    // Every check answers (no error); the in-memory bucket limits.
    let mut allowed = 0;
    for _ in 0..10 {
        allowed += usize::from(check(&limiter, "rl:c", 1, &p).await.allowed);
    }
    assert_eq!(allowed, 3);
    assert!(limiter.is_degraded());
    assert_eq!(events.count(DEGRADED), 1, "{:?}", events.all());
    assert_eq!(events.count(RECOVERED), 0);

    server.restart();
    wait_for_recovery(&limiter).await;
    assert_eq!(events.count(DEGRADED), 1, "{:?}", events.all());
    assert_eq!(events.count(RECOVERED), 1, "{:?}", events.all());
    // Redis again: the restarted (empty) server has a full bucket for the
    // key the fallback had exhausted.
    assert_eq!(check(&limiter, "rl:c", 1, &p).await.remaining, 2);
}

#[tokio::test]
async fn open_mode_allows_while_redis_is_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let limiter = resilient(&server, FailureMode::Open).await;
    let p = policy();
    for _ in 0..3 {
        assert!(check(&limiter, "rl:o", 1, &p).await.allowed);
    }
    assert!(!check(&limiter, "rl:o", 1, &p).await.allowed);
    server.stop();
    for _ in 0..10 {
        assert!(check(&limiter, "rl:o", 1, &p).await.allowed);
    }
    server.restart();
    wait_for_recovery(&limiter).await;
    for _ in 0..3 {
        assert!(check(&limiter, "rl:o", 1, &p).await.allowed);
    }
    assert!(!check(&limiter, "rl:o", 1, &p).await.allowed);
}

#[tokio::test]
async fn closed_mode_refuses_while_redis_is_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let limiter = resilient(&server, FailureMode::Closed).await;
    let p = policy();
    assert!(check(&limiter, "rl:x", 1, &p).await.allowed);
    server.stop();
    for _ in 0..5 {
        let err = limiter.check("rl:x", 1, &p).await.unwrap_err();
        assert!(matches!(err, LimiterError::Unavailable { .. }), "{err:?}");
        let mut headers = http::HeaderMap::new();
        ratelimit::headers::insert_unavailable(&mut headers, &err);
        assert_eq!(headers[http::header::RETRY_AFTER], "1");
    }
    server.restart();
    wait_for_recovery(&limiter).await;
    assert_eq!(check(&limiter, "rl:x", 1, &p).await.remaining, 2);
}

/// Redis down before the server even starts: construction succeeds, checks
/// are answered locally, and Redis is used once it appears.
#[tokio::test]
async fn starts_while_redis_is_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    server.stop();
    let redis = RedisLimiter::connect(&server.url(), TEST_REDIS_TIMEOUT)
        .await
        .unwrap();
    let limiter = ResilientLimiter::new(Arc::new(redis), FailureMode::Local)
        .with_probe_interval(Duration::from_millis(20));
    let p = policy();
    assert!(check(&limiter, "rl:s", 1, &p).await.allowed);
    assert!(limiter.is_degraded());
    server.restart();
    wait_for_recovery(&limiter).await;
}
