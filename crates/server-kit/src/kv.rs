//! A small expiring key/value store: what the oauth-server's interactive
//! flow keeps between requests (authorization codes, refresh-token records,
//! consents, login sessions, dynamic registrations).
//!
//! Every entry has a TTL, so nothing grows without bound, and [`KvStore::take`]
//! is an atomic get-and-delete, so a single-use value (an authorization code,
//! a refresh token) can be redeemed exactly once even across replicas.
//! Values are opaque bytes; the typed layers above serialise them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::redis::Redis;
use crate::store::{StoreError, ttl_ms};

/// Expiring key/value entries (memory or Redis).
#[async_trait]
pub trait KvStore: Send + Sync {
    /// Sets `key` to `value` for `ttl`, replacing any previous value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    /// Sets `key` only if it holds no live value; returns whether it did.
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;
    /// The live value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Atomically returns and deletes the live value of `key` (single use).
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes `key` (no error when absent).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Atomically adds one to the counter at `key` and returns the new
    /// value; a counter that does not exist starts at 0 and lives for `ttl`
    /// from this first increment (later increments keep its expiry). Read it
    /// back with [`get`](Self::get) (decimal digits, as Redis stores it).
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;
}

/// Sweep expired entries every this many writes.
const SWEEP_EVERY: usize = 512;

/// In-process store; one lock, held for a map operation only (the
/// interactive flow is a few requests per sign-in, not a hot path).
#[derive(Default)]
pub struct MemoryKv {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    map: HashMap<String, (Vec<u8>, Instant)>,
    writes: usize,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryInner) -> R) -> Result<R, StoreError> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| StoreError::new("memory store lock poisoned"))?;
        Ok(f(&mut g))
    }
}

impl MemoryInner {
    fn live(&self, key: &str, now: Instant) -> bool {
        self.map.get(key).is_some_and(|(_, exp)| *exp > now)
    }

    fn write(&mut self, key: &str, value: &[u8], ttl: Duration, now: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.map.retain(|_, (_, exp)| *exp > now);
        }
        self.map.insert(key.to_owned(), (value.to_vec(), now + ttl));
    }
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.with(|m| m.write(key, value, ttl, Instant::now()))
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.with(|m| {
            let now = Instant::now();
            if m.live(key, now) {
                false
            } else {
                m.write(key, value, ttl, now);
                true
            }
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| {
            let now = Instant::now();
            m.map
                .get(key)
                .filter(|(_, exp)| *exp > now)
                .map(|(v, _)| v.clone())
        })
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| {
            let now = Instant::now();
            m.map
                .remove(key)
                .filter(|(_, exp)| *exp > now)
                .map(|(v, _)| v)
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.map.remove(key);
        })
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.with(|m| {
            let now = Instant::now();
            let live = m.map.get(key).filter(|(_, exp)| *exp > now);
            let (current, exp) = match live {
                Some((v, exp)) => {
                    let n = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| StoreError::new("value is not a counter"))?;
                    (n, *exp)
                }
                None => (0, now + ttl),
            };
            let next = current.saturating_add(1);
            m.write(
                key,
                next.to_string().as_bytes(),
                exp.saturating_duration_since(now),
                now,
            );
            Ok(next)
        })?
    }
}

/// Redis store: plain string keys with `PX` expiry; `take` is `GETDEL`
/// (Redis ≥ 6.2), atomic across every replica; `incr` is one script so a
/// counter never exists without its expiry. Every command goes through the
/// process's [`Redis`] handle (refused at once while Redis is known to be
/// down).
#[derive(Clone)]
pub struct RedisKv {
    redis: Redis,
}

impl RedisKv {
    /// The store on the process's Redis handle.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.redis.query(&cmd).await.map_err(err)
    }
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::new(e.to_string())
}

#[async_trait]
impl KvStore for RedisKv {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_ms(ttl));
        self.query(cmd).await
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_ms(ttl));
        let set: Option<String> = self.query(cmd).await?;
        Ok(set.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.query(cmd).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(key);
        self.query(cmd).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        self.query(cmd).await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let script = redis::Script::new(INCR_SCRIPT);
        let mut invocation = script.key(key);
        invocation.arg(ttl_ms(ttl));
        self.redis.invoke(&invocation).await.map_err(err)
    }
}

/// INCR, and PEXPIRE when the counter was just created.
const INCR_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

#[cfg(test)]
mod tests {
    use super::*;

    /// One behavioural suite for both back ends.
    async fn suite(kv: &dyn KvStore) {
        let ttl = Duration::from_secs(60);
        assert_eq!(kv.get("a").await.unwrap(), None);
        kv.put("a", b"1", ttl).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        kv.put("a", b"2", ttl).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert!(!kv.put_new("a", b"3", ttl).await.unwrap());
        assert!(kv.put_new("b", b"3", ttl).await.unwrap());
        assert_eq!(kv.take("b").await.unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(kv.take("b").await.unwrap(), None, "take is single use");
        kv.delete("a").await.unwrap();
        kv.delete("a").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), None);
        kv.put("short", b"x", Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(kv.get("short").await.unwrap(), None, "entries expire");
        assert_eq!(kv.take("short").await.unwrap(), None);
        assert!(kv.put_new("short", b"y", ttl).await.unwrap());
        assert_eq!(kv.incr("n", ttl).await.unwrap(), 1);
        assert_eq!(kv.incr("n", ttl).await.unwrap(), 2);
        assert_eq!(kv.get("n").await.unwrap().as_deref(), Some(&b"2"[..]));
        kv.incr("brief", Duration::from_millis(80)).await.unwrap();
        // Later increments keep the first expiry.
        assert_eq!(kv.incr("brief", Duration::from_secs(60)).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(160)).await;
        assert_eq!(kv.get("brief").await.unwrap(), None, "counters expire");
        assert_eq!(kv.incr("brief", ttl).await.unwrap(), 1, "and restart at 1");
        kv.put("text", b"x", ttl).await.unwrap();
        assert!(kv.incr("text", ttl).await.is_err(), "only counters count");
    }

    #[tokio::test]
    async fn memory_kv() {
        suite(&MemoryKv::new()).await;
    }

    #[tokio::test]
    async fn redis_kv() {
        let Some(redis) = testkit::RedisServer::start() else {
            return;
        };
        let handle = crate::redis::connect(&crate::redis::RedisSettings::at(redis.url()))
            .unwrap()
            .unwrap();
        handle.first_probe().await;
        suite(&RedisKv::new(handle.clone())).await;
        // A command error (WRONGTYPE above) is not a connection failure.
        assert!(handle.is_up());
        assert_eq!(handle.commands_refused(), 0);
    }

    #[tokio::test]
    async fn redis_cluster_kv() {
        let Some(cluster) = testkit::RedisCluster::start() else {
            return;
        };
        let handle = crate::redis::connect(&crate::redis::RedisSettings::cluster(cluster.urls()))
            .unwrap()
            .unwrap();
        handle.first_probe().await;
        suite(&RedisKv::new(handle.clone())).await;
        assert!(handle.is_up());
        assert_eq!(handle.commands_refused(), 0);
    }
}
