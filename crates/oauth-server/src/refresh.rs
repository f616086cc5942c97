//! Refresh tokens (OAuth 2.1 §4.3, §6.1): opaque 256-bit values, stored only
//! as SHA-256 hashes, rotated on every use, grouped in families.
//!
//! A family starts at a code exchange and ends at its absolute lifetime
//! (`OAUTH_REFRESH_TTL_SECS`, not extended by rotation). Each token also
//! dies when unused for the idle lifetime (`OAUTH_REFRESH_IDLE_SECS`).
//!
//! Keys (all expiring, in [`KvStore`]; `{…}` is a Redis Cluster hash tag:
//! a token's two keys share one slot, and so do a family's two):
//! - `oauth:rt:{<hash>}` → [`RefreshRecord`]: the live token of a family; taken
//!   atomically on use, so one token is redeemed once even across replicas.
//! - `oauth:rtfam:{<family>}` → [`Family`]: the current token's hash, the last
//!   access token issued (to revoke it with the family), the revoked flag.
//! - `oauth:rt_used:{<hash>}` → family id of a rotated token, kept for the
//!   family's lifetime: presenting it again is reuse (a stolen token), and
//!   the whole family is revoked.
//! - `oauth:rtfam_revoked:{<family>}`: set once by revocation and never
//!   overwritten, unlike the family record, which every rotation rewrites.
//!   Revocation sets it *before* reading the family's current token, and
//!   rotation checks it *after* writing the new one, so a rotation racing a
//!   revocation cannot bring the family back: whichever runs second sees the
//!   other's write.
//!
//! Every check takes `now` (unix seconds) from the caller, so expiry is tested
//! without waiting.

use std::sync::Arc;
use std::time::Duration;

use auth::scope::ScopeSet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use server_kit::kv::KvStore;
use server_kit::store::StoreError;
use sha2::{Digest, Sha256};

use crate::codes::random_token;

/// What one live refresh token stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshRecord {
    pub family: String,
    pub client_id: String,
    /// The user (`sub` of the access tokens).
    pub sub: String,
    /// The family's scope: a refresh may narrow it, never widen it.
    pub scope: ScopeSet,
    /// The canonical resource (`aud`) of the family's access tokens.
    pub resource: String,
    /// When the user authenticated (unix seconds).
    pub auth_time: i64,
    /// When the family started (the code exchange): the absolute lifetime counts from here.
    pub family_start: i64,
    /// When this token was issued: the idle lifetime counts from here.
    pub issued_at: i64,
}

/// The state of a family.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Family {
    /// Hash of the family's current refresh token.
    pub current: String,
    /// The last access token issued in the family (revoked with it).
    pub last_jti: String,
    pub last_exp: i64,
    pub family_start: i64,
    pub revoked: bool,
    /// Earlier access tokens of the family that may still be live (each
    /// lives `OAUTH_TOKEN_TTL_SECS`, so a handful at most): revoking the
    /// family revokes every token issued from its code.
    #[serde(default)]
    pub earlier: Vec<AccessRef>,
}

/// An access token issued in a family (`jti`, `exp`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessRef {
    pub jti: String,
    pub exp: i64,
}

/// Everything needed to start a family (at a code exchange).
#[derive(Debug, Clone)]
pub struct NewFamily<'a> {
    pub client_id: &'a str,
    pub sub: &'a str,
    pub scope: &'a ScopeSet,
    pub resource: &'a str,
    pub auth_time: i64,
}

/// The access token issued alongside a refresh token.
#[derive(Debug, Clone, Copy)]
pub struct IssuedAccess<'a> {
    pub jti: &'a str,
    pub exp: i64,
}

/// The outcome of presenting a refresh token at the token endpoint.
#[derive(Debug)]
pub enum Redeemed {
    /// A live token, now consumed: rotate it.
    Live(RefreshRecord),
    /// A token already rotated away: a copy is in other hands. Revoke the family.
    Reused { family: String },
    /// Unknown, expired (idle or absolute) or of a revoked family.
    Dead,
}

