//! The rate-limit settings both servers share, read from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RATE_LIMIT_PER_MINUTE` | `60` | sustained units per minute per key (1 ..= 60 000 000) |
//! | `RATE_LIMIT_BURST` | `10` | units a key may spend at once (1 ..= 1 000 000) |
//! | `RATE_LIMIT_TOOL_CALL_COST` | `2` | units an MCP `tools/call` spends; other methods spend 1 (1 ..= burst) |
//! | `RATE_LIMIT_FAILURE_MODE` | `local` | when Redis fails: `local` (in-memory per replica), `open` (allow), `closed` (503) |
//! | `RATE_LIMIT_REDIS_TIMEOUT_MS` | `100` | per-check Redis budget in ms (1 ..= 10 000) |
//! | `TRUSTED_PROXIES` | empty | comma-separated CIDRs/addresses whose `X-Forwarded-For` is believed |
//!
//! Empty values count as unset; errors are one line naming the variable.

use std::time::Duration;

use ratelimit::config::{DEFAULT_BURST, DEFAULT_RATE_PER_MINUTE, DEFAULT_TOOL_CALL_COST};
use ratelimit::{DEFAULT_REDIS_TIMEOUT, FailureMode, Policy, RateLimitConfig, TrustedProxies};

use crate::config::ConfigError;

/// Reads the variables from the process environment.
pub fn rate_limit_from_env() -> Result<RateLimitConfig, ConfigError> {
    rate_limit_from_lookup(|name| std::env::var(name).ok())
}

/// Reads the variables through `lookup` (tests pass a map instead of
/// touching the process environment).
pub fn rate_limit_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<RateLimitConfig, ConfigError> {
    let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());

    let rate = number(
        "RATE_LIMIT_PER_MINUTE",
        get("RATE_LIMIT_PER_MINUTE"),
        DEFAULT_RATE_PER_MINUTE,
        Policy::MAX_RATE_PER_MINUTE,
    )?;
    let burst = number(
        "RATE_LIMIT_BURST",
        get("RATE_LIMIT_BURST"),
        DEFAULT_BURST,
        Policy::MAX_BURST,
    )?;
    // Both are in range, so the policy is valid; keep the error path
    // anyway rather than panic.
    let policy = Policy::new(rate, burst)
        .map_err(|e| ConfigError::new("RATE_LIMIT_PER_MINUTE", e.to_string()))?;
    let tool_call_cost = number(
        "RATE_LIMIT_TOOL_CALL_COST",
        get("RATE_LIMIT_TOOL_CALL_COST"),
        DEFAULT_TOOL_CALL_COST.min(burst),
        burst,
    )
    .map_err(|mut e| {
        e.message
            .push_str(" (a cost above RATE_LIMIT_BURST could never be allowed)");
        e
    })?;
    let failure_mode = match get("RATE_LIMIT_FAILURE_MODE") {
        None => FailureMode::default(),
        Some(v) => v.parse().map_err(|e: ratelimit::ParseFailureModeError| {
            ConfigError::new("RATE_LIMIT_FAILURE_MODE", e.to_string())
        })?,
    };
    let timeout_ms = number(
        "RATE_LIMIT_REDIS_TIMEOUT_MS",
        get("RATE_LIMIT_REDIS_TIMEOUT_MS"),
        u32::try_from(DEFAULT_REDIS_TIMEOUT.as_millis()).unwrap_or(100),
        10_000,
    )?;
    let trusted_proxies = match get("TRUSTED_PROXIES") {
        None => TrustedProxies::none(),
        Some(v) => TrustedProxies::parse(&v)
            .map_err(|e| ConfigError::new("TRUSTED_PROXIES", e.to_string()))?,
    };
    Ok(RateLimitConfig {
        policy,
        tool_call_cost,
        failure_mode,
        redis_timeout: Duration::from_millis(u64::from(timeout_ms)),
        trusted_proxies,
    })
}

