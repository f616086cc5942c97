//! RFC 9068 JWT access-token claims.

use serde::{Deserialize, Serialize};

use crate::scope::ScopeSet;

/// The `typ` header value of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// True when `aud` names `resource` exactly (both sides canonical).
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Audience::One(a) => a == resource,
            Audience::Many(v) => v.iter().any(|a| a == resource),
        }
    }
}

/// Claims of the access tokens we issue (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The client_id for client_credentials tokens.
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub scope: ScopeSet,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl AccessTokenClaims {
    /// Seconds of life left at `now` (0 once expired).
    pub fn remaining_secs(&self, now: i64) -> u64 {
        u64::try_from(self.exp.saturating_sub(now)).unwrap_or(0)
    }
}