/// What [`RefreshTokens::revoke_family`] found to revoke besides the refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedFamily {
    /// The family's access tokens that may still be live, the last one first.
    pub access: Vec<AccessRef>,
}

/// The refresh-token store (memory or Redis, through [`KvStore`]).
#[derive(Clone)]
pub struct RefreshTokens {
    kv: Arc<dyn KvStore>,
    /// Absolute lifetime of a family.
    ttl: i64,
    /// Idle lifetime of one token.
    idle: i64,
}

/// base64url(SHA-256(token)): what is stored instead of the token.
fn digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

// Rotation is a sequence of single-key commands ordered against races (see
// the module docs), not one transaction, so it never needs its keys in one
// slot; the tags still keep each pair together, by entity (spread evenly
// over the shards), for a future script over a pair. A token's hash and its
// family id cannot share one tag: the token is looked up without its family.
fn token_key(hash: &str) -> String {
    format!("oauth:rt:{{{hash}}}")
}

fn used_key(hash: &str) -> String {
    format!("oauth:rt_used:{{{hash}}}")
}

fn family_key(family: &str) -> String {
    format!("oauth:rtfam:{{{family}}}")
}

fn revoked_key(family: &str) -> String {
    format!("oauth:rtfam_revoked:{{{family}}}")
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::new(e.to_string()))
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

/// Tokens we never look up: empty, absurdly long, or a JWT (ours are 43
/// base64url characters; a JWT has dots).
fn plausible(token: &str) -> bool {
    !token.is_empty() && token.len() <= 512 && !token.contains('.')
}

impl RefreshTokens {
    pub fn new(kv: Arc<dyn KvStore>, ttl: Duration, idle: Duration) -> Self {
        let s = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
        Self {
            kv,
            ttl: s(ttl),
            idle: s(idle),
        }
    }

    /// Seconds the family has left at `now` (≤ 0: over).
    fn family_left(&self, family_start: i64, now: i64) -> i64 {
        family_start.saturating_add(self.ttl) - now
    }

    /// Seconds a token issued at `issued_at` has left at `now`: the
    /// sooner of its idle end and its family's end.
    fn token_left(&self, rec: &RefreshRecord, now: i64) -> i64 {
        (rec.issued_at.saturating_add(self.idle) - now).min(self.family_left(rec.family_start, now))
    }

    /// Starts a family (a code exchange) and returns `(token, family id)`.
    pub async fn start(
        &self,
        grant: &NewFamily<'_>,
        access: IssuedAccess<'_>,
        now: i64,
    ) -> Result<(String, String), StoreError> {
        let family = random_token()?;
        let rec = RefreshRecord {
            family: family.clone(),
            client_id: grant.client_id.to_owned(),
            sub: grant.sub.to_owned(),
            scope: grant.scope.clone(),
            resource: grant.resource.to_owned(),
            auth_time: grant.auth_time,
            family_start: now,
            issued_at: now,
        };
        let token = self.store_token(&rec, access, now).await?;
        Ok((token, family))
    }

