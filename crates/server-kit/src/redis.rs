//! The one Redis connection of a server process: lazy, reconnecting in the
//! background, behind a circuit breaker; to one Redis (`REDIS_URL`) or to a
//! Redis Cluster (`REDIS_CLUSTER_NODES`).
//!
//! [`connect`] returns at once (a server starts, and serves per its failure
//! modes, while Redis is down). A background task makes the connection,
//! probes it (`PING`) with exponential backoff while Redis is unreachable
//! and every [`HEALTH_CHECK_EVERY`] while it answers. Every Redis user goes
//! through the [`Redis`] handle:
//!
//! - while the breaker is closed (Redis up), a command goes to the shared
//!   [`ConnectionManager`] (one multiplexed connection, bounded by
//!   `REDIS_TIMEOUT_MS`);
//! - a command that fails for a connection reason (refused, reset, timed
//!   out) opens the breaker and wakes the prober;
//! - while the breaker is open, a command fails at once with an
//!   "unavailable" error: no request waits for a Redis timeout, and each
//!   user (stores, kv, limiter) applies its own failure mode;
//! - the first successful probe closes the breaker again.
//!
//! The rate limiter additionally bounds each check by its own, shorter
//! `RATE_LIMIT_REDIS_TIMEOUT_MS` budget; a check that runs out of it opens
//! the breaker too. `GET /ready` on both servers reports [`Redis::is_up`].
//!
//! # Cluster mode
//!
//! With `REDIS_CLUSTER_NODES` the shared connection is the `redis` crate's
//! own [`ClusterConnection`] (it learns the slot map from the seed nodes,
//! routes each command to its key's slot, follows `MOVED`/`ASK` and
//! failovers), behind the same [`RedisConnection`] type, so every user runs
//! the same code in both modes. What differs, and why:
//!
//! - The breaker stays one switch for the whole cluster, and the probe
//!   reads one key in each master's slot range (`probe_every_master`):
//!   "up" means every slot has a master that answers. While one master is
//!   lost (until its
//!   replica is promoted, node timeout + election, about 2 s with a 1 s
//!   `cluster-node-timeout`), the process runs in its failure modes for
//!   every key, not just that master's slots — the same behaviour as a
//!   single Redis outage, and no per-slot breaker of ours to get wrong.
//! - Every multi-key transaction, script or pipeline must stay in one slot:
//!   keys used together carry one hash tag (DESIGN.md §6 lists them).
//!   Commands without a key that must reach one store's shard (the
//!   revocation mirror's `SCAN`) go through [`Redis::query_on_shard_of`].
//! - Pub/sub (the revocation channel) uses a plain connection to one node at
//!   a time ([`Redis::subscriber_clients`]): a classic `PUBLISH` reaches
//!   every node of a cluster, so any node will do, and the mirror moves to
//!   the next seed node when its node fails.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ratelimit::{
    Decision, Limiter, LimiterError, MemoryLimiter, Policy, RateLimitConfig, RedisLimiter,
};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, Value,
};
use tokio::sync::{Notify, watch};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, var, var_parsed};
use crate::metrics::{MeteredLimiter, RateLimitMetrics, RedisMetrics};

/// Default `REDIS_TIMEOUT_MS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// `REDIS_URL`, `REDIS_CLUSTER_NODES` and `REDIS_TIMEOUT_MS`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`; `None` (unset or empty): in-memory stores and limiter
    /// (unless `cluster_nodes` is set). A secret: it may carry a password.
    pub url: Option<SecretString>,
    /// `REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster (`redis://host:port`
    /// each). Not empty: cluster mode, and `url` is not used. Secrets too.
    pub cluster_nodes: Vec<SecretString>,
    /// `REDIS_TIMEOUT_MS` (default 250): connect and command timeout.
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            cluster_nodes: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RedisSettings {
    /// Reads `REDIS_URL`, `REDIS_CLUSTER_NODES` (comma list; every entry a
    /// valid Redis URL, at least one) and `REDIS_TIMEOUT_MS` (1..=60000).
    pub fn from_env() -> Result<Self, ConfigError> {
        let ms: u64 = var_parsed("REDIS_TIMEOUT_MS", 250)?;
        if !(1..=60_000).contains(&ms) {
            return Err(ConfigError::new(
                "REDIS_TIMEOUT_MS",
                format!("must be between 1 and 60000 milliseconds, got {ms}"),
            ));
        }
        let url = var("REDIS_URL").map(SecretString::from);
        if let Some(u) = &url {
            // Checked here so a typo fails at start-up with the variable's
            // name; the message never repeats the URL (it may hold a password).
            redis::Client::open(u.expose_secret()).map_err(|e| {
                ConfigError::new("REDIS_URL", format!("invalid Redis URL ({})", e.category()))
            })?;
        }
        let cluster_nodes = match var("REDIS_CLUSTER_NODES") {
            None => Vec::new(),
            Some(list) => parse_cluster_nodes(&list)?,
        };
        Ok(Self {
            url,
            cluster_nodes,
            timeout: Duration::from_millis(ms),
        })
    }

    /// A local Redis at `url` with the default timeout (tests, embedding).
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: Some(SecretString::from(url.into())),
            ..Self::default()
        }
    }

    /// A Redis Cluster reached through `seed_nodes`, with the default
    /// timeout (tests, embedding).
    pub fn cluster<S: Into<String>>(seed_nodes: impl IntoIterator<Item = S>) -> Self {
        Self {
            cluster_nodes: seed_nodes
                .into_iter()
                .map(|n| SecretString::from(n.into()))
                .collect(),
            ..Self::default()
        }
    }

    /// Whether any Redis is configured (else: in-memory stores).
    pub fn is_configured(&self) -> bool {
        self.url.is_some() || self.is_cluster()
    }

    /// Whether `REDIS_CLUSTER_NODES` is set (cluster mode).
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }
}

