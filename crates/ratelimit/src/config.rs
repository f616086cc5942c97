//! Rate-limit settings. Read from the environment by
//! `server_kit::limits::rate_limit_from_env` (the servers' one config error
//! type lives there); this crate only describes and builds the limiter.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::{
    DEFAULT_REDIS_TIMEOUT, FailureMode, Limiter, LimiterError, MemoryLimiter, Policy, RedisLimiter,
    ResilientLimiter, TrustedProxies,
};

/// Rate-limit settings shared by both servers, read once at start-up
/// (`server_kit::limits`, which documents each variable):
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `RATE_LIMIT_PER_MINUTE` | `60` | sustained units per minute per key (1 ..= 60 000 000) |
/// | `RATE_LIMIT_BURST` | `10` | units a key may spend at once (1 ..= 1 000 000) |
/// | `RATE_LIMIT_TOOL_CALL_COST` | `2` | units an MCP `tools/call` spends; other methods spend 1 (1 ..= burst) |
/// | `RATE_LIMIT_FAILURE_MODE` | `local` | when Redis fails: `local` (in-memory per replica), `open` (allow), `closed` (503) |
/// | `RATE_LIMIT_REDIS_TIMEOUT_MS` | `100` | per-check Redis timeout in ms (1 ..= 10 000) |
/// | `TRUSTED_PROXIES` | empty | comma-separated CIDRs/addresses whose `X-Forwarded-For` is believed |
///
/// Redis is not configured here: the server's one connection is passed to
/// [`build_limiter_on`](Self::build_limiter_on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_PER_MINUTE` and `RATE_LIMIT_BURST`.
    pub policy: Policy,
    /// `RATE_LIMIT_TOOL_CALL_COST`.
    pub tool_call_cost: u32,
    /// `RATE_LIMIT_FAILURE_MODE`.
    pub failure_mode: FailureMode,
    /// `RATE_LIMIT_REDIS_TIMEOUT_MS`.
    pub redis_timeout: Duration,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
}

/// Defaults (see the table on [`RateLimitConfig`]).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 60;
/// Default `RATE_LIMIT_BURST`.
pub const DEFAULT_BURST: u32 = 10;
/// Default `RATE_LIMIT_TOOL_CALL_COST`.
pub const DEFAULT_TOOL_CALL_COST: u32 = 2;

impl RateLimitConfig {
    /// The limiter these settings describe: in memory without `redis_url`,
    /// otherwise Redis wrapped in the failure mode. Does not wait for Redis
    /// (a server starts while Redis is down); call inside a Tokio runtime.
    /// Fails only on an invalid URL.
    /// The limiter these settings describe on the process's shared Redis
    /// connection (`None`: in memory), wrapped in the failure mode.
    pub fn build_limiter_on(&self, redis: Option<ConnectionManager>) -> Arc<dyn Limiter> {
        match redis {
            None => Arc::new(MemoryLimiter::new()),
            Some(conn) => {
                let redis = RedisLimiter::from_connection(conn, self.redis_timeout);
                Arc::new(ResilientLimiter::new(Arc::new(redis), self.failure_mode))
            }
        }
    }

    pub async fn build_limiter(
        &self,
        redis_url: Option<&str>,
    ) -> Result<Arc<dyn Limiter>, LimiterError> {
        Ok(match redis_url {
            None => Arc::new(MemoryLimiter::new()),
            Some(url) => {
                let redis = RedisLimiter::connect(url, self.redis_timeout).await?;
                Arc::new(ResilientLimiter::new(Arc::new(redis), self.failure_mode))
            }
        })
    }
}

impl Default for RateLimitConfig {
    /// The documented defaults.
    fn default() -> Self {
        Self {
            policy: Policy::new_unchecked(DEFAULT_RATE_PER_MINUTE, DEFAULT_BURST),
            tool_call_cost: DEFAULT_TOOL_CALL_COST,
            failure_mode: FailureMode::default(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_memory_without_redis_and_rejects_bad_urls() {
        let c = RateLimitConfig::default();
        let limiter = c.build_limiter(None).await.unwrap();
        assert!(limiter.check("k", 1, &c.policy).await.unwrap().allowed);
        let err = c.build_limiter(Some("not a url")).await.unwrap_err();
        assert!(matches!(err, LimiterError::Redis(_)), "{err}");
    }
}