fn number(
    var: &'static str,
    value: Option<String>,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ConfigError::new(
                var,
                format!("expected a whole number from 1 to {max}, got {value:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        rate_limit_from_lookup(|k| map.get(k).cloned())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        config(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c, RateLimitConfig::default());
        assert_eq!(c.policy.rate_per_minute(), 60);
        assert_eq!(c.policy.burst(), 10);
        assert_eq!(c.tool_call_cost, 2);
        assert_eq!(c.failure_mode, FailureMode::Local);
        assert_eq!(c.redis_timeout, Duration::from_millis(100));
        assert!(c.trusted_proxies.is_empty());
        // Empty values are unset (a `VAR=` line in .env).
        assert_eq!(config(&[("RATE_LIMIT_BURST", " ")]).unwrap(), c);
    }

    #[test]
    fn explicit_values() {
        let c = config(&[
            ("RATE_LIMIT_PER_MINUTE", "120"),
            ("RATE_LIMIT_BURST", " 20 "),
            ("RATE_LIMIT_TOOL_CALL_COST", "5"),
            ("RATE_LIMIT_FAILURE_MODE", "Closed"),
            ("RATE_LIMIT_REDIS_TIMEOUT_MS", "50"),
            ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
        ])
        .unwrap();
        assert_eq!(c.policy, Policy::new(120, 20).unwrap());
        assert_eq!(c.tool_call_cost, 5);
        assert_eq!(c.failure_mode, FailureMode::Closed);
        assert_eq!(c.redis_timeout, Duration::from_millis(50));
        assert_eq!(c.trusted_proxies.networks().len(), 2);
        // A burst below the default cost lowers the default cost.
        let c = config(&[("RATE_LIMIT_BURST", "1")]).unwrap();
        assert_eq!(c.tool_call_cost, 1);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            error(&[("RATE_LIMIT_PER_MINUTE", "0")]),
            "RATE_LIMIT_PER_MINUTE: expected a whole number from 1 to 60000000, got \"0\""
        );
        assert_eq!(
            error(&[("RATE_LIMIT_BURST", "ten")]),
            "RATE_LIMIT_BURST: expected a whole number from 1 to 1000000, got \"ten\""
        );
        assert_eq!(
            error(&[
                ("RATE_LIMIT_BURST", "3"),
                ("RATE_LIMIT_TOOL_CALL_COST", "4")
            ]),
            "RATE_LIMIT_TOOL_CALL_COST: expected a whole number from 1 to 3, got \"4\" \
             (a cost above RATE_LIMIT_BURST could never be allowed)"
        );
        assert_eq!(
            error(&[("RATE_LIMIT_FAILURE_MODE", "fail-open")]),
            "RATE_LIMIT_FAILURE_MODE: expected one of local, open, closed; got \"fail-open\""
        );
        assert_eq!(
            error(&[("RATE_LIMIT_REDIS_TIMEOUT_MS", "-5")]),
            "RATE_LIMIT_REDIS_TIMEOUT_MS: expected a whole number from 1 to 10000, got \"-5\""
        );
        assert_eq!(
            error(&[("TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")]),
            "TRUSTED_PROXIES: \"proxy.local\" is not an IP address or CIDR (like 10.0.0.0/8 or ::1/128)"
        );
    }

    #[test]
    fn failure_mode_round_trips() {
        for mode in [FailureMode::Local, FailureMode::Open, FailureMode::Closed] {
            assert_eq!(mode.to_string().parse::<FailureMode>().unwrap(), mode);
        }
        assert_eq!(" OPEN ".parse::<FailureMode>().unwrap(), FailureMode::Open);
    }
}

/// The variables [`rate_limit_from_lookup`] reads (see the table above); each
/// server's `--help` table must list them all.
pub const ENV_VARS: &[&str] = &[
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_TOOL_CALL_COST",
    "RATE_LIMIT_FAILURE_MODE",
    "RATE_LIMIT_REDIS_TIMEOUT_MS",
    "TRUSTED_PROXIES",
];

#[cfg(test)]
mod env_vars_tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn env_vars_lists_what_from_lookup_reads() {
        let asked = RefCell::new(Vec::new());
        let _ = rate_limit_from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        let mut asked = asked.into_inner();
        asked.sort();
        let mut listed: Vec<&str> = ENV_VARS.to_vec();
        listed.sort_unstable();
        assert_eq!(asked, listed);
    }
}
