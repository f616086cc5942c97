//! What a limit is ([`Policy`]) and what a check answers ([`Decision`]).

use std::time::Duration;

/// Microseconds in one minute: the rate is given per minute.
const MINUTE_US: u64 = 60_000_000;

/// A GCRA policy: a sustained `rate_per_minute` with bursts of up to `burst`
/// units at once.
///
/// A fresh (or long idle) key may spend `burst` units immediately; after
/// that one unit comes back every [`emission_interval`](Self::emission_interval)
/// (`60 s / rate_per_minute`), and idle time never accumulates beyond
/// `burst`. Both back ends store a single timestamp per key (the theoretical
/// arrival time, TAT), so memory per key is O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    rate_per_minute: u32,
    burst: u32,
}

/// Why a [`Policy`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `rate_per_minute` was 0.
    #[error("rate per minute must be at least 1")]
    ZeroRate,
    /// `rate_per_minute` above [`Policy::MAX_RATE_PER_MINUTE`].
    #[error("rate per minute must be at most {max}, got {got}", max = Policy::MAX_RATE_PER_MINUTE)]
    RateTooHigh {
        /// The rejected value.
        got: u32,
    },
    /// `burst` was 0.
    #[error("burst must be at least 1")]
    ZeroBurst,
    /// `burst` above [`Policy::MAX_BURST`].
    #[error("burst must be at most {max}, got {got}", max = Policy::MAX_BURST)]
    BurstTooHigh {
        /// The rejected value.
        got: u32,
    },
}

impl Policy {
    /// Highest rate: one unit per microsecond, the resolution of both back ends.
    pub const MAX_RATE_PER_MINUTE: u32 = 60_000_000;
    /// Highest burst. Keeps every intermediate value of the Redis script
    /// (Lua numbers are doubles) far below 2^53.
    pub const MAX_BURST: u32 = 1_000_000;

    /// Validates and builds a policy (both values at least 1).
    pub fn new(rate_per_minute: u32, burst: u32) -> Result<Self, PolicyError> {
        if rate_per_minute == 0 {
            return Err(PolicyError::ZeroRate);
        }
        if rate_per_minute > Self::MAX_RATE_PER_MINUTE {
            return Err(PolicyError::RateTooHigh {
                got: rate_per_minute,
            });
        }
        if burst == 0 {
            return Err(PolicyError::ZeroBurst);
        }
        if burst > Self::MAX_BURST {
            return Err(PolicyError::BurstTooHigh { got: burst });
        }
        Ok(Self {
            rate_per_minute,
            burst,
        })
    }

    /// For constants known to be valid (callers uphold `new`'s checks).
    pub(crate) const fn new_unchecked(rate_per_minute: u32, burst: u32) -> Self {
        Self {
            rate_per_minute,
            burst,
        }
    }

    /// Sustained units per minute.
    pub fn rate_per_minute(&self) -> u32 {
        self.rate_per_minute
    }

    /// Units that may be spent at once (also the `limit` of every [`Decision`]).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Time for one unit to come back: `60 s / rate_per_minute`, truncated to
    /// whole microseconds.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.interval_us())
    }

    /// [`emission_interval`](Self::emission_interval) in microseconds, as the
    /// algorithm (and the Redis script) use it.
    pub(crate) fn interval_us(&self) -> u64 {
        MINUTE_US / u64::from(self.rate_per_minute)
    }
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (its cost has then been spent).
    pub allowed: bool,
    /// The policy's burst: the most units that can ever be available.
    pub limit: u32,
    /// Units available right after this check (0 ..= `limit`).
    pub remaining: u32,
    /// Zero when allowed; otherwise how long until the same request would be
    /// allowed (exact to the microsecond). For a cost above the burst, which
    /// can never be allowed, the time until the bucket is full again, and at
    /// least one emission interval, so a retrying client is paced instead of
    /// spinning.
    pub retry_after: Duration,
    /// How long until the bucket is full again (and the key forgotten).
    pub reset_after: Duration,
}
