//! HTTP response headers for rate-limited routes: `Retry-After` and the
//! IETF `RateLimit-Policy` / `RateLimit` fields.
//!
//! Syntax follows draft-ietf-httpapi-ratelimit-headers-10/-11 (§3 and §4;
//! unchanged since -08): both fields are Structured Field Lists (RFC 9651)
//! whose items are the policy name as an sf-string, with integer parameters:
//!
//! ```text
//! RateLimit-Policy: "default";q=60;w=60   q = quota, w = window in seconds
//! RateLimit: "default";r=9;t=1            r = available quota, t = effective window (s)
//! ```
//!
//! Mapping from GCRA: `q`/`w` advertise the sustained rate
//! (`rate_per_minute` per 60 s). `r` is [`Decision::remaining`] (what may be
//! spent right now, at most the burst). `t` is, when allowed, the seconds
//! until the bucket is full again ([`Decision::reset_after`], rounded up)
//! and, when denied, the `Retry-After` value, so `Retry-After` never points
//! before the end of the effective window (draft §6).
//!
//! Use: on every response of a limited route call [`insert`] (it adds
//! `Retry-After` to denied decisions, which the caller answers with 429);
//! when the limiter itself failed (`closed` mode) answer 503 after
//! [`insert_unavailable`].

use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::{Decision, LimiterError, Policy};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers §3).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers §4).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `Retry-After` delay-seconds: whole seconds rounded up, at least 1 (a
/// client told "0" would retry at once and be refused again).
pub fn retry_after_secs(delay: Duration) -> u64 {
    ceil_secs(delay).max(1)
}

/// A `Retry-After` header value for `delay` (see [`retry_after_secs`]).
pub fn retry_after_value(delay: Duration) -> HeaderValue {
    HeaderValue::from(retry_after_secs(delay))
}

/// `RateLimit-Policy` value: `"{name}";q={rate_per_minute};w=60`.
pub fn policy_value(name: &str, policy: &Policy) -> HeaderValue {
    header_value(format!(
        "{};q={};w=60",
        sf_string(name),
        policy.rate_per_minute()
    ))
}

/// `RateLimit` value: `"{name}";r={remaining};t={seconds}` (see the module
/// docs for `t`).
pub fn ratelimit_value(name: &str, decision: &Decision) -> HeaderValue {
    let t = if decision.allowed {
        ceil_secs(decision.reset_after)
    } else {
        retry_after_secs(decision.retry_after)
    };
    header_value(format!(
        "{};r={};t={}",
        sf_string(name),
        decision.remaining,
        t
    ))
}

/// Sets `RateLimit-Policy` and `RateLimit`, and `Retry-After` when the
/// decision is a denial (answer it with 429 Too Many Requests).
pub fn insert(headers: &mut HeaderMap, name: &str, policy: &Policy, decision: &Decision) {
    headers.insert(RATELIMIT_POLICY, policy_value(name, policy));
    headers.insert(RATELIMIT, ratelimit_value(name, decision));
    if !decision.allowed {
        headers.insert(RETRY_AFTER, retry_after_value(decision.retry_after));
    }
}

/// Sets `Retry-After` for a 503 answered because the limiter failed
/// ([`LimiterError`], e.g. failure mode `closed`).
pub fn insert_unavailable(headers: &mut HeaderMap, error: &LimiterError) {
    headers.insert(RETRY_AFTER, retry_after_value(error.retry_after()));
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// An RFC 9651 sf-string: `"` and `\` escaped; characters outside printable
/// ASCII (not allowed in sf-strings) replaced by `?`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn header_value(s: String) -> HeaderValue {
    // Only printable ASCII is ever produced, which is always a valid value.
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("\"invalid\";r=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, retry_ms: u64, reset_ms: u64) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining,
            retry_after: Duration::from_millis(retry_ms),
            reset_after: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn retry_after_rounds_up_with_a_minimum_of_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
        assert_eq!(retry_after_value(Duration::from_millis(2500)), "3");
    }

    #[test]
    fn policy_and_ratelimit_values_follow_the_draft_syntax() {
        let policy = Policy::new(60, 10).unwrap();
        assert_eq!(policy_value("default", &policy), "\"default\";q=60;w=60");
        assert_eq!(
            ratelimit_value("default", &decision(true, 9, 0, 1000)),
            "\"default\";r=9;t=1"
        );
        assert_eq!(
            ratelimit_value("default", &decision(true, 7, 0, 2001)),
            "\"default\";r=7;t=3"
        );
        assert_eq!(
            ratelimit_value("default", &decision(false, 0, 400, 10_000)),
            "\"default\";r=0;t=1"
        );
        assert_eq!(
            ratelimit_value("default", &decision(true, 10, 0, 0)),
            "\"default\";r=10;t=0"
        );
    }

    #[test]
    fn policy_names_are_escaped_sf_strings() {
        let policy = Policy::new(1, 1).unwrap();
        assert_eq!(
            policy_value("a\"b\\c\u{e9}\n", &policy),
            "\"a\\\"b\\\\c??\";q=1;w=60"
        );
    }

    #[test]
    fn insert_adds_retry_after_only_when_denied() {
        let policy = Policy::new(60, 10).unwrap();
        let mut h = HeaderMap::new();
        insert(&mut h, "mcp", &policy, &decision(true, 3, 0, 7000));
        assert_eq!(h["ratelimit-policy"], "\"mcp\";q=60;w=60");
        assert_eq!(h["ratelimit"], "\"mcp\";r=3;t=7");
        assert!(!h.contains_key(RETRY_AFTER));

        insert(&mut h, "mcp", &policy, &decision(false, 0, 1500, 10_000));
        assert_eq!(h["ratelimit"], "\"mcp\";r=0;t=2");
        assert_eq!(h[RETRY_AFTER], "2");
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let mut h = HeaderMap::new();
        let err = LimiterError::Unavailable {
            retry_after: Duration::from_millis(200),
            cause: "down".into(),
        };
        insert_unavailable(&mut h, &err);
        assert_eq!(h[RETRY_AFTER], "1");
        insert_unavailable(&mut h, &LimiterError::Timeout(Duration::from_millis(50)));
        assert_eq!(h[RETRY_AFTER], "1");
    }
}