    /// Issues the family's next token after `rec` was redeemed; `None` when
    /// the family was revoked meanwhile (the caller must then deny the
    /// access token it issued with it). The new token keeps the family's
    /// scope even when the access token was narrowed (RFC 6749 §6: a new
    /// refresh token has the scope of the one it replaces).
    pub async fn rotate(
        &self,
        rec: &RefreshRecord,
        access: IssuedAccess<'_>,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let next = RefreshRecord {
            issued_at: now,
            ..rec.clone()
        };
        let token = self.store_token(&next, access, now).await?;
        if self.kv.get(&revoked_key(&rec.family)).await?.is_some() {
            self.kv.delete(&token_key(&digest(&token))).await?;
            return Ok(None);
        }
        Ok(Some(token))
    }

    async fn store_token(
        &self,
        rec: &RefreshRecord,
        access: IssuedAccess<'_>,
        now: i64,
    ) -> Result<String, StoreError> {
        let token = random_token()?;
        let hash = digest(&token);
        // Carry the family's still-live access tokens over (none at start).
        let earlier = match self.load_family(&rec.family).await? {
            Some(old) => std::iter::once(AccessRef {
                jti: old.last_jti,
                exp: old.last_exp,
            })
            .chain(old.earlier)
            .filter(|a| a.exp > now)
            .collect(),
            None => Vec::new(),
        };
        let family = Family {
            current: hash.clone(),
            last_jti: access.jti.to_owned(),
            last_exp: access.exp,
            family_start: rec.family_start,
            revoked: false,
            earlier,
        };
        let family_ttl = self.family_left(rec.family_start, now);
        let token_ttl = self.token_left(rec, now);
        if token_ttl <= 0 {
            return Err(StoreError::new("refresh family has no lifetime left"));
        }
        // The family first: a token whose family record is missing reads as dead.
        self.kv
            .put(
                &family_key(&rec.family),
                &encode(&family)?,
                secs(family_ttl),
            )
            .await?;
        self.kv
            .put(&token_key(&hash), &encode(rec)?, secs(token_ttl))
            .await?;
        Ok(token)
    }

    /// Consumes a presented token (atomically: of two concurrent uses, one
    /// wins and the other reads as reuse).
    pub async fn redeem(&self, token: &str, now: i64) -> Result<Redeemed, StoreError> {
        if !plausible(token) {
            return Ok(Redeemed::Dead);
        }
        let hash = digest(token);
        if let Some(v) = self.kv.take(&token_key(&hash)).await? {
            let Ok(rec) = serde_json::from_slice::<RefreshRecord>(&v) else {
                return Ok(Redeemed::Dead);
            };
            let left = self.family_left(rec.family_start, now);
            if left > 0 {
                self.kv
                    .put(&used_key(&hash), rec.family.as_bytes(), secs(left))
                    .await?;
            }
            if self.token_left(&rec, now) <= 0 || !self.family_live(&rec.family).await? {
                return Ok(Redeemed::Dead);
            }
            return Ok(Redeemed::Live(rec));
        }
        match self.kv.get(&used_key(&hash)).await? {
            Some(family) => Ok(Redeemed::Reused {
                family: String::from_utf8_lossy(&family).into_owned(),
            }),
            None => Ok(Redeemed::Dead),
        }
    }

    /// The live record of a token, without consuming it (introspection,
    /// revocation); `None` when unknown, expired or revoked.
    pub async fn find(&self, token: &str, now: i64) -> Result<Option<RefreshRecord>, StoreError> {
        if !plausible(token) {
            return Ok(None);
        }
        let Some(v) = self.kv.get(&token_key(&digest(token))).await? else {
            return Ok(None);
        };
        let Ok(rec) = serde_json::from_slice::<RefreshRecord>(&v) else {
            return Ok(None);
        };
        if self.token_left(&rec, now) <= 0 || !self.family_live(&rec.family).await? {
            return Ok(None);
        }
        Ok(Some(rec))
    }

    /// When a token dies: the sooner of its idle and absolute ends (the
    /// `exp` introspection reports).
    pub fn expires_at(&self, rec: &RefreshRecord) -> i64 {
        rec.issued_at
            .saturating_add(self.idle)
            .min(rec.family_start.saturating_add(self.ttl))
    }

    async fn family_live(&self, family: &str) -> Result<bool, StoreError> {
        let recorded = self.load_family(family).await?.is_some_and(|f| !f.revoked);
        Ok(recorded && self.kv.get(&revoked_key(family)).await?.is_none())
    }

    async fn load_family(&self, family: &str) -> Result<Option<Family>, StoreError> {
        Ok(self
            .kv
            .get(&family_key(family))
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Ends a family: deletes its current token, marks it revoked (so a
    /// token rotated in a race reads as dead) and returns its access tokens
    /// for the caller to deny. `None` when the family is already gone.
    pub async fn revoke_family(
        &self,
        family: &str,
        now: i64,
    ) -> Result<Option<RevokedFamily>, StoreError> {
        let Some(fam) = self.load_family(family).await? else {
            return Ok(None);
        };
        let left = self.family_left(fam.family_start, now);
        if left > 0 {
            self.kv.put(&revoked_key(family), b"1", secs(left)).await?;
        }
        // Read again after the mark: a rotation that wrote before it has
        // its token found here; one that writes after it sees the mark.
        let mut fam = self.load_family(family).await?.unwrap_or(fam);
        self.kv.delete(&token_key(&fam.current)).await?;
        if left > 0 {
            fam.revoked = true;
            self.kv
                .put(&family_key(family), &encode(&fam)?, secs(left))
                .await?;
        } else {
            self.kv.delete(&family_key(family)).await?;
        }
        let last = AccessRef {
            jti: fam.last_jti,
            exp: fam.last_exp,
        };
        let access = std::iter::once(last)
            .chain(fam.earlier)
            .filter(|a| a.exp > now)
            .collect();
        Ok(Some(RevokedFamily { access }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_kit::kv::MemoryKv;

    /// A memory store (absolute 1000 s, idle 100 s) and the scope its families get.
    fn store_and_scope() -> (RefreshTokens, ScopeSet) {
        let store = RefreshTokens::new(
            Arc::new(MemoryKv::new()),
            Duration::from_secs(1000),
            Duration::from_secs(100),
        );
        (store, ScopeSet::parse("customer:read").unwrap())
    }

    fn family_of(scope: &ScopeSet) -> NewFamily<'_> {
        NewFamily {
            client_id: "c",
            sub: "alice",
            scope,
            resource: "http://localhost:8000/mcp",
            auth_time: 0,
        }
    }

    #[test]
    fn jwts_and_junk_are_never_looked_up() {
        assert!(plausible(&random_token().unwrap()));
        assert!(!plausible("a.b.c"));
        assert!(!plausible(""));
        assert!(!plausible(&"a".repeat(513)));
    }

    #[tokio::test]
    async fn lifetimes_follow_the_injected_clock() {
        let (store, scope) = store_and_scope();
        let grant = family_of(&scope);
        let access = IssuedAccess { jti: "j", exp: 5 };
        let (t, _) = store.start(&grant, access, 0).await.unwrap();
        let rec = store.find(&t, 99).await.unwrap().unwrap();
        assert_eq!(store.expires_at(&rec), 100);
        assert!(store.find(&t, 100).await.unwrap().is_none(), "idle");
        let Redeemed::Live(rec) = store.redeem(&t, 90).await.unwrap() else {
            panic!("live")
        };
        let t2 = store.rotate(&rec, access, 950).await.unwrap().unwrap();
        let rec2 = store.find(&t2, 999).await.unwrap().unwrap();
        assert_eq!(store.expires_at(&rec2), 1000, "absolute caps idle");
        assert!(matches!(
            store.redeem(&t2, 1000).await.unwrap(),
            Redeemed::Dead
        ));
    }

    /// A rotation that lands after a revocation (the race of a thief and
    /// the rightful client using one token at once) does not revive the family.
    #[tokio::test]
    async fn a_rotation_racing_a_revocation_stays_revoked() {
        let (store, scope) = store_and_scope();
        let grant = family_of(&scope);
        let access = IssuedAccess { jti: "j", exp: 5 };
        let (t, family) = store.start(&grant, access, 0).await.unwrap();
        let Redeemed::Live(rec) = store.redeem(&t, 1).await.unwrap() else {
            panic!("live")
        };
        assert!(store.revoke_family(&family, 2).await.unwrap().is_some());
        assert_eq!(store.rotate(&rec, access, 3).await.unwrap(), None);
        assert!(matches!(
            store.redeem(&t, 4).await.unwrap(),
            Redeemed::Reused { .. }
        ));
    }
}
