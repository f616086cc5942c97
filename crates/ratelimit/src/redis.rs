//! Redis GCRA back end: one Lua script, evaluated atomically with `EVALSHA`,
//! at most one call per key in flight (the checks of a busy key go out in
//! batches).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;

use crate::batch::{InFlight, Turn};
use crate::clock::{Clock, micros};
use crate::{Decision, Limiter, LimiterError, Policy};

/// The script (see `src/gcra.lua`).
const GCRA_LUA: &str = include_str!("gcra.lua");

/// Default for [`RedisLimiter::connect`]'s timeout (`RATE_LIMIT_REDIS_TIMEOUT_MS`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// The settings of a connection to one Redis, every command (a reconnect
/// included) bounded by `timeout`: a command waits for at most one
/// reconnect attempt, made 10–100 ms after a failure (the caller's breaker
/// and prober take over from there). The servers' one connection
/// (`server_kit::redis`) and [`RedisLimiter::connect`] both use these.
pub fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100))
}

/// [`manager_config`] for a Redis Cluster reached through `seed_nodes`
/// (`redis://host:port` each): the client, and the settings of its lazy
/// connection (`get_pending_async_connection_with_config`). One retry per
/// command (a `MOVED` after a failover, a reconnect), 10–100 ms apart; the
/// response timeout bounds a whole command, retries included (the crate's
/// "overall" timeout follows it).
pub fn cluster_client(
    seed_nodes: &[&str],
    timeout: Duration,
) -> redis::RedisResult<(ClusterClient, ClusterConfig)> {
    let client = ClusterClientBuilder::new(seed_nodes.to_vec())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(1)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .build()?;
    let config = ClusterConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    Ok((client, config))
}

/// GCRA in Redis, shared by every replica.
///
/// - One round trip per check: `EVALSHA` of a script that reads the TAT,
///   decides and writes it back atomically (no read/write race between
///   replicas). [`redis::Script`] sends the SHA and reloads the script by
///   itself when Redis answers `NOSCRIPT` (e.g. after a restart).
/// - At most one call per key in flight from this replica: the checks of a
///   key that arrive while its call is out wait for it, then go out
///   together as the next call (up to 64), decided in arrival order at one
///   instant exactly as separate calls would be. A client busy enough to
///   have several checks in flight thus costs Redis one script run per
///   round trip instead of one per check; an idle or one-at-a-time client
///   sees no change. A check waits at most two round trips (and two
///   timeouts when Redis hangs).
/// - Time is the Redis server's clock (`TIME`), so replicas with skewed
///   clocks still agree.
/// - Keys expire (`PX`) when their bucket is full again, so idle clients
///   cost nothing.
/// - A [`ConnectionManager`] multiplexes concurrent checks over one
///   connection and reconnects in the background after a failure. Each
///   check (including waiting for a reconnect) is bounded by the timeout,
///   after which it fails with [`LimiterError::Timeout`]; wrap the limiter
///   in a [`ResilientLimiter`](crate::ResilientLimiter) to choose what
///   happens then.
/// - The connection `C` is one Redis ([`ConnectionManager`], the default) or
///   a Redis Cluster ([`ClusterConnection`]): the script touches one key, so
///   the crate routes it to the key's slot and nothing else changes.
#[derive(Clone)]
pub struct RedisLimiter<C = ConnectionManager> {
    conn: C,
    script: Arc<Script>,
    timeout: Duration,
    clock: Option<Arc<dyn Clock>>,
    in_flight: Arc<InFlight>,
}

impl<C> std::fmt::Debug for RedisLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("timeout", &self.timeout)
            .field("test_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Creates the limiter without waiting for Redis: the connection is made
    /// on first use, so a server starts (and, with a failure mode, serves)
    /// while Redis is down. Fails only on an invalid URL. Call inside a
    /// Tokio runtime. Use [`ping`](Self::ping) to check Redis at start-up.
    pub async fn connect(redis_url: &str, timeout: Duration) -> Result<Self, LimiterError> {
        let client = redis::Client::open(redis_url)?;
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config(timeout))?;
        Ok(Self::from_connection(conn, timeout))
    }
}

impl RedisLimiter<ClusterConnection> {
    /// [`connect`](RedisLimiter::connect) for a Redis Cluster reached through
    /// `seed_nodes` (`redis://host:port` each); the crate discovers the other
    /// nodes and follows failovers.
    pub fn connect_cluster(seed_nodes: &[&str], timeout: Duration) -> Result<Self, LimiterError> {
        let (client, config) = cluster_client(seed_nodes, timeout)?;
        let conn = client.get_pending_async_connection_with_config(config);
        Ok(Self::from_connection(conn, timeout))
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisLimiter<C> {
    /// The limiter on an existing connection (the server's one Redis
    /// connection, shared with its stores). Each check is bounded by `timeout`.
    pub fn from_connection(conn: C, timeout: Duration) -> Self {
        Self {
            conn,
            script: Arc::new(Script::new(GCRA_LUA)),
            timeout,
            clock: None,
            in_flight: Arc::new(InFlight::default()),
        }
    }

    /// Replaces the Redis server clock with `clock`, passed to the script on
    /// every call. For deterministic tests only: replicas with different
    /// clocks would disagree.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Round trip to Redis (`PING`), bounded by the timeout.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let fut = ping.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(reply) => reply.map(drop).map_err(LimiterError::from),
            Err(_) => Err(LimiterError::Timeout(self.timeout)),
        }
    }

