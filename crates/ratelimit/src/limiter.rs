//! The back-end-neutral interface: [`Limiter`] and [`LimiterError`].

use std::time::Duration;

use async_trait::async_trait;

use crate::{Decision, Policy};

/// A rate limiter: spends `cost` units of `key`'s budget under `policy` if
/// they are available.
///
/// Implementations: [`MemoryLimiter`](crate::MemoryLimiter),
/// [`RedisLimiter`](crate::RedisLimiter) and
/// [`ResilientLimiter`](crate::ResilientLimiter) (Redis with a failure mode).
/// Object safe, so servers hold an `Arc<dyn Limiter>` chosen at start-up.
///
/// A key names one bucket; use one policy per key (the bucket's state does
/// not record which policy filled it). Keys in this project: `rl:{client_id}`
/// and `rl:ip:{addr}` (DESIGN.md §6).
#[async_trait]
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Spends `cost` units of `key` under `policy` if allowed.
    ///
    /// `cost` 0 spends nothing and reports the current state. A cost above
    /// the policy's burst is always denied.
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError>;
}

/// Why a check produced no decision. The HTTP layer answers 503 with
/// `Retry-After: `[`retry_after`](Self::retry_after) (see
/// [`headers::insert_unavailable`](crate::headers::insert_unavailable)).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LimiterError {
    /// Redis answered with an error or the connection failed.
    #[error("redis rate limiter: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the configured timeout.
    #[error("redis rate limiter did not answer within {0:?}")]
    Timeout(Duration),
    /// The script's reply did not have the expected shape.
    #[error("redis rate-limit script returned an unexpected reply: {0}")]
    UnexpectedReply(String),
    /// The back end failed and the failure mode is `closed`.
    #[error("rate limiting is unavailable and RATE_LIMIT_FAILURE_MODE is closed: {cause}")]
    Unavailable {
        /// What a client should wait before retrying.
        retry_after: Duration,
        /// The back-end failure, for logs.
        cause: String,
    },
}

impl LimiterError {
    /// How long a client should wait before retrying (at least 1 s).
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Unavailable { retry_after, .. } => (*retry_after).max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }
}
