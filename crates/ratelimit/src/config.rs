//! Rate-limit settings. Read from the environment by
//! `server_kit::limits::rate_limit_from_env` (the servers' one config error
//! type lives there); this crate only describes them.

use std::time::Duration;

use crate::{DEFAULT_REDIS_TIMEOUT, FailureMode, Policy, TrustedProxies};

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
/// Redis is not configured here: the servers build the limiter on their one
/// Redis connection (`server_kit::redis::build_limiter`), or in memory
/// without one.
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
    use crate::{LimiterError, RedisLimiter};

    #[tokio::test]
    async fn a_bad_redis_url_is_refused_before_any_connection() {
        let err = RedisLimiter::connect("not a url", DEFAULT_REDIS_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, LimiterError::Redis(_)), "{err}");
    }
}