    /// The configured per-check timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[async_trait]
impl<C: ConnectionLike + Clone + Send + Sync + 'static> Limiter for RedisLimiter<C> {
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError> {
        // Any cost above the burst gets the same answer; clamping keeps the
        // script's arithmetic small.
        let cost = cost.min(policy.burst().saturating_add(1));
        // A leader's guard is dropped when its check ends, answered or
        // cancelled: the checks that queued meanwhile go out as the next batch.
        let _next = match self.in_flight.join(key, cost, policy) {
            Turn::Wait(reply) => return reply.await.unwrap_or_else(|_| Err(batch_lost())),
            Turn::Lead => Some(HandOff { limiter: self, key }),
            Turn::Alone => None,
        };
        let mut decisions = self.eval(key, policy, &[cost]).await?;
        decisions.pop().ok_or_else(batch_lost)
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> RedisLimiter<C> {
    /// One `EVALSHA` deciding `costs` for `key` in order, bounded by the
    /// timeout; one decision per cost.
    async fn eval(
        &self,
        key: &str,
        policy: &Policy,
        costs: &[u32],
    ) -> Result<Vec<Decision>, LimiterError> {
        let mut invocation = self.script.key(key);
        invocation.arg(policy.interval_us()).arg(policy.burst());
        match &self.clock {
            Some(clock) => invocation.arg(micros(clock.now())),
            None => invocation.arg(""),
        };
        for cost in costs {
            invocation.arg(*cost);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> =
            match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
                Ok(reply) => reply?,
                Err(_) => return Err(LimiterError::Timeout(self.timeout)),
            };
        if reply.len() != costs.len() * 4 {
            return Err(LimiterError::UnexpectedReply(format!(
                "{} numbers for {} checks",
                reply.len(),
                costs.len()
            )));
        }
        reply
            .chunks_exact(4)
            .map(|d| decision_from_reply((d[0], d[1], d[2], d[3]), policy))
            .collect()
    }

    /// Sends the checks of `key` that queued while its previous call was in
    /// flight, if any, as one call on a task of their own; when none
    /// queued, the key is no longer in flight.
    fn hand_off(&self, key: &str) {
        let Some(batch) = self.in_flight.next_batch(key) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run the batch on (the process is shutting
            // down): the waiting checks fail rather than hang.
            self.in_flight.abandon(key);
            return;
        };
        let limiter = self.clone();
        let key: Box<str> = key.into();
        runtime.spawn(async move {
            let _next = HandOff {
                limiter: &limiter,
                key: &key,
            };
            let costs: Vec<u32> = batch.waiters.iter().map(|w| w.cost).collect();
            match limiter.eval(&key, &batch.policy, &costs).await {
                Ok(decisions) => {
                    for (waiter, decision) in batch.waiters.into_iter().zip(decisions) {
                        // A waiter that gave up has nobody to answer.
                        let _ = waiter.reply.send(Ok(decision));
                    }
                }
                Err(e) => {
                    for waiter in batch.waiters {
                        let _ = waiter.reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// Runs [`RedisLimiter::hand_off`] when the call in flight for `key` is
/// over, however it ended (answered, failed, or its check was cancelled).
struct HandOff<'a, C: ConnectionLike + Clone + Send + Sync + 'static> {
    limiter: &'a RedisLimiter<C>,
    key: &'a str,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Drop for HandOff<'_, C> {
    fn drop(&mut self) {
        self.limiter.hand_off(self.key);
    }
}

fn batch_lost() -> LimiterError {
    LimiterError::UnexpectedReply("the batch carrying this check was lost".to_owned())
}

fn decision_from_reply(
    (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64),
    policy: &Policy,
) -> Result<Decision, LimiterError> {
    let bad = || {
        LimiterError::UnexpectedReply(format!("[{allowed}, {remaining}, {retry_us}, {reset_us}]"))
    };
    let micros = |v: i64| {
        u64::try_from(v)
            .map(Duration::from_micros)
            .map_err(|_| bad())
    };
    let allowed = match allowed {
        0 => false,
        1 => true,
        _ => return Err(bad()),
    };
    let remaining = u32::try_from(remaining)
        .ok()
        .filter(|r| *r <= policy.burst())
        .ok_or_else(bad)?;
    Ok(Decision {
        allowed,
        limit: policy.burst(),
        remaining,
        retry_after: micros(retry_us)?,
        reset_after: micros(reset_us)?,
    })
}
