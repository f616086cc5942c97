//! The same GCRA suite on a real Redis Cluster (3 masters + 3 replicas):
//! the script touches one key, so the cluster client routes it to that
//! key's slot and every decision is the single-Redis one.

use std::sync::Arc;
use std::time::Duration;

use ratelimit::{Limiter, ManualClock, Policy, RedisLimiter};
use redis::cluster_async::ClusterConnection;
use testkit::RedisCluster;

use crate::memory::hammer;
use crate::suite::gcra_suite;
use crate::support::{TEST_REDIS_TIMEOUT, check};

fn cluster_limiter(cluster: &RedisCluster) -> RedisLimiter<ClusterConnection> {
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisLimiter::connect_cluster(&seeds, TEST_REDIS_TIMEOUT).unwrap()
}

#[tokio::test]
async fn gcra_suite_on_redis_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let limiter = cluster_limiter(&cluster).with_clock(clock.clone());
    limiter.ping().await.unwrap();
    gcra_suite(&limiter, &clock, "rl:suite").await;
    // The suite's keys spread over the masters: the script ran on more than one.
    let masters: Vec<u16> = ["burst", "steady", "cost", "huge", "idle", "peek", "uneven"]
        .iter()
        .map(|k| format!("rl:suite:{k}"))
        .map(|k| cluster.master_of(&k))
        .collect();
    assert!(masters.iter().any(|m| *m != masters[0]), "{masters:?}");
}

/// Two replicas (two cluster connections) share one budget, and concurrent
/// checks never exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_budget_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let a = cluster_limiter(&cluster);
    let b = cluster_limiter(&cluster);
    let policy = Policy::new(1, 4).unwrap();
    let mut allowed = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        allowed += usize::from(check(limiter, "rl:shared", 1, &policy).await.allowed);
    }
    assert_eq!(allowed, 4);
    let limiter: Arc<dyn Limiter> = Arc::new(a);
    assert_eq!(
        hammer(limiter, Policy::new(1, 10).unwrap(), 64, 20).await,
        10
    );
}
