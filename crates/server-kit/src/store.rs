//! Short-lived security state shared between requests (and, with Redis,
//! between processes): revoked token ids and used client-assertion ids.
//!
//! Both are "remember this key until it expires" sets, so one trait pair and
//! two back ends cover them. Entries carry their own TTL, so neither store
//! grows without bound.
//!
//! With Redis, a revocation is the key `{revoked}:<jti>` and, in the same
//! `MULTI`, a [`RevocationNotice`] published on [`REVOCATION_CHANNEL`]: each
//! mcp-server replica keeps the live set in memory from that channel
//! ([`crate::revocations`]).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::redis::Redis;

/// Prefix of the denylist keys: `{revoked}:<jti>`, expiring with the token.
///
/// `{revoked}` is a Redis Cluster hash tag shared by every entry, so the
/// whole denylist lives in one slot, on one shard: the mirror's rebuild is
/// then one `SCAN` of that shard's master (a cluster `SCAN` covers one node)
/// and its `PTTL` pipeline stays in one slot. That shard carries it easily:
/// entries are few (explicit revocations only) and short-lived (a token's
/// remaining life, 15 min by default), and the hot path never reads them
/// (each mcp-server replica answers from memory).
pub const REVOKED_KEY_PREFIX: &str = "{revoked}:";
/// The Redis channel every revocation is published on (one
/// [`RevocationNotice`] per message). It carries the denylist's hash tag:
/// the cluster client routes a `PUBLISH` by its channel's slot, and the
/// `PUBLISH` shares a `MULTI` with the denylist key (a classic `PUBLISH`
/// still reaches subscribers on every node).
pub const REVOCATION_CHANNEL: &str = "secure-mcp:{revoked}:notices";

/// The denylist key of `jti`.
pub fn revoked_key(jti: &str) -> String {
    format!("{REVOKED_KEY_PREFIX}{jti}")
}

/// What is published on [`REVOCATION_CHANNEL`]: the revoked `jti` and how
/// long it stays revoked (the key's TTL; relative, so replicas with skewed
/// clocks agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationNotice {
    pub jti: String,
    pub ttl_ms: u64,
}

/// A store operation failed (Redis unreachable, timed out, ...).
#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Revoked access tokens, by `jti` (RFC 7009).
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Remembers `jti` as revoked for `ttl` (the token's remaining life).
    async fn revoke(&self, jti: &str, ttl: Duration) -> Result<(), StoreError>;
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
}

/// Single-use identifiers (client-assertion `jti`s, RFC 7523 §3).
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `id` for `ttl`; returns false if it was already recorded.
    async fn first_use(&self, id: &str, ttl: Duration) -> Result<bool, StoreError>;
}

const SHARDS: usize = 16;
/// Each shard drops expired entries every this many inserts.
const SWEEP_EVERY: usize = 256;

