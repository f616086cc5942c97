//! The suite and concurrency checks against `MemoryLimiter`.

use std::sync::Arc;
use std::time::Duration;

use ratelimit::{Limiter, ManualClock, MemoryLimiter, Policy};

use crate::suite::gcra_suite;

#[tokio::test]
async fn gcra_suite_on_memory() {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = MemoryLimiter::with_clock(clock.clone());
    gcra_suite(&limiter, &clock, "mem").await;
}

#[tokio::test]
async fn gcra_suite_on_memory_with_one_shard() {
    // Every key in one shard: sharding must not change the answers.
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = MemoryLimiter::with_clock_and_shards(clock.clone(), 1);
    gcra_suite(&limiter, &clock, "mem1").await;
}

/// 64 tasks hammering one key never get more than the budget: the read and
/// the write of a check cannot interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_never_exceed_the_budget() {
    let limiter: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new());
    // 1 per minute: nothing comes back while the test runs.
    let policy = Policy::new(1, 10).unwrap();
    let allowed = hammer(limiter, policy, 64, 50).await;
    assert_eq!(allowed, 10);
}

/// Spawns `tasks` tasks doing `per_task` unit checks on one key; returns how
/// many were allowed.
pub async fn hammer(
    limiter: Arc<dyn Limiter>,
    policy: Policy,
    tasks: usize,
    per_task: usize,
) -> usize {
    let start = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let limiter = limiter.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut allowed = 0;
                for _ in 0..per_task {
                    if limiter.check("hot", 1, &policy).await.unwrap().allowed {
                        allowed += 1;
                    }
                }
                allowed
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total
}