/// `REDIS_CLUSTER_NODES`: a comma list of seed nodes, each checked (a TCP
/// Redis URL; all with the same credentials, as the cluster client needs).
/// An empty entry is an error, as in every list variable (a stray comma
/// usually means a lost node; a list of nothing but commas names no node).
/// Errors name the entry by position, never its text (it may hold a password).
fn parse_cluster_nodes(list: &str) -> Result<Vec<SecretString>, ConfigError> {
    const VAR: &str = "REDIS_CLUSTER_NODES";
    let nodes: Vec<&str> = list.split(',').map(str::trim).collect();
    for (i, node) in nodes.iter().enumerate() {
        let bad = |why: String| ConfigError::new(VAR, format!("entry {}: {why}", i + 1));
        if node.is_empty() {
            return Err(bad(
                "is empty: remove the extra comma (expected redis://host:port, comma-separated)"
                    .to_owned(),
            ));
        }
        let info = node
            .into_connection_info()
            .map_err(|e| bad(format!("invalid Redis URL ({})", e.category())))?;
        if !matches!(info.addr(), redis::ConnectionAddr::Tcp(..)) {
            return Err(bad(
                "a cluster node must be a redis://host:port address".to_owned()
            ));
        }
    }
    ClusterClientBuilder::new(nodes.clone())
        .build()
        .map_err(|e| ConfigError::new(VAR, format!("invalid seed nodes ({e})")))?;
    Ok(nodes.into_iter().map(SecretString::from).collect())
}

/// A Redis connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    #[error("REDIS_URL: invalid Redis URL ({0})")]
    InvalidUrl(String),
    #[error("REDIS_CLUSTER_NODES: invalid seed nodes ({0})")]
    InvalidClusterNodes(String),
}

/// The shared connection: one Redis or a Redis Cluster. Cheap to clone (both
/// multiplex every user over their own background task).
#[derive(Clone)]
pub enum RedisConnection {
    /// `REDIS_URL`.
    Single(ConnectionManager),
    /// `REDIS_CLUSTER_NODES`: the crate routes each command to its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConnection {
    /// `cmd` on the master serving `key`'s slot (cluster), or on the one
    /// Redis: for commands without a key that must reach the shard of a
    /// store kept under one hash tag (`SCAN` of the revocation denylist).
    pub async fn query_on_shard_of<T: FromRedisValue>(
        &mut self,
        key: &str,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = c.route_command(cmd.clone(), routing).await?;
                Ok(T::from_redis_value(value.extract_error()?)?)
            }
        }
    }
}

/// First delay between probes while Redis is unreachable; it doubles up to
/// [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between probes while Redis is unreachable: a recovered
/// Redis is used again at most this long after it answers (a refused
/// connection costs next to nothing, so this stays short: revocations made
/// after an outage reach the replicas within a second of its end).
pub const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// While Redis answers, it is probed this often even without traffic, so
/// `/ready` and the breaker notice an outage on an idle server.
pub const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Prepares the process's one connection to `settings.url` (`None` when
/// unset) without waiting for Redis, and starts its background prober.
/// Fails only on an invalid URL. Call inside a Tokio runtime.
pub fn connect(settings: &RedisSettings) -> Result<Option<Redis>, RedisConnectError> {
    connect_metered(settings, None)
}

