//! The revoked-token set a resource server (mcp-server) checks on every
//! request, held in memory and kept in step with Redis by push.
//!
//! The oauth-server writes `{revoked}:<jti>` and publishes a
//! [`RevocationNotice`] on [`REVOCATION_CHANNEL`] in the same `MULTI`
//! ([`RedisStore::revoke`](crate::store::RedisStore)). Each replica's
//! [`RevocationMirror`] runs one background task that, on every (re)connect:
//!
//! 1. opens its own pub/sub connection and subscribes to the channel,
//! 2. then `SCAN`s `{revoked}:*` (with each key's `PTTL`) into the set —
//!    subscribing first means a revocation published during the scan is
//!    either in the scan or waiting in the subscription, never lost,
//! 3. then applies each notice as it arrives, and `PING`s the subscription
//!    every [`HEALTH_CHECK_EVERY`] so a hung Redis is noticed too.
//!
//! In a Redis Cluster the subscription is a plain connection to one node (a
//! classic `PUBLISH` is broadcast to every node, replicas included); when
//! that node fails, the next attempt starts at the next seed node of
//! `REDIS_CLUSTER_NODES`, and rescans. The denylist sits under one hash tag,
//! so the scan is one `SCAN` on the master of that slot, wherever a
//! failover has moved it ([`Redis::query_on_shard_of`]).
//!
//! [`RevocationStore::is_revoked`] reads memory only: no Redis round trip on
//! the request path. While the subscription is down the set is *stale*: the
//! replica keeps answering from it, audits `revocation.stale` once per
//! outage, and only when it has been stale for longer than the allowed
//! staleness (`REVOCATION_MAX_STALENESS_SECS`, default the access-token
//! lifetime) does `is_revoked` fail for tokens it does not know, so the
//! caller applies `REVOCATION_FAILURE_MODE`. A replica that has never
//! synchronised (started during an outage) counts as past that limit: it
//! knows nothing of the revocations made before it started. A jti in the
//! set is refused whatever the staleness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use auth::audit::{AuditEvent, names, outcome};
use futures::StreamExt;
use redis::RedisResult;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::redis::{HEALTH_CHECK_EVERY, MAX_BACKOFF, MIN_BACKOFF, Redis};
use crate::store::{
    MemoryStore, REVOCATION_CHANNEL, REVOKED_KEY_PREFIX, RedisStore, RevocationNotice,
    RevocationStore, StoreError,
};

/// Where the mirror's audit events go (the server's audit ring).
pub type AuditSink = Arc<dyn Fn(AuditEvent<'static>) + Send + Sync>;

/// Keys read per `SCAN` step.
const SCAN_COUNT: usize = 500;

/// `stale_since_us` when the subscription is live.
const FRESH: u64 = u64::MAX;
/// `stale_since_us` before the first synchronisation.
const NEVER: u64 = u64::MAX - 1;

/// How in step the set is with Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Subscribed and scanned; notices arrive as published.
    pub live: bool,
    /// Completed synchronisations (subscribe + scan) so far.
    pub syncs: u64,
    /// Synchronisation attempts so far (successful or not).
    pub attempts: u64,
    /// Entries the last scan found.
    pub scanned: u64,
}

/// The in-memory revoked set of one replica, fed from Redis (see the module
/// docs).
#[derive(Clone)]
pub struct RevocationMirror {
    shared: Arc<Shared>,
}

struct Shared {
    set: MemoryStore,
    redis: Redis,
    writer: RedisStore,
    max_staleness: Duration,
    /// Microseconds since `epoch` when the set went stale; [`FRESH`] or [`NEVER`].
    stale_since_us: AtomicU64,
    epoch: Instant,
    status: watch::Sender<SyncStatus>,
    audit: AuditSink,
}

impl std::fmt::Debug for RevocationMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationMirror")
            .field("status", &*self.shared.status.borrow())
            .field("max_staleness", &self.shared.max_staleness)
            .finish_non_exhaustive()
    }
}

