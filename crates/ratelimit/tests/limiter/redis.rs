//! The suite, real-clock checks and a differential test against a real
//! `redis-server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ratelimit::{Limiter, LimiterError, ManualClock, MemoryLimiter, Policy, RedisLimiter};
use redis::AsyncCommands;
use testkit::RedisServer;

use crate::memory::hammer;
use crate::suite::gcra_suite;
use crate::support::{check, raw_connection, redis_limiter};

#[tokio::test]
async fn gcra_suite_on_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = redis_limiter(&server).await.with_clock(clock.clone());
    gcra_suite(&limiter, &clock, "rl:suite").await;
}

/// Without a test clock the script reads Redis's `TIME`. Bounds come from
/// the time the test itself measured, so they cannot flake, and a unit or
/// arithmetic slip (seconds vs microseconds, wrong sign) lands far outside.
#[tokio::test]
async fn uses_the_redis_server_clock() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let limiter = redis_limiter(&server).await;
    let policy = Policy::new(1, 2).unwrap(); // T = 60 s
    let t = policy.emission_interval();
    let started = Instant::now();
    assert_eq!(check(&limiter, "rl:clock", 1, &policy).await.remaining, 1);
    assert_eq!(check(&limiter, "rl:clock", 1, &policy).await.remaining, 0);
    let d = check(&limiter, "rl:clock", 1, &policy).await;
    let elapsed = started.elapsed();
    assert!(!d.allowed);
    assert!(
        d.retry_after <= t && d.retry_after + elapsed >= t,
        "retry_after {:?} not within {elapsed:?} of {t:?}",
        d.retry_after
    );
    assert!(
        d.reset_after <= t * 2 && d.reset_after + elapsed >= t * 2,
        "reset_after {:?}",
        d.reset_after
    );
}

/// The key expires when its bucket is full again, and holds the TAT as an
/// integer number of microseconds on the Redis clock.
#[tokio::test]
async fn key_expires_when_the_bucket_is_full() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let limiter = redis_limiter(&server).await;
    let mut raw = raw_connection(&server).await;
    let policy = Policy::new(1, 5).unwrap();
    let started = Instant::now();
    let d = check(&limiter, "rl:ttl", 2, &policy).await;
    assert!(d.allowed);
    let pttl: i64 = raw.pttl("rl:ttl").await.unwrap();
    let elapsed_ms = i64::try_from(started.elapsed().as_millis()).unwrap();
    assert!(
        pttl <= 120_000 && pttl >= 120_000 - elapsed_ms - 1,
        "PTTL {pttl} ms, expected ~120000"
    );
    let stored: String = raw.get("rl:ttl").await.unwrap();
    assert!(
        stored.bytes().all(|b| b.is_ascii_digit()),
        "stored {stored:?}"
    );
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_us = secs * 1_000_000 + micros;
    let ahead = stored.parse::<u64>().unwrap().checked_sub(now_us).unwrap();
    assert!(
        ahead <= 120_000_000
            && ahead + 1_000_000 >= 120_000_000 - u64::try_from(elapsed_ms).unwrap() * 1000,
        "TAT {ahead} us ahead"
    );

    // Denied and zero-cost checks do not write (nor extend the expiry).
    let before: i64 = raw.pttl("rl:ttl").await.unwrap();
    assert!(!check(&limiter, "rl:ttl", 6, &policy).await.allowed);
    assert!(!limiter.check("rl:none", 6, &policy).await.unwrap().allowed);
    assert!(!raw.exists::<_, bool>("rl:none").await.unwrap());
    assert!(raw.pttl::<_, i64>("rl:ttl").await.unwrap() <= before);
}

/// `NOSCRIPT` (script cache flushed, e.g. by a restart) is handled by
/// reloading the script, invisibly to the caller.
#[tokio::test]
async fn reloads_the_script_after_script_flush() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let limiter = redis_limiter(&server).await;
    let mut raw = raw_connection(&server).await;
    let policy = Policy::new(1, 3).unwrap();
    assert_eq!(check(&limiter, "rl:flush", 1, &policy).await.remaining, 2);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(check(&limiter, "rl:flush", 1, &policy).await.remaining, 1);
}

#[tokio::test]
async fn ping_reports_a_dead_server() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let limiter = redis_limiter(&server).await;
    limiter.ping().await.unwrap();
    server.stop();
    let policy = Policy::new(1, 3).unwrap();
    assert!(limiter.ping().await.is_err());
    let err = limiter.check("rl:dead", 1, &policy).await.unwrap_err();
    assert!(matches!(err, LimiterError::Redis(_)), "{err:?}");
}

/// A server that accepts connections and never answers: the check fails
/// with `Timeout` instead of hanging the request.
#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let limiter = RedisLimiter::connect(
        &format!("redis://127.0.0.1:{port}"),
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    let policy = Policy::new(1, 3).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), limiter.check("k", 1, &policy))
        .await
        .expect("the limiter's own timeout must fire");
    assert!(
        matches!(outcome, Err(LimiterError::Timeout(t)) if t == Duration::from_millis(100))
            || matches!(&outcome, Err(LimiterError::Redis(e)) if e.is_timeout()),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_never_exceed_the_budget() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let limiter: Arc<dyn Limiter> = Arc::new(redis_limiter(&server).await);
    let policy = Policy::new(1, 10).unwrap();
    assert_eq!(hammer(limiter, policy, 64, 20).await, 10);
}

/// Two replicas (two limiters, two connections) share one budget.
#[tokio::test]
async fn two_replicas_share_one_budget() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = redis_limiter(&server).await;
    let b = redis_limiter(&server).await;
    let policy = Policy::new(1, 4).unwrap();
    let mut allowed = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(check(limiter, "rl:shared", 1, &policy).await.allowed);
    }
    assert_eq!(allowed, 4);
}

/// Differential test: random sequences of (time step, cost, key) give
/// identical decisions from the Lua script and the Rust implementation.
#[test]
fn redis_and_memory_agree_on_random_sequences() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis_clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let redis = rt
        .block_on(redis_limiter(&server))
        .with_clock(redis_clock.clone());
    let case = AtomicU64::new(0);

    // T from 1 s to 60 s: keys expire (in real time) only long after a case.
    let ops = prop::collection::vec((0u64..180_000_000, 0u32..12, 0usize..3), 1..60);
    proptest!(ProptestConfig::with_cases(64), |(rate in 1u32..=60, burst in 1u32..=8, ops in ops)| {
        let policy = Policy::new(rate, burst).unwrap();
        let case = case.fetch_add(1, Ordering::SeqCst);
        let mem_clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
        redis_clock.set(Duration::from_secs(1_000_000));
        let memory = MemoryLimiter::with_clock(mem_clock.clone());
        for (step, (advance, cost, key)) in ops.into_iter().enumerate() {
            let advance = Duration::from_micros(advance % (3 * u64::try_from(policy.emission_interval().as_micros()).unwrap()));
            mem_clock.advance(advance);
            redis_clock.advance(advance);
            let key = format!("rl:diff:{case}:{key}");
            let expected = memory.check_now(&key, cost, &policy);
            let got = rt.block_on(redis.check(&key, cost, &policy)).unwrap();
            prop_assert_eq!(got, expected, "step {} (cost {}, key {})", step, cost, key);
        }
    });
}