/// [`connect`], recording `securemcp_redis_up` and
/// `securemcp_redis_command_duration_seconds` in `metrics`.
pub fn connect_metered(
    settings: &RedisSettings,
    metrics: Option<RedisMetrics>,
) -> Result<Option<Redis>, RedisConnectError> {
    let (conn, subscribers) = if settings.is_cluster() {
        if settings.url.is_some() {
            tracing::warn!("REDIS_URL is not used: REDIS_CLUSTER_NODES is set (cluster mode)");
        }
        connect_cluster(settings)?
    } else if let Some(url) = &settings.url {
        connect_single(url, settings.timeout)?
    } else {
        return Ok(None);
    };
    let (state, _) = watch::channel(Health::default());
    let wake = Arc::new(Notify::new());
    let shared = Arc::new(Shared {
        subscribers,
        conn,
        timeout: settings.timeout,
        up: AtomicBool::new(false),
        state,
        wake: wake.clone(),
        sent: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        metrics,
    });
    if let Some(m) = &shared.metrics {
        m.set_up(false);
    }
    tokio::spawn(probe_loop(Arc::downgrade(&shared), wake));
    Ok(Some(Redis { shared }))
}

fn connect_single(
    url: &SecretString,
    timeout: Duration,
) -> Result<(RedisConnection, Vec<redis::Client>), RedisConnectError> {
    let client = redis::Client::open(url.expose_secret())
        .map_err(|e| RedisConnectError::InvalidUrl(e.category().to_owned()))?;
    // The prober retries with its own backoff; a command never waits for
    // more than one reconnect attempt.
    let conn = ConnectionManager::new_lazy_with_config(
        client.clone(),
        ratelimit::redis::manager_config(timeout),
    )
    .map_err(|e| RedisConnectError::InvalidUrl(e.category().to_owned()))?;
    Ok((RedisConnection::Single(conn), vec![client]))
}

fn connect_cluster(
    settings: &RedisSettings,
) -> Result<(RedisConnection, Vec<redis::Client>), RedisConnectError> {
    let invalid = |e: RedisError| RedisConnectError::InvalidClusterNodes(e.category().to_owned());
    let nodes: Vec<&str> = settings
        .cluster_nodes
        .iter()
        .map(ExposeSecret::expose_secret)
        .collect();
    // Like the single connection: one retry (a MOVED after a failover, a
    // reconnect), then the breaker and the prober take over.
    let (client, config) =
        ratelimit::redis::cluster_client(&nodes, settings.timeout).map_err(invalid)?;
    // Lazy: the server starts (and serves per its failure modes) while the
    // cluster is unreachable; the prober's first probe makes the connections.
    let conn = client.get_pending_async_connection_with_config(config);
    let subscribers = nodes
        .iter()
        .map(|n| redis::Client::open(*n))
        .collect::<RedisResult<Vec<_>>>()
        .map_err(invalid)?;
    Ok((RedisConnection::Cluster(conn), subscribers))
}

/// What the prober last found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// The breaker is closed: commands go to Redis.
    pub up: bool,
    /// Probes made so far (0: not tried yet).
    pub probes: u64,
}

/// The handle every Redis user of a process shares (cheap to clone).
#[derive(Clone)]
pub struct Redis {
    shared: Arc<Shared>,
}

struct Shared {
    /// Where a pub/sub connection may be opened: the one Redis, or each
    /// seed node of the cluster (any node receives every `PUBLISH`).
    subscribers: Vec<redis::Client>,
    conn: RedisConnection,
    timeout: Duration,
    /// The breaker, read on every command without a lock.
    up: AtomicBool,
    state: watch::Sender<Health>,
    wake: Arc<Notify>,
    sent: AtomicU64,
    refused: AtomicU64,
    metrics: Option<RedisMetrics>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the prober notice that nobody needs it any more.
        self.wake.notify_one();
    }
}

impl std::fmt::Debug for Redis {
    /// Never the URL: it may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("up", &self.is_up())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// The error a command gets while the breaker is open.
fn down_error() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "Redis is unreachable (reconnecting in the background)",
    ))
}

/// Whether `e` says the connection (not the command) failed. In a cluster
/// that includes the topology errors left after the crate's own retry
/// (`MOVED`/`ASK` to a master that does not answer, `TRYAGAIN`,
/// `CLUSTERDOWN`, `MASTERDOWN`): a slot whose master was lost answers
/// nothing else until a replica is promoted.
pub fn is_connection_failure(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.is_cluster_error()
        || e.kind() == ErrorKind::Server(redis::ServerErrorKind::MasterDown)
}