impl RevocationMirror {
    /// Starts the mirror of `redis`'s denylist; its task ends when `stop` is
    /// cancelled. `max_staleness` is how long the set is trusted without
    /// the subscription.
    pub fn start(
        redis: Redis,
        max_staleness: Duration,
        audit: AuditSink,
        stop: CancellationToken,
    ) -> Self {
        let (status, _) = watch::channel(SyncStatus::default());
        let shared = Arc::new(Shared {
            set: MemoryStore::new(),
            writer: RedisStore::new(redis.clone()),
            redis,
            max_staleness,
            stale_since_us: AtomicU64::new(NEVER),
            epoch: Instant::now(),
            status,
            audit,
        });
        tokio::spawn(sync_loop(Arc::downgrade(&shared), stop));
        Self { shared }
    }

    /// The synchronisation state, to wait for a change.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// True while the subscription is live.
    pub fn is_live(&self) -> bool {
        self.shared.stale_since_us.load(Ordering::Acquire) == FRESH
    }

    /// Waits until the first synchronisation attempt has finished (either
    /// way), at most a few Redis timeouts.
    pub async fn first_attempt(&self) {
        let mut status = self.status();
        let bound = self.shared.redis.timeout() * 6 + Duration::from_millis(200);
        let _ = tokio::time::timeout(bound, status.wait_for(|s| s.attempts > 0)).await;
    }
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(NEVER - 1)
    }

    /// Whether the set may still be trusted for a jti it does not hold.
    fn trusted(&self) -> bool {
        match self.stale_since_us.load(Ordering::Acquire) {
            FRESH => true,
            NEVER => false,
            since => {
                Duration::from_micros(self.now_us().saturating_sub(since)) <= self.max_staleness
            }
        }
    }

    fn apply(&self, notice: &RevocationNotice) {
        self.set
            .insert_until(&notice.jti, Duration::from_millis(notice.ttl_ms));
    }

    /// The subscription is live and the scan done.
    fn mark_live(&self, scanned: u64, outage: &mut bool) {
        self.stale_since_us.store(FRESH, Ordering::Release);
        self.status.send_modify(|s| {
            s.live = true;
            s.syncs += 1;
            s.scanned = scanned;
        });
        if std::mem::take(outage) {
            tracing::info!(
                revoked = scanned,
                "revocation set synchronised with Redis again"
            );
            (self.audit)(
                AuditEvent::new(names::REVOCATION_SYNCED, outcome::OK).reason("resubscribed"),
            );
        }
    }

    /// The subscription is gone (or could not be made): stale from now on
    /// unless it already was; audited once per outage.
    fn mark_stale(&self, error: &dyn std::fmt::Display, outage: &mut bool) {
        let now = self.now_us();
        let _ =
            self.stale_since_us
                .compare_exchange(FRESH, now, Ordering::AcqRel, Ordering::Acquire);
        self.status.send_modify(|s| s.live = false);
        if !*outage {
            *outage = true;
            let never = self.stale_since_us.load(Ordering::Acquire) == NEVER;
            tracing::warn!(
                error = %error,
                max_staleness_secs = self.max_staleness.as_secs(),
                "revocation set not synchronised with Redis; serving from memory"
            );
            (self.audit)(
                AuditEvent::new(names::REVOCATION_STALE, outcome::DEGRADED).reason(if never {
                    "never_synchronised"
                } else {
                    "subscription_lost"
                }),
            );
        }
    }
}

#[async_trait]
impl RevocationStore for RevocationMirror {
    /// Remembers it here at once and writes (and publishes) it to Redis.
    async fn revoke(&self, jti: &str, ttl: Duration) -> Result<(), StoreError> {
        self.shared.set.insert_until(jti, ttl);
        self.shared.writer.revoke(jti, ttl).await
    }

    /// Memory only. Fails (so the caller applies its failure mode) only for
    /// a jti it does not hold while the set is stale for longer than allowed.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        if self.shared.set.contains_live(jti) {
            return Ok(true);
        }
        if self.shared.trusted() {
            Ok(false)
        } else {
            Err(StoreError::new(
                "the revocation set has not been synchronised with Redis within \
                 REVOCATION_MAX_STALENESS_SECS",
            ))
        }
    }
}

