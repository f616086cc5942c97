//! Bounded retries shared by the token endpoint, the MCP transport and the
//! LLM APIs.
//!
//! - 429 and 503 honour `Retry-After` (delta-seconds or an HTTP date; also
//!   `retry-after-ms`, which some LLM APIs send);
//! - other 5xx (not 501/505) and connection failures use exponential backoff
//!   with full jitter: a random delay in `[0, min(max_delay, base·2ⁿ)]`;
//! - attempts and total time are both capped; a `Retry-After` that would
//!   overrun the time budget ends the retries at once instead of sleeping;
//! - nothing else is retried: 4xx other than 401 (handled by the token layer)
//!   and 429 are the caller's mistake and fail immediately, and a TLS failure
//!   is a configuration problem, not a transient one.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, StatusCode};

/// How hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = no retries).
    pub max_attempts: u32,
    /// Backoff before the second attempt (before jitter).
    pub base_delay: Duration,
    /// Largest backoff step (before jitter).
    pub max_delay: Duration,
    /// Time budget from the first attempt; no retry starts after it.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Starts counting attempts and time for one logical request.
    pub fn start(&self) -> RetryState {
        RetryState {
            policy: self.clone(),
            started: Instant::now(),
            attempts: 1,
        }
    }

    /// The backoff ceiling before attempt `attempt + 1` (`attempt` ≥ 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Why retrying stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` reached.
    Attempts,
    /// The time budget is spent (or the next wait would overrun it).
    TimeBudget,
    /// The server asked to wait longer than the remaining budget.
    RetryAfterTooLong(Duration),
}

/// Attempts and elapsed time of one logical request.
#[derive(Debug, Clone)]
pub struct RetryState {
    policy: RetryPolicy,
    started: Instant,
    attempts: u32,
}

impl RetryState {
    /// Attempts made so far (the first counts).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the first attempt.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// After a retryable failure: how long to wait before the next attempt,
    /// or why not to try again. `retry_after` is the server's own wish.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Result<Duration, GiveUp> {
        if self.attempts >= self.policy.max_attempts {
            return Err(GiveUp::Attempts);
        }
        let remaining = self.policy.max_elapsed.saturating_sub(self.elapsed());
        let delay = match retry_after {
            Some(wanted) if wanted > remaining => return Err(GiveUp::RetryAfterTooLong(wanted)),
            Some(wanted) => wanted,
            None => jitter(self.policy.ceiling(self.attempts)),
        };
        if delay >= remaining {
            return Err(GiveUp::TimeBudget);
        }
        self.attempts += 1;
        Ok(delay)
    }

    /// A one-line summary such as `after 5 attempts in 3.2 s`.
    pub fn summary(&self) -> String {
        format!(
            "after {} attempt{} in {:.1} s",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed().as_secs_f64()
        )
    }
}

/// A uniformly random duration in `[0, ceiling]` ("full jitter").
pub fn jitter(ceiling: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return ceiling / 2;
    }
    let unit = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(unit)
}

/// Whether a response status is worth another attempt.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// The server's requested wait, from `retry-after-ms` or `Retry-After`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, max_elapsed_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_elapsed: Duration::from_millis(max_elapsed_ms),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy(10, 60_000);
        let ceilings: Vec<u128> = (1..=5).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 400, 400]);
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        for _ in 0..1000 {
            assert!(jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let mut s = policy(3, 60_000).start();
        assert!(s.next_delay(None).is_ok());
        assert!(s.next_delay(None).is_ok());
        assert_eq!(s.next_delay(None), Err(GiveUp::Attempts));
        assert_eq!(s.attempts(), 3);
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget() {
        let mut s = policy(5, 10_000).start();
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(1))),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(30))),
            Err(GiveUp::RetryAfterTooLong(Duration::from_secs(30)))
        );
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn status_classes() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422, 501, 505] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}