impl Redis {
    /// True while the breaker is closed (the last probe or command reached Redis).
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire)
    }

    /// The prober's findings, to wait for a change.
    pub fn health(&self) -> watch::Receiver<Health> {
        self.shared.state.subscribe()
    }

    /// Waits until the first probe has finished (either way), at most a
    /// few Redis timeouts: a server that starts while Redis is up answers
    /// its first requests from Redis, one that starts during an outage
    /// starts at once.
    pub async fn first_probe(&self) {
        let mut health = self.health();
        let bound = self.shared.timeout * 3 + Duration::from_millis(100);
        let _ = tokio::time::timeout(bound, health.wait_for(|h| h.probes > 0)).await;
    }

    /// The command timeout (`REDIS_TIMEOUT_MS`).
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// Commands that went to Redis (the prober's excluded).
    pub fn commands_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Commands answered "unavailable" at once because the breaker was open.
    pub fn commands_refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The shared connection if the breaker is closed; otherwise the
    /// "unavailable" error, at once.
    pub fn admit(&self) -> RedisResult<RedisConnection> {
        if self.is_up() {
            self.shared.sent.fetch_add(1, Ordering::Relaxed);
            Ok(self.shared.conn.clone())
        } else {
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
            Err(down_error())
        }
    }

    /// Opens the breaker and wakes the prober (a command found Redis
    /// unreachable).
    pub fn report_failure(&self) {
        if self.shared.up.swap(false, Ordering::AcqRel) {
            self.shared.state.send_modify(|h| h.up = false);
        }
        if let Some(m) = &self.shared.metrics {
            m.set_up(false);
        }
        self.shared.wake.notify_one();
    }

    /// Runs `f` on the shared connection through the breaker: refused at
    /// once while it is open; a connection failure opens it.
    ///
    /// A connection found dropped (Redis restarted, or a proxy closed the
    /// idle connection, since its last use) is retried once: the manager
    /// reconnects on that error, and without the retry the first command
    /// after every unnoticed restart would fail. A timeout is never retried
    /// (Redis may be hung).
    pub async fn run<T, F, Fut>(&self, f: F) -> RedisResult<T>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        // A command refused by the open breaker never reached Redis: not timed.
        let conn = self.admit()?;
        let started = Instant::now();
        let result = self.run_unmetered(conn, f).await;
        self.observe(started);
        result
    }

    /// Records one command's time (no-op without metrics).
    fn observe(&self, started: Instant) {
        if let Some(m) = &self.shared.metrics {
            m.observe(started.elapsed().as_secs_f64());
        }
    }

    async fn run_unmetered<T, F, Fut>(&self, conn: RedisConnection, f: F) -> RedisResult<T>
    where
        F: Fn(RedisConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut result = f(conn).await;
        if let Err(e) = &result
            && e.is_connection_dropped()
            && !e.is_timeout()
        {
            result = f(self.admit()?).await;
        }
        if let Err(e) = &result
            && is_connection_failure(e)
        {
            self.report_failure();
        }
        result
    }

    /// One command through [`run`](Self::run).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// One pipeline (or `MULTI`) through [`run`](Self::run).
    pub async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        self.run(|mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    /// One script call through [`run`](Self::run).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        self.run(|mut c| async move { script.invoke_async(&mut c).await })
            .await
    }

    /// [`RedisConnection::query_on_shard_of`] through [`run`](Self::run).
    pub async fn query_on_shard_of<T: FromRedisValue>(
        &self,
        key: &str,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        self.run(|mut c| async move { c.query_on_shard_of(key, cmd).await })
            .await
    }

    /// Whether this is a Redis Cluster (`REDIS_CLUSTER_NODES`).
    pub fn is_cluster(&self) -> bool {
        matches!(self.shared.conn, RedisConnection::Cluster(_))
    }

    /// Clients for connections of their own (the revocation subscription):
    /// the one Redis, or each cluster seed node, in configuration order.
    pub fn subscriber_clients(&self) -> &[redis::Client] {
        &self.shared.subscribers
    }
}