/// (Re)subscribes, rescans and follows the channel until `stop`.
async fn sync_loop(shared: Weak<Shared>, stop: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    let mut outage = false;
    // The node (index into the subscriber clients) tried first.
    let mut node = 0usize;
    loop {
        let Some(mirror) = shared.upgrade() else {
            return;
        };
        let subscribed = tokio::select! {
            r = subscribe_and_scan(&mirror, &mut node) => r,
            () = stop.cancelled() => return,
        };
        let lost = match subscribed {
            Ok((pubsub, scanned)) => {
                mirror.mark_live(scanned, &mut outage);
                // Counted after the state is set: `first_attempt` waiters see it.
                mirror.status.send_modify(|s| s.attempts += 1);
                backoff = MIN_BACKOFF;
                let timeout = mirror.redis.timeout();
                drop(mirror);
                let lost = follow(&shared, pubsub, timeout, &stop).await;
                match shared.upgrade() {
                    Some(m) if !stop.is_cancelled() => {
                        // The subscription's connection died: the shared
                        // connection most likely did too; stop waiting on it.
                        m.redis.report_failure();
                        m.mark_stale(&lost, &mut outage);
                        // Its node may be gone for good (a failed cluster
                        // node): start at the next one.
                        node = node.wrapping_add(1);
                    }
                    _ => return,
                }
                lost
            }
            Err(e) => {
                mirror.mark_stale(&e, &mut outage);
                mirror.status.send_modify(|s| s.attempts += 1);
                e.to_string()
            }
        };
        tracing::debug!(error = %lost, ?backoff, "revocation subscription down; retrying");
        // Retry after the backoff, or as soon as the prober finds Redis up
        // again (the scan goes through the breaker).
        let Some(mut health) = shared.upgrade().map(|m| m.redis.health()) else {
            return;
        };
        health.borrow_and_update();
        let comes_up = async {
            // A change to "up" (not the current state: a subscription can
            // fail while the shared connection is up, and must back off).
            while health.changed().await.is_ok() {
                if health.borrow_and_update().up {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = comes_up => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Subscribes on a connection of its own, then scans the denylist into the
/// set. The subscription goes to the first node, from `*node` on, that
/// accepts it; `*node` is left at that one.
async fn subscribe_and_scan(
    mirror: &Shared,
    node: &mut usize,
) -> RedisResult<(redis::aio::PubSub, u64)> {
    let timeout = mirror.redis.timeout();
    let clients = mirror.redis.subscriber_clients();
    let mut last = None;
    for i in 0..clients.len() {
        let at = (*node + i) % clients.len();
        match subscribe(&clients[at], timeout).await {
            Ok(pubsub) => {
                *node = at;
                let scanned = scan(mirror).await?;
                return Ok((pubsub, scanned));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Io, "no Redis node to subscribe on"))
    }))
}

/// A pub/sub connection to `client`'s node, subscribed to the channel.
async fn subscribe(client: &redis::Client, timeout: Duration) -> RedisResult<redis::aio::PubSub> {
    let bounded =
        |what: &'static str| move |_| redis::RedisError::from((redis::ErrorKind::Io, what));
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(bounded("connecting the revocation subscription timed out"))??;
    tokio::time::timeout(timeout, pubsub.subscribe(REVOCATION_CHANNEL))
        .await
        .map_err(bounded("subscribing to revocations timed out"))??;
    Ok(pubsub)
}

/// Every live `{revoked}:*` key with its remaining TTL, into the set: one
/// shard holds them all (see [`REVOKED_KEY_PREFIX`]), so one `SCAN` on it
/// covers the denylist in cluster mode too.
async fn scan(mirror: &Shared) -> RedisResult<u64> {
    let pattern = format!("{REVOKED_KEY_PREFIX}*");
    let mut cursor: u64 = 0;
    let mut found = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, keys): (u64, Vec<String>) = mirror
            .redis
            .query_on_shard_of(REVOKED_KEY_PREFIX, &cmd)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("PTTL").arg(key);
            }
            let ttls: Vec<i64> = mirror.redis.query_pipe(&pipe).await?;
            for (key, ttl) in keys.iter().zip(ttls) {
                // -2: gone since the SCAN; -1: no expiry (not ours; keep it
                // for the longest a token lives after the fact).
                let ttl = match ttl {
                    -1 => mirror.max_staleness,
                    t if t > 0 => Duration::from_millis(t.unsigned_abs()),
                    _ => continue,
                };
                if let Some(jti) = key.strip_prefix(REVOKED_KEY_PREFIX) {
                    mirror.set.insert_until(jti, ttl);
                    found += 1;
                }
            }
        }
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Applies notices until the subscription ends, a `PING` on it fails, or
/// `stop`; returns why it ended.
async fn follow(
    shared: &Weak<Shared>,
    pubsub: redis::aio::PubSub,
    timeout: Duration,
    stop: &CancellationToken,
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut tick = tokio::time::interval(HEALTH_CHECK_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return "stopped".to_owned(),
            message = stream.next() => {
                let Some(message) = message else {
                    return "the subscription's connection closed".to_owned();
                };
                let Some(mirror) = shared.upgrade() else {
                    return "stopped".to_owned();
                };
                match message
                    .get_payload::<String>()
                    .ok()
                    .and_then(|p| serde_json::from_str::<RevocationNotice>(&p).ok())
                {
                    Some(notice) => mirror.apply(&notice),
                    None => tracing::warn!("ignored a malformed message on the revocation channel"),
                }
            }
            _ = tick.tick() => {
                if shared.strong_count() == 0 {
                    return "stopped".to_owned();
                }
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("PING on the subscription failed: {e}"),
                    Err(_) => return "PING on the subscription timed out".to_owned(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{RedisSettings, connect};
    use std::sync::Mutex;

    fn sink() -> (AuditSink, Arc<Mutex<Vec<&'static str>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Arc::new(move |e: AuditEvent<'static>| s.lock().unwrap().push(e.event)),
            seen,
        )
    }

    async fn wait_until(what: &str, f: impl FnMut() -> bool) {
        wait_up_to(Duration::from_secs(10), what, f).await;
    }

    /// [`wait_until`] with a longer bound: a cluster failover on a loaded
    /// CI machine (node timeout, election, the client's slot refresh).
    async fn wait_up_to(bound: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + bound;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn follows_publications_and_scans_on_reconnect() {
        let Some(mut server) = testkit::RedisServer::start() else {
            return;
        };
        let redis = connect(&RedisSettings::at(server.url())).unwrap().unwrap();
        redis.first_probe().await;
        // Revoked before the mirror exists: found by the first scan.
        let writer = RedisStore::new(redis.clone());
        writer
            .revoke("before", Duration::from_secs(60))
            .await
            .unwrap();
        let (audit, seen) = sink();
        let stop = CancellationToken::new();
        let mirror =
            RevocationMirror::start(redis.clone(), Duration::from_secs(900), audit, stop.clone());
        mirror.first_attempt().await;
        assert!(mirror.is_live());
        assert_eq!(mirror.status().borrow().scanned, 1);
        assert!(mirror.is_revoked("before").await.unwrap());
        assert!(!mirror.is_revoked("other").await.unwrap());

        // Published while subscribed: pushed, no scan.
        writer
            .revoke("pushed", Duration::from_secs(60))
            .await
            .unwrap();
        let m = mirror.clone();
        let mut n = 0;
        while !m.is_revoked("pushed").await.unwrap() {
            n += 1;
            assert!(n < 500, "the notice never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(mirror.status().borrow().syncs, 1);

        // Outage: served from memory, audited once.
        server.stop();
        wait_until("the mirror to notice", || !mirror.is_live()).await;
        assert!(mirror.is_revoked("before").await.unwrap());
        assert!(!mirror.is_revoked("other").await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*seen.lock().unwrap(), vec![names::REVOCATION_STALE]);

        // Back (empty, as after a crash without persistence): a revocation
        // written while the mirror is not yet subscribed is found by the rescan.
        server.restart();
        let raw = redis::Client::open(server.url()).unwrap();
        let mut c = raw.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("SET")
            .arg("{revoked}:while-down")
            .arg(1)
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut c)
            .await
            .unwrap();
        wait_until("the resync", || mirror.is_live()).await;
        assert!(mirror.is_revoked("while-down").await.unwrap());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![names::REVOCATION_STALE, names::REVOCATION_SYNCED]
        );
        stop.cancel();
    }

    /// Cluster mode: the subscription is on the first seed node; when that
    /// node dies the mirror goes stale, moves to another node once the
    /// cluster has healed, rescans, and follows publications again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_follows_publications_and_moves_to_another_node_when_its_node_dies() {
        let Some(mut cluster) = testkit::RedisCluster::start() else {
            return;
        };
        let redis = connect(&RedisSettings::cluster(cluster.urls()))
            .unwrap()
            .unwrap();
        redis.first_probe().await;
        let writer = RedisStore::new(redis.clone());
        writer
            .revoke("before", Duration::from_secs(60))
            .await
            .unwrap();
        let (audit, seen) = sink();
        let stop = CancellationToken::new();
        let mirror =
            RevocationMirror::start(redis.clone(), Duration::from_secs(900), audit, stop.clone());
        mirror.first_attempt().await;
        assert!(mirror.is_live());
        assert_eq!(mirror.status().borrow().scanned, 1);
        assert!(mirror.is_revoked("before").await.unwrap());

        // Published on the denylist's master, received on node 0.
        writer
            .revoke("pushed", Duration::from_secs(60))
            .await
            .unwrap();
        let m = mirror.clone();
        wait_up_to(Duration::from_secs(30), "the notice", || {
            m.shared.set.contains_live("pushed")
        })
        .await;

        let subscribed = cluster.ports()[0];
        cluster.kill(subscribed);
        // Noticed = the outage was audited. Not `!is_live()`: the mirror may
        // resubscribe on the next node within milliseconds, and a poll can
        // miss that window on a loaded machine (it did in CI-like runs).
        let s = seen.clone();
        wait_up_to(Duration::from_secs(30), "the mirror to notice", || {
            s.lock().unwrap().contains(&names::REVOCATION_STALE)
        })
        .await;
        assert!(mirror.is_revoked("before").await.unwrap());
        tokio::task::block_in_place(|| cluster.wait_until_healed(3));
        wait_up_to(Duration::from_secs(30), "the resync", || {
            mirror.is_live() && mirror.status().borrow().syncs == 2
        })
        .await;
        assert_eq!(mirror.status().borrow().syncs, 2);
        assert_eq!(mirror.status().borrow().scanned, 2);

        writer
            .revoke("after", Duration::from_secs(60))
            .await
            .unwrap();
        let m = mirror.clone();
        wait_up_to(
            Duration::from_secs(30),
            "the notice on the new node",
            || m.shared.set.contains_live("after"),
        )
        .await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![names::REVOCATION_STALE, names::REVOCATION_SYNCED]
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn never_synchronised_or_too_stale_fails_for_unknown_tokens() {
        let port = testkit::free_port();
        let redis = connect(&RedisSettings::at(format!("redis://127.0.0.1:{port}")))
            .unwrap()
            .unwrap();
        let (audit, seen) = sink();
        let stop = CancellationToken::new();
        let mirror = RevocationMirror::start(redis, Duration::from_secs(900), audit, stop.clone());
        mirror.first_attempt().await;
        assert!(!mirror.is_live());
        let e = mirror.is_revoked("x").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "store unavailable: the revocation set has not been synchronised with Redis \
             within REVOCATION_MAX_STALENESS_SECS"
        );
        assert_eq!(*seen.lock().unwrap(), vec![names::REVOCATION_STALE]);

        // Stale since a moment ago, with no allowance: past the limit.
        mirror
            .shared
            .stale_since_us
            .store(mirror.shared.now_us(), Ordering::Release);
        let strict = Shared {
            max_staleness: Duration::ZERO,
            ..clone_shared(&mirror.shared)
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!strict.trusted());
        // Within the allowance: trusted.
        assert!(mirror.shared.trusted());
        stop.cancel();
    }

    /// A second `Shared` over the same state (tests of `trusted` only).
    fn clone_shared(s: &Shared) -> Shared {
        let (status, _) = watch::channel(SyncStatus::default());
        Shared {
            set: MemoryStore::new(),
            redis: s.redis.clone(),
            writer: s.writer.clone(),
            max_staleness: s.max_staleness,
            stale_since_us: AtomicU64::new(s.stale_since_us.load(Ordering::Acquire)),
            epoch: s.epoch,
            status,
            audit: s.audit.clone(),
        }
    }
}
