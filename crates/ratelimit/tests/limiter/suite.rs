//! THE GCRA suite: run unchanged against every back end. Time comes from a
//! `ManualClock` shared with the limiter, so every number is exact.

use std::time::Duration;

use ratelimit::{Decision, Limiter, ManualClock, Policy};

use crate::support::check;

/// Emission interval of the main policy: 1 unit per minute.
const T: Duration = Duration::from_secs(60);
const BURST: u32 = 5;
const US: Duration = Duration::from_micros(1);

fn policy() -> Policy {
    Policy::new(1, BURST).unwrap()
}

fn allowed(remaining: u32, reset_after: Duration) -> Decision {
    Decision {
        allowed: true,
        limit: BURST,
        remaining,
        retry_after: Duration::ZERO,
        reset_after,
    }
}

fn denied(remaining: u32, retry_after: Duration, reset_after: Duration) -> Decision {
    Decision {
        allowed: false,
        limit: BURST,
        remaining,
        retry_after,
        reset_after,
    }
}

/// Runs every case; `prefix` keeps keys apart from other runs.
pub async fn gcra_suite(limiter: &dyn Limiter, clock: &ManualClock, prefix: &str) {
    burst_then_exact_retry_after(limiter, clock, &format!("{prefix}:burst")).await;
    steady_rate(limiter, clock, &format!("{prefix}:steady")).await;
    independent_keys(limiter, &format!("{prefix}:indep")).await;
    cost_above_one(limiter, clock, &format!("{prefix}:cost")).await;
    cost_above_burst(limiter, clock, &format!("{prefix}:huge")).await;
    long_idle(limiter, clock, &format!("{prefix}:idle")).await;
    cost_zero_peeks(limiter, clock, &format!("{prefix}:peek")).await;
    uneven_interval(limiter, clock, &format!("{prefix}:uneven")).await;
}

async fn burst_then_exact_retry_after(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    for i in 0..BURST {
        assert_eq!(
            check(l, key, 1, &p).await,
            allowed(BURST - 1 - i, T * (i + 1)),
            "request {i} of the burst"
        );
    }
    assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * BURST));
    // Denied requests spend nothing: asking again gives the same answer.
    assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * BURST));
    // One microsecond short of retry_after is still too early...
    clock.advance(T - US);
    assert_eq!(
        check(l, key, 1, &p).await,
        denied(0, US, T * (BURST - 1) + US)
    );
    // ...and exactly retry_after is enough.
    clock.advance(US);
    assert_eq!(check(l, key, 1, &p).await, allowed(0, T * BURST));
    assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * BURST));
}

async fn steady_rate(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    for _ in 0..BURST {
        assert!(check(l, key, 1, &p).await.allowed);
    }
    // Once the burst is spent: exactly one request per interval.
    let mut allowed_count = 0;
    for _ in 0..50 {
        clock.advance(T);
        let d = check(l, key, 1, &p).await;
        assert_eq!(d, allowed(0, T * BURST));
        allowed_count += 1;
        assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * BURST));
    }
    assert_eq!(allowed_count, 50);
    // Half an interval is half the wait.
    clock.advance(T / 2);
    assert_eq!(
        check(l, key, 1, &p).await,
        denied(0, T / 2, T * BURST - T / 2)
    );
    clock.advance(T / 2);
    assert!(check(l, key, 1, &p).await.allowed);
}

async fn independent_keys(l: &dyn Limiter, prefix: &str) {
    let p = policy();
    let (a, b) = (format!("{prefix}:a"), format!("{prefix}:b"));
    for _ in 0..BURST {
        assert!(check(l, &a, 1, &p).await.allowed);
    }
    assert!(!check(l, &a, 1, &p).await.allowed);
    assert_eq!(check(l, &b, 1, &p).await, allowed(BURST - 1, T));
    assert!(!check(l, &a, 1, &p).await.allowed);
}

async fn cost_above_one(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    assert_eq!(check(l, key, 2, &p).await, allowed(3, T * 2));
    assert_eq!(check(l, key, 3, &p).await, allowed(0, T * 5));
    assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * 5));
    clock.advance(T * 2);
    assert_eq!(check(l, key, 2, &p).await, allowed(0, T * 5));
    // One unit back, two needed: wait one more interval; nothing is spent.
    clock.advance(T);
    assert_eq!(check(l, key, 2, &p).await, denied(1, T, T * 4));
    assert_eq!(check(l, key, 1, &p).await, allowed(0, T * 5));
}

async fn cost_above_burst(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    // Never allowed, even on a full bucket; told to come back after one
    // interval rather than immediately.
    assert_eq!(
        check(l, key, BURST + 1, &p).await,
        denied(BURST, T, Duration::ZERO)
    );
    assert_eq!(check(l, key, 2, &p).await, allowed(3, T * 2));
    // Partly used: retry when the bucket is full again.
    assert_eq!(check(l, key, BURST + 1, &p).await, denied(3, T * 2, T * 2));
    assert_eq!(check(l, key, u32::MAX, &p).await, denied(3, T * 2, T * 2));
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        check(l, key, BURST + 1, &p).await,
        denied(BURST, T, Duration::ZERO)
    );
    // The denials spent nothing.
    assert_eq!(check(l, key, BURST, &p).await, allowed(0, T * BURST));
}

async fn long_idle(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    for _ in 0..BURST {
        assert!(check(l, key, 1, &p).await.allowed);
    }
    // A day of idling banks no more than one burst.
    clock.advance(Duration::from_secs(24 * 3600));
    for i in 0..BURST {
        assert_eq!(
            check(l, key, 1, &p).await,
            allowed(BURST - 1 - i, T * (i + 1))
        );
    }
    assert_eq!(check(l, key, 1, &p).await, denied(0, T, T * BURST));
}

async fn cost_zero_peeks(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    let p = policy();
    assert_eq!(check(l, key, 0, &p).await, allowed(BURST, Duration::ZERO));
    assert_eq!(check(l, key, BURST, &p).await, allowed(0, T * BURST));
    assert_eq!(check(l, key, 0, &p).await, allowed(0, T * BURST));
    clock.advance(T);
    assert_eq!(check(l, key, 0, &p).await, allowed(1, T * (BURST - 1)));
    assert_eq!(check(l, key, 1, &p).await, allowed(0, T * BURST));
}

async fn uneven_interval(l: &dyn Limiter, clock: &ManualClock, key: &str) {
    // 7 per minute: T = 60 s / 7 = 8.571428 s, truncated to microseconds.
    let p = Policy::new(7, 2).unwrap();
    let t = Duration::from_micros(8_571_428);
    assert_eq!(p.emission_interval(), t);
    let d = check(l, key, 1, &p).await;
    assert_eq!(
        (d.allowed, d.limit, d.remaining, d.reset_after),
        (true, 2, 1, t)
    );
    assert!(check(l, key, 1, &p).await.allowed);
    let d = check(l, key, 1, &p).await;
    assert_eq!((d.allowed, d.retry_after, d.reset_after), (false, t, t * 2));
    clock.advance(t - US);
    assert!(!check(l, key, 1, &p).await.allowed);
    clock.advance(US);
    assert!(check(l, key, 1, &p).await.allowed);
}