impl Shared {
    /// One probe, bounded by the timeout: `PING` on one Redis; on a
    /// cluster, [`probe_every_master`] (with the prober's key cache).
    async fn ping(&self, keys: &mut ProbeKeys) -> RedisResult<()> {
        let probe = async {
            match self.conn.clone() {
                RedisConnection::Single(mut c) => redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .map(drop),
                RedisConnection::Cluster(mut c) => probe_every_master(&mut c, keys).await,
            }
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(reply) => reply,
            Err(_) => Err(RedisError::from((ErrorKind::Io, "probe timed out"))),
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
        if let Some(m) = &self.metrics {
            m.set_up(up);
        }
        self.state.send_modify(|h| {
            h.up = up;
            h.probes += 1;
        });
    }
}

/// Number of hash slots of a Redis Cluster.
const CLUSTER_SLOTS: u16 = 16384;

/// A cluster answers when every slot has a master (`CLUSTER SLOTS`, asked
/// of any node) and a keyed read (`EXISTS`) of a slot in each master's
/// range is served, routed like any command: to the slot's master, or
/// redirected there with `MOVED`.
///
/// Not the crate's `PING` to all masters: that fan-out quietly skips a
/// master whose connection it has dropped, so a lost master's `PING`
/// "succeeded" a moment after the first failure and the breaker closed
/// again while that master's slots still served nothing (issue 15, CI
/// 2026-12-01). A keyed read cannot be answered by another node.
async fn probe_every_master(conn: &mut ClusterConnection, keys: &mut ProbeKeys) -> RedisResult<()> {
    let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let mut covered = 0u32;
    let mut reads = Vec::with_capacity(ranges.len());
    for range in &ranges {
        let (Some(start), Some(end)) = (range.first(), range.get(1)) else {
            return Err(unexpected_slots_reply());
        };
        let start = u16::from_redis_value_ref(start)?;
        let end = u16::from_redis_value_ref(end)?;
        if start > end || end >= CLUSTER_SLOTS {
            return Err(unexpected_slots_reply());
        }
        covered += u32::from(end - start) + 1;
        let mut exists = redis::cmd("EXISTS");
        exists.arg(keys.within(start, end));
        let mut conn = conn.clone();
        reads.push(async move { exists.query_async::<i64>(&mut conn).await });
    }
    if covered != u32::from(CLUSTER_SLOTS) {
        return Err(RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
            "a slot has no master",
        )));
    }
    futures::future::try_join_all(reads).await.map(drop)
}

fn unexpected_slots_reply() -> RedisError {
    RedisError::from((ErrorKind::Parse, "unexpected CLUSTER SLOTS reply"))
}

/// The probe's keys by the first slot of their range, kept by the prober
/// across probes: the slot map rarely changes, so a key is searched for
/// once per range.
#[derive(Debug, Default)]
struct ProbeKeys(std::collections::HashMap<u16, String>);

impl ProbeKeys {
    /// A key (`secure-mcp:probe:N`, never written) whose slot lies in
    /// `start..=end`: the one found before for `start` if it still fits,
    /// else the first N that hashes there (a master's range holds
    /// thousands of slots, so a few tries; a one-slot range, about 16,384).
    fn within(&mut self, start: u16, end: u16) -> &str {
        let range = start..=end;
        let key = self.0.entry(start).or_default();
        if key.is_empty() || !range.contains(&key_slot(key)) {
            use std::fmt::Write as _;
            for n in 0u32.. {
                key.clear();
                let _ = write!(key, "secure-mcp:probe:{n}");
                if range.contains(&key_slot(key)) {
                    break;
                }
            }
        }
        key
    }
}

/// The cluster slot of a key without a hash tag: CRC16 (XMODEM) mod 16384.
fn key_slot(key: &str) -> u16 {
    let crc = key.bytes().fold(0u16, |crc, byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            }
        })
    });
    crc % CLUSTER_SLOTS
}

