//! Throughput and latency of `check()`: in memory, and on a loopback
//! `redis-server` started by testkit (skipped when not installed).
//!
//! `cargo bench -p ratelimit` (release build). Prints one line per scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ratelimit::{Limiter, MemoryLimiter, Policy, RedisLimiter};

const KEYS: usize = 10_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("rl:client-{i}")).collect()
}

/// Every check is allowed and updates a key that stays stored (the common
/// case: known clients within their budget).
fn policy() -> Policy {
    Policy::new(60, 1_000_000).unwrap()
}

/// Every check finds its key's bucket full again: the key was dropped (or is
/// about to be) and is inserted anew, which includes the amortised sweeps.
fn churn_policy() -> Policy {
    Policy::new(60_000_000, 1).unwrap()
}

fn memory_single_thread(name: &str, policy: Policy) {
    let limiter = MemoryLimiter::new();
    let keys = keys();
    let n = 5_000_000;
    let start = Instant::now();
    let mut allowed = 0u64;
    for i in 0..n {
        allowed += u64::from(limiter.check_now(&keys[i % KEYS], 1, &policy).allowed);
    }
    let elapsed = start.elapsed();
    report(name, n, elapsed, allowed);
}

fn memory_threads(threads: usize) {
    let limiter = Arc::new(MemoryLimiter::new());
    let keys = Arc::new(keys());
    let policy = policy();
    let per_thread = 2_000_000;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut allowed = 0u64;
                for i in 0..per_thread {
                    let key = &keys[(i * 7 + t * 13) % KEYS];
                    allowed += u64::from(limiter.check_now(key, 1, &policy).allowed);
                }
                allowed
            })
        })
        .collect();
    let allowed = handles.into_iter().map(|h| h.join().unwrap()).sum();
    report(
        &format!("memory, {threads} threads"),
        per_thread * threads,
        start.elapsed(),
        allowed,
    );
}

async fn redis_sequential(limiter: &RedisLimiter) {
    let keys = keys();
    let policy = policy();
    // Warm up: connect and load the script.
    limiter.check("warm", 1, &policy).await.unwrap();
    let n = 20_000;
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let start = Instant::now();
    let mut allowed = 0u64;
    for i in 0..n {
        let t = Instant::now();
        allowed += u64::from(
            limiter
                .check(&keys[i % KEYS], 1, &policy)
                .await
                .unwrap()
                .allowed,
        );
        hist.record(u64::try_from(t.elapsed().as_nanos()).unwrap())
            .unwrap();
    }
    report("redis, 1 in flight", n, start.elapsed(), allowed);
    println!(
        "    latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
}

/// `tasks` checks in flight, spread over `key_count` keys (10,000: every
/// check has its key to itself; 1: one busy client, whose checks go out in
/// batches).
async fn redis_concurrent(
    limiter: &RedisLimiter,
    server: &testkit::RedisServer,
    tasks: usize,
    key_count: usize,
) {
    let keys: Vec<String> = keys().into_iter().take(key_count).collect();
    let keys = Arc::new(keys);
    let calls_before = server.command_calls("evalsha");
    let policy = policy();
    let per_task = 200_000 / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            tokio::spawn(async move {
                let mut allowed = 0u64;
                for i in 0..per_task {
                    let key = &keys[(i * tasks + t) % keys.len()];
                    allowed += u64::from(limiter.check(key, 1, &policy).await.unwrap().allowed);
                }
                allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for h in handles {
        allowed += h.await.unwrap();
    }
    let elapsed = start.elapsed();
    let calls = server.command_calls("evalsha") - calls_before;
    let what = if key_count == 1 {
        "one key"
    } else {
        "one key each"
    };
    report(
        &format!("redis, {tasks} in flight, {what}"),
        per_task * tasks,
        elapsed,
        allowed,
    );
    println!(
        "    {calls} EVALSHA for {} checks ({:.1} checks per call)",
        per_task * tasks,
        (per_task * tasks) as f64 / calls.max(1) as f64
    );
}

fn report(name: &str, n: usize, elapsed: Duration, allowed: u64) {
    let per_sec = n as f64 / elapsed.as_secs_f64();
    let ns = elapsed.as_nanos() as f64 / n as f64;
    println!("{name:<50} {per_sec:>12.0} checks/s  {ns:>9.0} ns/check  ({allowed} of {n} allowed)");
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("limiter bench: run with `cargo bench -p ratelimit`");
        return;
    }
    // `cargo bench -p ratelimit -- memory` (or `redis`) runs one half.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    if "memory".contains(filter.as_str()) {
        memory_single_thread("memory, 1 thread", policy());
        memory_single_thread("memory, 1 thread, keys re-inserted", churn_policy());
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        memory_threads(cpus);
    }
    if !"redis".contains(filter.as_str()) {
        return;
    }

    let Some(server) = testkit::RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limiter = RedisLimiter::connect(&server.url(), Duration::from_secs(1))
            .await
            .unwrap();
        redis_sequential(&limiter).await;
        for tasks in [16, 64, 256] {
            redis_concurrent(&limiter, &server, tasks, KEYS).await;
        }
        for tasks in [16, 64] {
            redis_concurrent(&limiter, &server, tasks, 1).await;
        }
    });
}
