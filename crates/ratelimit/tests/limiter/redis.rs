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

/// `CLIENT PAUSE ms ALL`: Redis holds every command (the script's too) for
/// `ms`, so the checks issued meanwhile are all waiting at once.
async fn pause_redis(server: &RedisServer, ms: u64) {
    let mut raw = raw_connection(server).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .unwrap();
}

/// 300 checks of one key issued while its first call is held: the first
/// goes alone, the other 299 follow in batches of at most 64 (5 calls), and
/// the decisions are those of 300 checks made one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_key_is_checked_in_batches_with_the_decisions_of_one_at_a_time() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = Arc::new(redis_limiter(&server).await.with_clock(clock.clone()));
    let policy = Policy::new(1, 100).unwrap(); // T = 60 s
    // Loads the script, so the count below holds only the checks' calls.
    check(limiter.as_ref(), "rl:warm", 1, &policy).await;
    let before = server.command_calls("evalsha");

    pause_redis(&server, 300).await;
    let checks: Vec<_> = (0..300)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("rl:busy", 1, &policy).await })
        })
        .collect();
    let mut allowed_remaining = Vec::new();
    for c in checks {
        let d = c.await.unwrap().unwrap();
        assert_eq!(d.limit, 100);
        if d.allowed {
            assert_eq!(d.retry_after, Duration::ZERO);
            allowed_remaining.push(d.remaining);
        } else {
            assert_eq!(d.remaining, 0);
            assert_eq!(d.retry_after, Duration::from_secs(60));
            assert_eq!(d.reset_after, Duration::from_secs(6_000));
        }
    }
    allowed_remaining.sort_unstable();
    assert_eq!(allowed_remaining, (0..100).collect::<Vec<u32>>());
    assert_eq!(server.command_calls("evalsha") - before, 1 + 5);

    // The stored TAT is 100 intervals ahead, as after 100 separate checks.
    let mut raw = raw_connection(&server).await;
    let tat: u64 = raw.get("rl:busy").await.unwrap();
    assert_eq!(tat, 1_000_000_000_000 + 100 * 60_000_000);
}

/// A batch of mixed costs (free, too large, denied then a smaller one
/// allowed) gets, check by check, the decisions the in-memory limiter gives
/// the same checks one at a time. `join_all` polls the checks in order, so
/// the first leads and the rest queue in that order.
#[tokio::test]
async fn a_batch_decides_like_the_checks_one_at_a_time() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let redis = redis_limiter(&server).await.with_clock(clock.clone());
    let memory = MemoryLimiter::with_clock(clock.clone());
    let policy = Policy::new(6, 10).unwrap();
    check(&redis, "rl:warm", 1, &policy).await;
    let before = server.command_calls("evalsha");

    let costs = [1, 0, 4, 11, 3, 2, 5, 1, 0, 1, 10, 0];
    let batched =
        futures::future::join_all(costs.iter().map(|c| redis.check("rl:mixed", *c, &policy))).await;
    assert_eq!(
        server.command_calls("evalsha") - before,
        2,
        "one call, then one batch"
    );
    for (cost, batched) in costs.iter().zip(batched) {
        let alone = check(&memory, "rl:mixed", *cost, &policy).await;
        assert_eq!(batched.unwrap(), alone, "cost {cost}");
    }
}

/// A check whose caller gives up while its call is in flight still hands
/// the checks queued behind it on: they are answered, in order, after the
/// abandoned call (which Redis ran), and the key is free afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_check_still_hands_its_batch_on() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = Arc::new(redis_limiter(&server).await.with_clock(clock.clone()));
    let policy = Policy::new(1, 10).unwrap();
    check(limiter.as_ref(), "rl:warm", 1, &policy).await;

    pause_redis(&server, 300).await;
    let leader = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(50), limiter.check("rl:k", 1, &policy)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("rl:k", 1, &policy).await })
        })
        .collect();
    assert!(
        leader.await.unwrap().is_err(),
        "the leader gave up at 50 ms"
    );
    let mut remaining = Vec::new();
    for w in waiters {
        let d = w.await.unwrap().unwrap();
        assert!(d.allowed);
        remaining.push(d.remaining);
    }
    remaining.sort_unstable();
    // The abandoned call spent 1 of 10; the five spent 5 more.
    assert_eq!(remaining, [4, 5, 6, 7, 8]);
    assert_eq!(
        check(limiter.as_ref(), "rl:k", 1, &policy).await.remaining,
        3
    );
}

/// When the batch's call fails, every check in it gets the error (here the
/// timeout: the first check's call times out, then the batch's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_batch_fails_every_check_in_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(100);
    let limiter = Arc::new(RedisLimiter::connect(&server.url(), timeout).await.unwrap());
    let policy = Policy::new(1, 10).unwrap();
    check(limiter.as_ref(), "rl:warm", 1, &policy).await;

    pause_redis(&server, 1_000).await;
    let checks: Vec<_> = (0..6)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check("rl:k", 1, &policy).await })
        })
        .collect();
    for c in checks {
        let outcome = c.await.unwrap();
        assert!(
            matches!(outcome, Err(LimiterError::Timeout(t)) if t == timeout)
                || matches!(&outcome, Err(LimiterError::Redis(e)) if e.is_timeout()),
            "{outcome:?}"
        );
    }
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