/// Probes with backoff while Redis is down, every [`HEALTH_CHECK_EVERY`]
/// while it is up, and at once when a command reports a failure. Ends when
/// the last [`Redis`] handle is dropped.
async fn probe_loop(shared: Weak<Shared>, wake: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    let mut down_logged = false;
    let mut ever_up = false;
    let mut keys = ProbeKeys::default();
    loop {
        let Some(redis) = shared.upgrade() else {
            return;
        };
        let wait = match redis.ping(&mut keys).await {
            Ok(()) => {
                if down_logged {
                    tracing::info!("Redis answers again; leaving the failure modes");
                } else if !ever_up {
                    tracing::info!("connected to Redis");
                }
                down_logged = false;
                ever_up = true;
                backoff = MIN_BACKOFF;
                redis.set_up(true);
                HEALTH_CHECK_EVERY
            }
            Err(e) => {
                if !down_logged {
                    // The error names the failure, never the URL.
                    tracing::warn!(error = %e, "Redis is unreachable; answering per the failure modes and reconnecting in the background");
                    down_logged = true;
                }
                redis.set_up(false);
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        drop(redis);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}

/// The rate limiter these settings describe on the process's Redis handle
/// (`None`: in memory), behind the breaker and wrapped in the failure mode.
pub fn build_limiter(config: &RateLimitConfig, redis: Option<&Redis>) -> Arc<dyn Limiter> {
    match redis {
        None => Arc::new(MemoryLimiter::new()),
        Some(redis) => resilient_limiter(config, redis),
    }
}

/// [`build_limiter`], counting every decision in
/// `securemcp_ratelimit_decisions_total{limiter}` (`degraded` while the
/// failure mode answers for an unreachable Redis).
pub fn build_limiter_metered(
    config: &RateLimitConfig,
    redis: Option<&Redis>,
    metrics: RateLimitMetrics,
    limiter: &'static str,
) -> Arc<dyn Limiter> {
    let metered = match redis {
        None => MeteredLimiter::new(Arc::new(MemoryLimiter::new()), None, metrics, limiter),
        Some(redis) => {
            let resilient = resilient_limiter(config, redis);
            MeteredLimiter::new(resilient.clone(), Some(resilient), metrics, limiter)
        }
    };
    Arc::new(metered)
}

fn resilient_limiter(config: &RateLimitConfig, redis: &Redis) -> Arc<ratelimit::ResilientLimiter> {
    let limiter = RedisLimiter::from_connection(redis.shared.conn.clone(), config.redis_timeout);
    let gated = GatedLimiter {
        redis: redis.clone(),
        limiter,
    };
    Arc::new(ratelimit::ResilientLimiter::new(
        Arc::new(gated),
        config.failure_mode,
    ))
}

/// The Redis limiter behind the breaker: refused at once while Redis is
/// known to be down, and a timeout or connection failure opens the breaker.
#[derive(Debug)]
struct GatedLimiter {
    redis: Redis,
    limiter: RedisLimiter<RedisConnection>,
}

#[async_trait]
impl Limiter for GatedLimiter {
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError> {
        // Refused by the open breaker: never reached Redis, not timed.
        self.redis.admit()?;
        let started = Instant::now();
        let result = self.check_unmetered(key, cost, policy).await;
        self.redis.observe(started);
        result
    }
}

impl GatedLimiter {
    async fn check_unmetered(
        &self,
        key: &str,
        cost: u32,
        policy: &Policy,
    ) -> Result<Decision, LimiterError> {
        let mut result = self.limiter.check(key, cost, policy).await;
        // Same rule as `Redis::run`: a connection found dropped is retried
        // once (otherwise the first check after an unnoticed Redis restart
        // would open the breaker for every user of the connection).
        if let Err(LimiterError::Redis(e)) = &result
            && e.is_connection_dropped()
            && !e.is_timeout()
        {
            self.redis.admit()?;
            result = self.limiter.check(key, cost, policy).await;
        }
        match &result {
            Err(LimiterError::Timeout(_)) => self.redis.report_failure(),
            Err(LimiterError::Redis(e)) if is_connection_failure(e) => self.redis.report_failure(),
            _ => {}
        }
        result
    }
}

/// The variables [`RedisSettings::from_env`] reads; each server's `--help`
/// table must list them all.
pub const ENV_VARS: &[&str] = &["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_TIMEOUT_MS"];

#[cfg(test)]
mod env_vars_tests {
    #[test]
    fn env_vars_lists_what_from_env_reads() {
        let mut listed = super::ENV_VARS.to_vec();
        listed.sort_unstable();
        assert_eq!(crate::cli::vars_read_in(include_str!("redis.rs")), listed);
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::*;

    async fn wait_for_up(redis: &Redis, up: bool) {
        let mut health = redis.health();
        tokio::time::timeout(Duration::from_secs(10), health.wait_for(|h| h.up == up))
            .await
            .expect("the prober never reached the expected state")
            .unwrap();
    }

    #[tokio::test]
    async fn starts_without_redis_refuses_at_once_and_recovers() {
        let Some(mut server) = testkit::RedisServer::start() else {
            return;
        };
        server.stop();
        let redis = connect(&RedisSettings::at(server.url())).unwrap().unwrap();
        redis.first_probe().await;
        assert!(!redis.is_up());
        assert_eq!(redis.health().borrow().probes, 1);
        for _ in 0..5 {
            let e = redis
                .query::<String>(&redis::cmd("PING"))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io);
            assert!(
                e.to_string()
                    .contains("Redis is unreachable (reconnecting in the background)"),
                "{e}"
            );
        }
        assert_eq!((redis.commands_sent(), redis.commands_refused()), (0, 5));

        server.restart();
        wait_for_up(&redis, true).await;
        let pong = redis.query::<String>(&redis::cmd("PING")).await.unwrap();
        assert_eq!(pong, "PONG");
        assert_eq!(redis.commands_sent(), 1);

        // A crash: the first command fails and opens the breaker; the next
        // ones are refused without reaching the network.
        server.stop();
        let first = redis.query::<String>(&redis::cmd("PING")).await;
        assert!(first.is_err());
        assert!(!redis.is_up());
        let refused = redis.commands_refused();
        let _ = redis
            .query::<String>(&redis::cmd("PING"))
            .await
            .unwrap_err();
        assert_eq!(redis.commands_refused(), refused + 1);
        // The first failed command was retried once (a dropped connection).
        assert_eq!(redis.commands_sent(), 3);

        server.restart();
        wait_for_up(&redis, true).await;

        // Restarted before anyone noticed: the first command finds the
        // connection dropped, retries on a new one, and succeeds.
        server.restart();
        let pong = redis.query::<String>(&redis::cmd("PING")).await.unwrap();
        assert_eq!(pong, "PONG");
        assert!(redis.is_up());
    }

    #[tokio::test]
    async fn metrics_time_each_command_and_follow_the_breaker() {
        let Some(mut server) = testkit::RedisServer::start() else {
            return;
        };
        let mut registry = crate::metrics::registry();
        let metrics = RedisMetrics::register(&mut registry);
        let redis = connect_metered(&RedisSettings::at(server.url()), Some(metrics))
            .unwrap()
            .unwrap();
        wait_for_up(&redis, true).await;
        let config = RateLimitConfig::default();
        let limiter = build_limiter(&config, Some(&redis));
        for _ in 0..2 {
            let _: String = redis.query(&redis::cmd("PING")).await.unwrap();
        }
        limiter.check("k", 1, &config.policy).await.unwrap();
        let text = crate::metrics::encode(&registry);
        assert!(text.contains("securemcp_redis_up 1\n"), "{text}");
        assert!(
            text.contains("securemcp_redis_command_duration_seconds_count 3\n"),
            "{text}"
        );

        server.stop();
        let _ = redis.query::<String>(&redis::cmd("PING")).await;
        wait_for_up(&redis, false).await;
        // Refused by the open breaker: not timed.
        let _ = redis.query::<String>(&redis::cmd("PING")).await;
        let text = crate::metrics::encode(&registry);
        assert!(text.contains("securemcp_redis_up 0\n"), "{text}");
        assert!(
            text.contains("securemcp_redis_command_duration_seconds_count 4\n"),
            "{text}"
        );
    }

    /// Cluster mode, 3 masters + 3 replicas: a lost master opens the
    /// breaker (the whole process degrades, as with one Redis) and the
    /// probes keep it open while the master's slots have no live master;
    /// once its replica is promoted, the probe closes it and commands for
    /// that master's slots reach the new master.
    #[tokio::test]
    async fn cluster_breaker_opens_on_a_lost_master_and_closes_after_the_promotion() {
        let Some(mut cluster) = testkit::RedisCluster::start() else {
            return;
        };
        let redis = connect(&RedisSettings::cluster(cluster.urls()))
            .unwrap()
            .unwrap();
        assert!(redis.is_cluster());
        wait_for_up(&redis, true).await;
        let key = "{probe}:k";
        let mut set = redis::cmd("SET");
        set.arg(key).arg("v");
        let () = redis.query(&set).await.unwrap();
        let master = cluster.master_of(key);
        // Replication is asynchronous: the replica must hold the write
        // before its master dies, or the promoted replica rightly lacks it.
        cluster.wait_for_replicas(master);
        // The replica waits for the test's word before it takes over, so
        // the probes below run while the slots have no live master.
        let [replica] = cluster.replicas_of(master)[..] else {
            panic!("one replica expected");
        };
        let no_failover = |cluster: &testkit::RedisCluster, on: &str| {
            cluster
                .command(
                    replica,
                    &["CONFIG", "SET", "cluster-replica-no-failover", on],
                )
                .unwrap();
        };
        no_failover(&cluster, "yes");

        cluster.kill(master);
        let mut get = redis::cmd("GET");
        get.arg(key);
        let first = redis.query::<Option<String>>(&get).await;
        assert!(first.is_err(), "{first:?}");
        assert!(!redis.is_up(), "a lost master opens the breaker");
        let refused = redis.commands_refused();
        let e = redis.query::<Option<String>>(&get).await.unwrap_err();
        assert!(e.to_string().contains("Redis is unreachable"), "{e}");
        assert_eq!(redis.commands_refused(), refused + 1);
        // Five probes (about 1.7 s of backoff: past the node timeout, so
        // the other nodes have marked the master failed) and each one
        // finds the slots unserved. The crate's all-masters PING answered
        // from the masters still connected and closed the breaker here.
        let mut health = redis.health();
        let probes = health.borrow().probes;
        while health.borrow().probes < probes + 5 {
            health.changed().await.unwrap();
            assert!(
                !health.borrow().up,
                "a probe closed the breaker while a master is lost"
            );
        }
        assert!(!redis.is_up());

        no_failover(&cluster, "no");
        cluster.wait_until_healed(3);
        wait_for_up(&redis, true).await;
        assert_eq!(
            redis
                .query::<Option<String>>(&get)
                .await
                .unwrap()
                .as_deref(),
            Some("v")
        );
        assert_ne!(cluster.master_of(key), master);
        // The dead node stays dead: no later probe may pick it (a random
        // node answers `CLUSTER SLOTS`) and open the breaker again.
        let RedisConnection::Cluster(mut conn) = redis.shared.conn.clone() else {
            unreachable!("a cluster connection")
        };
        for _ in 0..100 {
            probe_every_master(&mut conn, &mut ProbeKeys::default())
                .await
                .unwrap();
        }
        assert!(redis.is_up());
    }

    #[test]
    fn key_slot_is_the_cluster_hash_slot() {
        // `CLUSTER KEYSLOT` answers from the Redis documentation.
        assert_eq!(key_slot("somekey"), 11058);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("hello"), 866);
        for n in 0..2000 {
            let key = format!("k{n}");
            let slot = redis::cluster_routing::Slot::new(key_slot(&key)).unwrap();
            assert_eq!(redis::cluster_routing::Slot::for_key(&key), slot, "{key}");
        }
    }

    #[test]
    fn a_probe_key_lies_in_its_range_and_is_found_once() {
        let mut keys = ProbeKeys::default();
        for (start, end) in [
            (0, 5460),
            (5461, 10922),
            (10923, 16383),
            (866, 866),
            (16383, 16383),
        ] {
            let key = keys.within(start, end).to_owned();
            assert!(key.starts_with("secure-mcp:probe:"), "{key}");
            assert!(
                (start..=end).contains(&key_slot(&key)),
                "{key} for {start}..={end}"
            );
            assert_eq!(keys.within(start, end), key, "kept, not searched again");
        }
        // A range that shrank below its key gets a new one.
        let slot = key_slot(keys.within(0, 5460));
        assert!(slot > 0, "secure-mcp:probe:0 is not in slot 0");
        let narrow = keys.within(0, slot - 1).to_owned();
        assert!(key_slot(&narrow) < slot, "{narrow}");
    }

    #[test]
    fn cluster_nodes_are_checked_entry_by_entry() {
        let parse = |v: &str| {
            parse_cluster_nodes(v)
                .map(|n| n.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse("redis://127.0.0.1:7000, redis://127.0.0.1:7001"),
            Ok(2)
        );
        let empty = |n: usize| {
            Err(format!(
                "REDIS_CLUSTER_NODES: entry {n}: is empty: remove the extra comma \
                 (expected redis://host:port, comma-separated)"
            ))
        };
        assert_eq!(parse(" , "), empty(1));
        assert_eq!(parse("redis://127.0.0.1:7000,"), empty(2));
        assert_eq!(
            parse("redis://127.0.0.1:7000,http://:hunter2@x:1"),
            Err(
                "REDIS_CLUSTER_NODES: entry 2: invalid Redis URL (invalid client config)"
                    .to_owned()
            )
        );
        assert_eq!(
            parse("redis+unix:///tmp/redis.sock"),
            Err(
                "REDIS_CLUSTER_NODES: entry 1: a cluster node must be a redis://host:port address"
                    .to_owned()
            )
        );
        let mixed = parse("redis://:a@127.0.0.1:7000,redis://:b@127.0.0.1:7001").unwrap_err();
        assert!(
            mixed.starts_with("REDIS_CLUSTER_NODES: invalid seed nodes (")
                && !mixed.contains(":a@")
                && !mixed.contains(":b@"),
            "{mixed}"
        );
    }

    #[test]
    fn debug_never_shows_the_url() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let redis = connect(&RedisSettings::at("redis://:hunter2@127.0.0.1:1"))
            .unwrap()
            .unwrap();
        let shown = format!("{redis:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
