//! Authorization codes (OAuth 2.1 §4.1): 256-bit random, single use, 60 s,
//! bound to the client, redirect URI, PKCE challenge, resource, user and
//! granted scope. Stored under the SHA-256 of the code, never the code.
//!
//! A redeemed code leaves a record behind (`oauth:code_used:*`) naming what
//! was issued from it, so a second redemption can revoke those tokens
//! (OAuth 2.1 §4.1.3: the code may have been stolen).

use std::sync::Arc;
use std::time::Duration;

use auth::scope::ScopeSet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use server_kit::kv::KvStore;
use server_kit::store::StoreError;
use sha2::{Digest, Sha256};

/// How long an authorization code lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// What an authorization code stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub client_id: String,
    /// As sent in the authorization request, or the one registered URI when
    /// the request named none.
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri`: then the
    /// token request must repeat it exactly (OAuth 2.1 §4.1.3); if not, it
    /// may omit it.
    #[serde(default = "yes")]
    pub redirect_uri_sent: bool,
    /// PKCE S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    /// Canonical RFC 8707 resource the token will be for.
    pub resource: String,
    /// Granted scope: requested ∩ client ∩ user ∩ consented.
    pub scope: ScopeSet,
    /// The user id (`sub` of the tokens).
    pub sub: String,
    /// When the user authenticated (unix seconds).
    pub auth_time: i64,
}

/// serde default for flags that were always true before the field existed.
pub(crate) fn yes() -> bool {
    true
}

/// What was issued from a redeemed code, kept so a replay can revoke it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Redemption {
    /// `jti` and `exp` of the access token issued from the code.
    pub jti: String,
    pub exp: i64,
    /// The refresh-token family started by the code, if any.
    pub refresh_family: Option<String>,
}

/// The outcome of presenting a code.
#[derive(Debug)]
pub enum Presented {
    /// First use: the code's grant (now consumed).
    Fresh(AuthorizationCode),
    /// Already redeemed: what was issued from it (to revoke).
    Replayed(Option<Redemption>),
    /// Unknown or expired.
    Unknown,
}

/// The code store (memory or Redis, through [`KvStore`]).
#[derive(Clone)]
pub struct Codes {
    kv: Arc<dyn KvStore>,
    /// How long the redemption record is kept: the longest life of anything
    /// issued from a code (refresh absolute lifetime).
    redemption_ttl: Duration,
    /// How long a fresh code lives ([`CODE_TTL`]).
    code_ttl: Duration,
}

fn digest(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code.as_bytes()))
}

// A code and its redemption record share the code's digest as a Redis
// Cluster hash tag: one slot, one shard, so a transaction or script over
// the pair stays legal in cluster mode (today `present` takes one and
// writes the other in two commands).
fn key(code: &str) -> String {
    format!("oauth:code:{{{}}}", digest(code))
}

fn used_key(code: &str) -> String {
    format!("oauth:code_used:{{{}}}", digest(code))
}

/// A 256-bit random token, base64url (codes, refresh tokens, CSRF tokens).
pub fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::new("rng failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Codes {
    pub fn new(kv: Arc<dyn KvStore>, redemption_ttl: Duration) -> Self {
        Self {
            kv,
            redemption_ttl,
            code_ttl: CODE_TTL,
        }
    }

    /// The same store with another code lifetime (tests of expiry wait out
    /// a short one instead of 60 s).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// Stores the grant and returns the code to put in the redirect.
    pub async fn issue(&self, grant: &AuthorizationCode) -> Result<String, StoreError> {
        let code = random_token()?;
        let value = serde_json::to_vec(grant).map_err(|e| StoreError::new(e.to_string()))?;
        self.kv.put(&key(&code), &value, self.code_ttl).await?;
        Ok(code)
    }

    /// Consumes the code. A malformed stored value reads as unknown.
    pub async fn present(&self, code: &str) -> Result<Presented, StoreError> {
        if code.is_empty() || code.len() > 512 {
            return Ok(Presented::Unknown);
        }
        if let Some(v) = self.kv.take(&key(code)).await? {
            // Mark it used at once, so a replay racing the token issuance
            // is still recognised as a replay.
            self.kv
                .put(&used_key(code), b"null", self.redemption_ttl)
                .await?;
            return Ok(serde_json::from_slice(&v).map_or(Presented::Unknown, Presented::Fresh));
        }
        match self.kv.get(&used_key(code)).await? {
            Some(v) => Ok(Presented::Replayed(
                serde_json::from_slice::<Option<Redemption>>(&v)
                    .ok()
                    .flatten(),
            )),
            None => Ok(Presented::Unknown),
        }
    }

    /// Records what was issued from a redeemed code.
    pub async fn record(&self, code: &str, redemption: &Redemption) -> Result<(), StoreError> {
        let value = serde_json::to_vec(redemption).map_err(|e| StoreError::new(e.to_string()))?;
        self.kv
            .put(&used_key(code), &value, self.redemption_ttl)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_kit::kv::MemoryKv;

    fn grant() -> AuthorizationCode {
        AuthorizationCode {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1:5000/cb".into(),
            redirect_uri_sent: true,
            code_challenge: "x".repeat(43),
            resource: "http://localhost:8000/mcp".into(),
            scope: ScopeSet::parse("customer:read").unwrap(),
            sub: "alice".into(),
            auth_time: 1,
        }
    }

    #[tokio::test]
    async fn single_use_then_replay_is_recognised() {
        let codes = Codes::new(Arc::new(MemoryKv::new()), Duration::from_secs(600));
        let code = codes.issue(&grant()).await.unwrap();
        assert_eq!(code.len(), 43);
        assert!(matches!(codes.present(&code).await.unwrap(), Presented::Fresh(g) if g == grant()));
        assert!(matches!(
            codes.present(&code).await.unwrap(),
            Presented::Replayed(None)
        ));
        let r = Redemption {
            jti: "j".into(),
            exp: 9,
            refresh_family: Some("f".into()),
        };
        codes.record(&code, &r).await.unwrap();
        assert!(
            matches!(codes.present(&code).await.unwrap(), Presented::Replayed(Some(x)) if x == r)
        );
        assert!(matches!(
            codes.present("nope").await.unwrap(),
            Presented::Unknown
        ));
        assert!(matches!(
            codes.present("").await.unwrap(),
            Presented::Unknown
        ));
    }
}
