//! Environment helpers shared by every binary's `Config::from_env()`.
//!
//! Each helper names the variable in its error so start-up fails with one
//! line that says what to fix.

use std::fmt::Display;
use std::str::FromStr;

/// A configuration value that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &str, message: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            message: message.into(),
        }
    }
}

/// Loads `.env` from the working directory if it exists. A malformed file is
/// an error; a missing one is not.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
    }
}

/// The variable's value; unset or empty counts as absent.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable's value, or an error naming it.
pub fn required_var(name: &str) -> Result<String, ConfigError> {
    var(name).ok_or_else(|| ConfigError::new(name, "is not set"))
}

/// The variable's value or `default`.
pub fn var_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

/// The variable parsed as `T`, or `default` when unset.
pub fn var_parsed<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(name, format!("invalid value {:?}: {e}", v.trim()))),
    }
}

/// A listen address that can be switched off (`OAUTH_METRICS_BIND`,
/// `MCP_METRICS_BIND`): unset is `Some(default)`, set to an empty or blank
/// value is `None` (off), anything else must parse as `host:port`.
pub fn var_addr_or_off(
    name: &str,
    default: std::net::SocketAddr,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(Some(default)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "is not valid UTF-8")),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|e| {
            ConfigError::new(
                name,
                format!(
                    "invalid value {:?}: {e} (host:port, or empty to turn it off)",
                    v.trim()
                ),
            )
        }),
    }
}

/// A comma-separated list (items trimmed), or `default` when unset or blank.
///
/// An empty item (`a,,b`, `a,`, `,`) is an error naming the variable: every
/// list these servers read is an allow-list or a protection's input, and an
/// item that vanished (a typo, a variable substituted as empty) must not
/// silently widen or switch off what the list protects.
pub fn var_list(name: &str, default: &[&str]) -> Result<Vec<String>, ConfigError> {
    match var(name) {
        None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
        Some(v) => parse_list(name, &v),
    }
}

/// The items of a comma-separated list value; an empty item is an error
/// naming `name` (see [`var_list`]).
pub fn parse_list(name: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .enumerate()
        .map(|(i, item)| {
            let item = item.trim();
            if item.is_empty() {
                Err(ConfigError::new(
                    name,
                    format!(
                        "entry {} is empty in {value:?}: remove the extra comma, \
                         or unset the variable for its default",
                        i + 1
                    ),
                ))
            } else {
                Ok(item.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_variable() {
        let e = ConfigError::new("OAUTH_TOKEN_TTL_SECS", "must be between 60 and 3600");
        assert_eq!(
            e.to_string(),
            "OAUTH_TOKEN_TTL_SECS: must be between 60 and 3600"
        );
    }

    #[test]
    fn parsed_reports_bad_values() {
        // A variable name no other test touches.
        // SAFETY-free: edition 2024 makes set_var unsafe, so use a known-unset name.
        let r: Result<u32, _> = var_parsed("AUTH_TEST_SURELY_UNSET_VAR", 7);
        assert_eq!(r, Ok(7));
        assert_eq!(
            var_list("AUTH_TEST_SURELY_UNSET_VAR", &["a"]),
            Ok(vec!["a".to_string()])
        );
    }

    #[test]
    fn lists_refuse_empty_entries_naming_the_variable() {
        assert_eq!(
            parse_list("L", " a , b:1 ,[::1]"),
            Ok(vec!["a".to_string(), "b:1".into(), "[::1]".into()])
        );
        for (value, position) in [(",", 1), ("a,", 2), ("a,,b", 2), (" ,a", 1), ("a, ,b", 2)] {
            let e = parse_list("MCP_ALLOWED_HOSTS", value).unwrap_err();
            assert_eq!(e.var, "MCP_ALLOWED_HOSTS");
            assert_eq!(
                e.message,
                format!(
                    "entry {position} is empty in {value:?}: remove the extra comma, \
                     or unset the variable for its default"
                ),
                "{value:?}"
            );
        }
    }
}
