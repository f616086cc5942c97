//! What happens when Redis fails: [`FailureMode`] and [`ResilientLimiter`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use auth::audit::{AuditEvent, names, outcome};

use crate::clock::{Clock, MonotonicClock, micros};
use crate::{Decision, Limiter, LimiterError, MemoryLimiter, Policy};

/// Default time between attempts to reach Redis again while degraded.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What a [`ResilientLimiter`] does while its primary back end (Redis) fails
/// or times out (`RATE_LIMIT_FAILURE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureMode {
    /// Limit with a per-replica in-memory limiter (each replica then
    /// enforces the policy on its own, so N replicas allow up to N times it).
    #[default]
    Local,
    /// Allow everything.
    Open,
    /// Refuse everything: the HTTP layer answers 503 with `Retry-After`.
    Closed,
}

impl FailureMode {
    /// The configuration spelling: `local`, `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown failure mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of local, open, closed; got {0:?}")]
pub struct ParseFailureModeError(pub String);

impl FromStr for FailureMode {
    type Err = ParseFailureModeError;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(ParseFailureModeError(s.to_owned())),
        }
    }
}

/// A primary limiter (Redis) with a [`FailureMode`] for when it fails.
///
/// - Healthy: every check goes to the primary.
/// - On the first error or timeout it becomes *degraded*: it logs one
///   `ratelimit.degraded` audit warning and answers per the failure mode.
/// - While degraded it does not wait on the primary for every request: at
///   most one check per probe interval (default 1 s) tries the primary again;
///   the others get the failure-mode answer at once.
/// - The first success logs one `ratelimit.recovered` audit event and
///   returns to healthy.
///
/// Events (target `audit`, field `event`) are logged once per transition,
/// never per request.
#[derive(Debug)]
pub struct ResilientLimiter {
    primary: Arc<dyn Limiter>,
    fallback: MemoryLimiter,
    mode: FailureMode,
    probe_interval: Duration,
    clock: MonotonicClock,
    degraded: AtomicBool,
    /// Microseconds on `clock` before which no probe is made while degraded.
    next_probe_us: AtomicU64,
}

impl ResilientLimiter {
    /// Wraps `primary` with `mode` and the default probe interval.
    pub fn new(primary: Arc<dyn Limiter>, mode: FailureMode) -> Self {
        Self {
            primary,
            fallback: MemoryLimiter::new(),
            mode,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            clock: MonotonicClock::new(),
            degraded: AtomicBool::new(false),
            next_probe_us: AtomicU64::new(0),
        }
    }

    /// Sets the time between attempts to reach the primary while degraded.
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// The configured failure mode.
    pub fn mode(&self) -> FailureMode {
        self.mode
    }

    /// True while the primary is considered down.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// While degraded, lets one caller per probe interval through to the
    /// primary.
    fn claim_probe(&self) -> bool {
        let now = micros(self.clock.now());
        let next = self.next_probe_us.load(Ordering::SeqCst);
        now >= next
            && self
                .next_probe_us
                .compare_exchange(
                    next,
                    now.saturating_add(micros(self.probe_interval)),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
    }

    fn mark_degraded(&self, error: &LimiterError) {
        let now = micros(self.clock.now());
        self.next_probe_us.store(
            now.saturating_add(micros(self.probe_interval)),
            Ordering::SeqCst,
        );
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                failure_mode = %self.mode,
                error = %error,
                "rate-limit back end unavailable; answering per RATE_LIMIT_FAILURE_MODE"
            );
            AuditEvent::new(names::RATE_LIMIT_DEGRADED, outcome::DEGRADED)
                .reason("backend_unavailable")
                .failure_mode(self.mode.as_str())
                .emit();
        }
    }

    fn mark_healthy(&self) {
        if self.degraded.swap(false, Ordering::SeqCst) {
            tracing::info!(failure_mode = %self.mode, "rate-limit back end answers again");
            AuditEvent::new(names::RATE_LIMIT_RECOVERED, outcome::OK)
                .failure_mode(self.mode.as_str())
                .emit();
        }
    }

    fn degraded_answer(
        &self,
        key: &str,
        cost: u32,
        policy: &Policy,
        cause: &dyn fmt::Display,
    ) -> Result<Decision, LimiterError> {
        match self.mode {
            FailureMode::Local => Ok(self.fallback.check_now(key, cost, policy)),
            FailureMode::Open => Ok(Decision {
                allowed: true,
                limit: policy.burst(),
                remaining: policy.burst(),
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
            }),
            FailureMode::Closed => Err(LimiterError::Unavailable {
                retry_after: self.probe_interval.max(Duration::from_secs(1)),
                cause: cause.to_string(),
            }),
        }
    }
}

#[async_trait]
impl Limiter for ResilientLimiter {
    async fn check(&self, key: &str, cost: u32, policy: &Policy) -> Result<Decision, LimiterError> {
        if self.is_degraded() && !self.claim_probe() {
            return self.degraded_answer(key, cost, policy, &"back end marked down");
        }
        match self.primary.check(key, cost, policy).await {
            Ok(decision) => {
                self.mark_healthy();
                Ok(decision)
            }
            Err(error) => {
                self.mark_degraded(&error);
                self.degraded_answer(key, cost, policy, &error)
            }
        }
    }
}
