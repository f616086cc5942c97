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

/// A comma-separated list (empty items dropped), or `default` when unset.
pub fn var_list(name: &str, default: &[&str]) -> Vec<String> {
    match var(name) {
        None => default.iter().map(|s| (*s).to_owned()).collect(),
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
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
            vec!["a".to_string()]
        );
    }
}
