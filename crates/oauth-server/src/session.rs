//! The browser session of the interactive flow: a random id in a cookie,
//! and in the key/value store (under the id's SHA-256, never the id) the
//! signed-in user and when they signed in.
//!
//! Cookie (docs/decisions/0014): `__Host-securemcp_session` with `Secure;
//! HttpOnly; SameSite=Lax; Path=/` when the issuer is https; on an http
//! loopback issuer (local development) browsers refuse `__Host-` without
//! `Secure`, so there it is `securemcp_session` with `HttpOnly;
//! SameSite=Lax; Path=/`. Lifetimes: 30 min idle, 8 h absolute.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use server_kit::kv::KvStore;
use server_kit::store::StoreError;
use sha2::{Digest, Sha256};

use crate::codes::random_token;

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is gone this long after sign-in, however busy.
pub const ABSOLUTE_SECS: i64 = 8 * 3600;

/// Cookie name on an https issuer (RFC 6265bis `__Host-` prefix: Secure,
/// Path=/, no Domain, so no sibling host can set or shadow it).
pub const SECURE_COOKIE: &str = "__Host-securemcp_session";
/// Cookie name on an http loopback issuer (development only).
pub const DEV_COOKIE: &str = "securemcp_session";

/// What the store keeps about a signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: String,
    /// When the user authenticated (unix seconds).
    pub auth_time: i64,
}

/// The session cookie's name and attributes for an issuer.
#[derive(Debug, Clone, Copy)]
pub struct CookieSpec {
    pub name: &'static str,
    secure: bool,
}

impl CookieSpec {
    pub fn for_issuer(issuer: &str) -> Self {
        if issuer.starts_with("https://") {
            Self {
                name: SECURE_COOKIE,
                secure: true,
            }
        } else {
            Self {
                name: DEV_COOKIE,
                secure: false,
            }
        }
    }

    /// The `Set-Cookie` value for a session id.
    pub fn set_cookie(&self, id: &SessionId) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            self.name, id.0
        ))
        .ok()
    }

    /// The session id the request's cookie carries, if well-formed.
    pub fn read(&self, headers: &HeaderMap) -> Option<SessionId> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value)
            .filter(|v| v.len() == 43 && v.bytes().all(is_base64url))
            .map(|v| SessionId(v.to_owned()))
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A session id (256 random bits, base64url): a bearer secret, so its
/// `Debug` prints nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

impl SessionId {
    pub fn new() -> Result<Self, StoreError> {
        random_token().map(Self)
    }

    /// What the store and the pending requests name the session by.
    pub fn digest(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }

    fn key(&self) -> String {
        format!("oauth:session:{}", self.digest())
    }

    /// The signed-in user, if the session is live; refreshes its idle time.
    pub async fn load(&self, kv: &dyn KvStore) -> Result<Option<SessionRecord>, StoreError> {
        let Some(raw) = kv.get(&self.key()).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<SessionRecord>(&raw) else {
            return Ok(None);
        };
        let age = auth::now_unix() - record.auth_time;
        if !(0..ABSOLUTE_SECS).contains(&age) {
            kv.delete(&self.key()).await?;
            return Ok(None);
        }
        self.store(kv, &record).await?;
        Ok(Some(record))
    }

    /// Saves the record for the idle lifetime (never past the absolute one).
    pub async fn store(&self, kv: &dyn KvStore, record: &SessionRecord) -> Result<(), StoreError> {
        let left = ABSOLUTE_SECS - (auth::now_unix() - record.auth_time);
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1));
        let value = serde_json::to_vec(record).map_err(|e| StoreError::new(e.to_string()))?;
        kv.put(&self.key(), &value, IDLE.min(left)).await
    }

    /// Ends the session.
    pub async fn delete(&self, kv: &dyn KvStore) -> Result<(), StoreError> {
        kv.delete(&self.key()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_kit::kv::MemoryKv;

    #[test]
    fn cookie_names_and_flags_follow_the_issuer() {
        let id = SessionId("a".repeat(43));
        let https = CookieSpec::for_issuer("https://auth.example.com");
        assert_eq!(
            https.set_cookie(&id).unwrap(),
            format!(
                "__Host-securemcp_session={}; Path=/; HttpOnly; SameSite=Lax; Secure",
                id.0
            )
        );
        let http = CookieSpec::for_issuer("http://localhost:8080");
        assert_eq!(
            http.set_cookie(&id).unwrap(),
            format!("securemcp_session={}; Path=/; HttpOnly; SameSite=Lax", id.0)
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; securemcp_session={}", id.0)).unwrap(),
        );
        assert_eq!(http.read(&h), Some(id.clone()));
        assert_eq!(https.read(&h), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("securemcp_session=short"),
        );
        assert_eq!(http.read(&h), None);
        assert_eq!(format!("{id:?}"), "SessionId(..)");
    }

    #[tokio::test]
    async fn sessions_expire_after_the_absolute_lifetime() {
        let kv = MemoryKv::new();
        let id = SessionId::new().unwrap();
        let live = SessionRecord {
            user_id: "alice".into(),
            auth_time: auth::now_unix() - 60,
        };
        id.store(&kv, &live).await.unwrap();
        assert_eq!(id.load(&kv).await.unwrap(), Some(live));
        let old = SessionRecord {
            user_id: "alice".into(),
            auth_time: auth::now_unix() - ABSOLUTE_SECS - 1,
        };
        kv.put(&id.key(), &serde_json::to_vec(&old).unwrap(), IDLE)
            .await
            .unwrap();
        assert_eq!(id.load(&kv).await.unwrap(), None);
        assert_eq!(kv.get(&id.key()).await.unwrap(), None);
    }
}
