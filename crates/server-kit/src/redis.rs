//! The one Redis connection of a server process.
//!
//! Both servers open exactly one [`ConnectionManager`] (a multiplexed
//! connection that reconnects by itself) and hand clones of it to every
//! Redis user: the revocation and replay stores and the rate limiter. One
//! `REDIS_TIMEOUT_MS` bounds connecting and every command on it; the rate
//! limiter additionally bounds each check by its own, shorter
//! `RATE_LIMIT_REDIS_TIMEOUT_MS` budget so a slow Redis costs a request at
//! most that much.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, var, var_parsed};

/// Default `REDIS_TIMEOUT_MS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// `REDIS_URL` and `REDIS_TIMEOUT_MS`.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`; `None` (unset or empty): in-memory stores and limiter.
    /// A secret: it may carry a password.
    pub url: Option<SecretString>,
    /// `REDIS_TIMEOUT_MS` [250]: connect and command timeout.
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl RedisSettings {
    /// Reads `REDIS_URL` and `REDIS_TIMEOUT_MS` (1..=60000).
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
        Ok(Self {
            url,
            timeout: Duration::from_millis(ms),
        })
    }

    /// A local Redis at `url` with the default timeout (tests, embedding).
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: Some(SecretString::from(url.into())),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A Redis connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    #[error("REDIS_URL: invalid Redis URL ({0})")]
    InvalidUrl(String),
    #[error("cannot connect to Redis at REDIS_URL: {0}")]
    Connect(redis::RedisError),
}

/// Opens the process's one connection to `settings.url` (`None` when unset).
///
/// The first connection is made now, so a server whose Redis is unreachable
/// at start-up fails with a clear message instead of answering every request
/// degraded. Afterwards the manager reconnects by itself: a failed command
/// fails fast (one retry, 10–100 ms apart) and the next one tries again.
pub async fn connect(
    settings: &RedisSettings,
) -> Result<Option<ConnectionManager>, RedisConnectError> {
    let Some(url) = &settings.url else {
        return Ok(None);
    };
    let client = redis::Client::open(url.expose_secret())
        .map_err(|e| RedisConnectError::InvalidUrl(e.category().to_owned()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_with_config(client, config)
        .await
        .map(Some)
        .map_err(RedisConnectError::Connect)
}

/// The variables [`RedisSettings::from_env`] reads; each server's `--help`
/// table must list them all.
pub const ENV_VARS: &[&str] = &["REDIS_URL", "REDIS_TIMEOUT_MS"];

#[cfg(test)]
mod env_vars_tests {
    #[test]
    fn env_vars_lists_what_from_env_reads() {
        let mut listed = super::ENV_VARS.to_vec();
        listed.sort_unstable();
        assert_eq!(crate::cli::vars_read_in(include_str!("redis.rs")), listed);
    }
}