/// In-process store: sharded maps of key → expiry. Checking an empty store
/// (the common case for revocation) takes no lock at all.
pub struct MemoryStore {
    shards: [Mutex<Shard>; SHARDS],
    len: AtomicUsize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Instant>,
    inserts: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            len: AtomicUsize::new(0),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Inserts unless a live entry exists; returns whether it inserted.
    fn insert_if_absent(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let Ok(mut shard) = self.shard(key).lock() else {
            return false;
        };
        shard.inserts += 1;
        if shard.inserts.is_multiple_of(SWEEP_EVERY) {
            let before = shard.map.len();
            shard.map.retain(|_, exp| *exp > now);
            self.len
                .fetch_sub(before - shard.map.len(), Ordering::Relaxed);
        }
        let map = &mut shard.map;
        match map.get(key) {
            Some(exp) if *exp > now => false,
            Some(_) => {
                map.insert(key.to_owned(), now + ttl);
                true
            }
            None => {
                map.insert(key.to_owned(), now + ttl);
                self.len.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// Remembers `key` until `ttl` from now (a later expiry wins).
    pub(crate) fn insert_until(&self, key: &str, ttl: Duration) {
        if !self.insert_if_absent(key, ttl)
            && let Ok(mut shard) = self.shard(key).lock()
            && let Some(exp) = shard.map.get_mut(key)
        {
            *exp = (*exp).max(Instant::now() + ttl);
        }
    }

    /// Whether `key` is held and not expired.
    pub(crate) fn contains_live(&self, key: &str) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let Ok(shard) = self.shard(key).lock() else {
            return false;
        };
        shard.map.get(key).is_some_and(|exp| *exp > Instant::now())
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn revoke(&self, jti: &str, ttl: Duration) -> Result<(), StoreError> {
        self.insert_if_absent(jti, ttl);
        Ok(())
    }
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.contains_live(jti))
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn first_use(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.insert_if_absent(id, ttl))
    }
}

/// Redis store: `{revoked}:<jti>` and `used:<id>` keys with `PX` expiry, so
/// every oauth-server and mcp-server replica sees the same state and it
/// survives restarts of either. Every command goes through the process's
/// [`Redis`] handle (refused at once while Redis is known to be down).
#[derive(Clone)]
pub struct RedisStore {
    redis: Redis,
}

impl RedisStore {
    /// The store on the process's Redis handle.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

#[async_trait]
impl RevocationStore for RedisStore {
    /// `SET {revoked}:<jti> 1 PX ttl` and `PUBLISH` of the notice, in one
    /// `MULTI`: a replica that misses the message (not subscribed yet)
    /// finds the key in its next scan.
    async fn revoke(&self, jti: &str, ttl: Duration) -> Result<(), StoreError> {
        let key = revoked_key(jti);
        let ttl_ms = ttl_ms(ttl);
        let notice = serde_json::to_string(&RevocationNotice {
            jti: jti.to_owned(),
            ttl_ms,
        })
        .map_err(|e| StoreError(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("PUBLISH")
            .arg(REVOCATION_CHANNEL)
            .arg(&notice)
            .ignore();
        self.redis.query_pipe::<()>(&pipe).await.map_err(err)
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(revoked_key(jti));
        self.redis.query::<bool>(&cmd).await.map_err(err)
    }
}

#[async_trait]
impl ReplayStore for RedisStore {
    async fn first_use(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("used:{id}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl));
        let set: Option<String> = self.redis.query(&cmd).await.map_err(err)?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One behavioural suite for both back ends.
    async fn suite(revocations: &dyn RevocationStore, replays: &dyn ReplayStore) {
        assert!(!revocations.is_revoked("a").await.unwrap());
        revocations
            .revoke("a", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(revocations.is_revoked("a").await.unwrap());
        assert!(!revocations.is_revoked("b").await.unwrap());
        revocations
            .revoke("short", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(revocations.is_revoked("short").await.unwrap());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            !revocations.is_revoked("short").await.unwrap(),
            "entries expire with their TTL"
        );

        assert!(
            replays
                .first_use("c:j1", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            !replays
                .first_use("c:j1", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            replays
                .first_use("c:j2", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            replays
                .first_use("c:j3", Duration::from_millis(50))
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            replays
                .first_use("c:j3", Duration::from_secs(60))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn memory_store() {
        let s = MemoryStore::new();
        suite(&s, &s).await;
    }

    #[tokio::test]
    async fn memory_store_sweeps() {
        let s = MemoryStore::new();
        for i in 0..5000 {
            s.first_use(&format!("k{i}"), Duration::from_nanos(1))
                .await
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
        for i in 0..5000 {
            s.first_use(&format!("n{i}"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            s.len.load(Ordering::Relaxed) < 6_500,
            "expired entries are swept"
        );
    }

    #[tokio::test]
    async fn redis_store() {
        let Some(redis) = testkit::RedisServer::start() else {
            return;
        };
        let handle = crate::redis::connect(&crate::redis::RedisSettings::at(redis.url()))
            .unwrap()
            .unwrap();
        handle.first_probe().await;
        let s = RedisStore::new(handle);
        suite(&s, &s).await;
    }

    #[tokio::test]
    async fn redis_cluster_store() {
        let Some(cluster) = testkit::RedisCluster::start() else {
            return;
        };
        let handle = crate::redis::connect(&crate::redis::RedisSettings::cluster(cluster.urls()))
            .unwrap()
            .unwrap();
        handle.first_probe().await;
        let s = RedisStore::new(handle);
        suite(&s, &s).await;
        // Every denylist entry sits in the `{revoked}` slot, on one master.
        let master = cluster.master_of(REVOKED_KEY_PREFIX);
        assert_eq!(cluster.master_of(&revoked_key("a")), master);
        assert_eq!(
            cluster
                .command(master, &["EXISTS", &revoked_key("a")])
                .unwrap(),
            "1"
        );
    }
}
