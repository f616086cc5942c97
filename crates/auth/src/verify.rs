//! Access-token verification for resource servers (RFC 9068 §4).
//!
//! [`Verifier::verify`] is the hot path of every MCP request: it reads keys
//! through a [`KeySource`] (an [`arc_swap`] snapshot, no lock), asks the
//! source to refresh only when a `kid` is unknown (the remote JWKS cache in
//! `server-kit` makes that one single-flight, rate-limited refetch),
//! and never allocates more than the decoded header and claims.
//! [`Verifier::with_cache`] adds a bounded cache of already verified tokens
//! ([`cache`]), so a token reused for its lifetime is verified once per key
//! set, not once per request.

pub mod cache;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use crate::jwk::JwkSet;
use crate::jwt::{JwtError, MAX_TOKEN_LEN, Unverified};
use crate::keys::VerifyingKey;
use crate::uri::{canonical_resource, normalize_issuer};
use cache::{Entry, TokenCache};

/// Clock skew tolerated on `exp`, `nbf` and `iat`: the one number for the
/// resource servers' verifiers, the authorization server's `/revoke` (which
/// must take every token a resource server still takes), the denylist TTL
/// ([`denylist_ttl`]) and key retirement.
pub const DEFAULT_LEEWAY_SECS: i64 = 60;

/// How long a revoked token's `jti` stays on the denylist: until a verifier
/// with [`DEFAULT_LEEWAY_SECS`] refuses the token by its `exp` alone
/// (`exp + leeway - now`), at least one second.
pub fn denylist_ttl(exp: i64, now: i64) -> std::time::Duration {
    let secs = exp
        .saturating_add(DEFAULT_LEEWAY_SECS)
        .saturating_sub(now)
        .max(1);
    std::time::Duration::from_secs(secs.unsigned_abs())
}

/// Why a token was refused. [`VerifyError::reason`] is the stable code that
/// goes to the audit log; callers only ever see a generic challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token: {0}")]
    Jwt(JwtError),
    #[error("token has no kid")]
    MissingKid,
    #[error("unknown kid")]
    UnknownKid,
    #[error("wrong typ (expected at+jwt)")]
    WrongType,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
}

impl VerifyError {
    /// Stable snake_case reason for audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Jwt(JwtError::TooLong) => "too_long",
            VerifyError::Jwt(JwtError::UnsupportedAlg(_)) => "unsupported_alg",
            VerifyError::Jwt(JwtError::AlgMismatch) => "alg_mismatch",
            VerifyError::Jwt(JwtError::BadSignature) => "bad_signature",
            VerifyError::Jwt(JwtError::Crit) => "crit_header",
            VerifyError::Jwt(JwtError::BadClaims) => "bad_claims",
            VerifyError::Jwt(_) => "malformed",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnknownKid => "unknown_kid",
            VerifyError::WrongType => "wrong_typ",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::WrongAudience => "wrong_audience",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
        }
    }
}

impl From<JwtError> for VerifyError {
    fn from(e: JwtError) -> Self {
        VerifyError::Jwt(e)
    }
}

/// Boxed future returned by [`KeySource::refresh`].
pub type RefreshFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where verification keys come from.
pub trait KeySource: Send + Sync {
    /// The key for `kid`, if currently known. Must not block.
    fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>>;
    /// Called once when a `kid` is unknown; may refetch (rate-limited).
    fn refresh(&self) -> RefreshFuture<'_>;
}

/// Verification keys by `kid`.
pub type KeyMap = HashMap<String, Arc<VerifyingKey>>;

/// The usable keys of `set` by `kid` (keys without `kid` or that do not
/// parse are skipped with a warning).
pub fn key_map(set: &JwkSet) -> KeyMap {
    let mut map = KeyMap::new();
    for jwk in &set.keys {
        match (jwk.kid.as_deref(), VerifyingKey::from_jwk(jwk)) {
            (Some(kid), Ok(key)) => {
                map.insert(kid.to_owned(), Arc::new(key));
            }
            (None, _) => tracing::warn!("JWKS key without kid ignored"),
            (Some(kid), Err(e)) => tracing::warn!(kid, error = %e, "JWKS key ignored"),
        }
    }
    map
}

/// A fixed (but replaceable) key set, e.g. the authorization server's own keys.
#[derive(Default)]
pub struct StaticKeys {
    keys: ArcSwap<KeyMap>,
}

impl StaticKeys {
    pub fn new(set: &JwkSet) -> Self {
        Self {
            keys: ArcSwap::from_pointee(key_map(set)),
        }
    }

    /// Atomically replaces the key set (after a rotation).
    pub fn replace(&self, set: &JwkSet) {
        self.keys.store(Arc::new(key_map(set)));
    }
}

impl KeySource for StaticKeys {
    fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.load().get(kid).cloned()
    }
    fn refresh(&self) -> RefreshFuture<'_> {
        Box::pin(async {})
    }
}

/// Verifies RFC 9068 access tokens for one resource server.
pub struct Verifier {
    issuer: String,
    /// `None` only for the issuer itself (introspection/revocation of its own
    /// tokens, whatever their audience); resource servers always set one.
    audience: Option<String>,
    leeway: i64,
    keys: Arc<dyn KeySource>,
    cache: Option<TokenCache>,
    /// Answers from the verified-token cache / full verifications in its
    /// place (only counted when the cache is on).
    cache_hits: std::sync::atomic::AtomicU64,
    cache_misses: std::sync::atomic::AtomicU64,
}

impl Verifier {
    /// `audience` is canonicalised and `issuer` normalised
    /// ([`normalize_issuer`]), the same rules the authorization server
    /// applies when it writes `aud` and `iss`; `iss` is then compared exactly.
    pub fn new(issuer: String, audience: &str, keys: Arc<dyn KeySource>) -> Self {
        let audience = canonical_resource(audience).unwrap_or_else(|_| audience.to_owned());
        Self {
            issuer: normalize_issuer(&issuer).unwrap_or(issuer),
            audience: Some(audience),
            leeway: DEFAULT_LEEWAY_SECS,
            keys,
            cache: None,
            cache_hits: std::sync::atomic::AtomicU64::new(0),
            cache_misses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A verifier that accepts any audience, with no leeway: for the
    /// authorization server's own introspection (an expired token is
    /// inactive). Revocation adds [`DEFAULT_LEEWAY_SECS`] with
    /// [`with_leeway`](Self::with_leeway): it must reach every token a
    /// resource server still accepts.
    pub fn for_issuer_own_tokens(issuer: String, keys: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: normalize_issuer(&issuer).unwrap_or(issuer),
            audience: None,
            leeway: 0,
            keys,
            cache: None,
            cache_hits: std::sync::atomic::AtomicU64::new(0),
            cache_misses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.leeway = secs;
        self
    }

    /// Remembers up to `capacity` verified tokens (see [`cache`]):
    /// [`Verifier::verify_shared`] then checks a reused token's signature
    /// only once per key set. `0` turns the cache off.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| TokenCache::new(capacity));
        self
    }

    /// Tokens answered from the verified-token cache (signature not checked
    /// again), since start.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tokens [`Verifier::verify_shared`] verified in full while the cache
    /// was on (not cached yet, or cached under a key that changed), since start.
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Verifies `token` now.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        self.verify_at(token, crate::now_unix()).await
    }

    /// Verifies `token` as of `now` (seconds since the epoch). Never uses
    /// the cache.
    pub async fn verify_at(&self, token: &str, now: i64) -> Result<AccessTokenClaims, VerifyError> {
        self.verify_full(token, now)
            .await
            .map(|(claims, _, _)| claims)
    }

    /// Verifies `token` now, through the verified-token cache when one is
    /// configured ([`Verifier::with_cache`]). Same answers as
    /// [`Verifier::verify`] for every token, at any time.
    pub async fn verify_shared(&self, token: &str) -> Result<Arc<AccessTokenClaims>, VerifyError> {
        self.verify_shared_at(token, crate::now_unix()).await
    }

    /// [`Verifier::verify_shared`] as of `now`.
    pub async fn verify_shared_at(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<AccessTokenClaims>, VerifyError> {
        let cache = match &self.cache {
            // Oversized tokens are refused by the parser; never hash them.
            Some(cache) if token.len() <= MAX_TOKEN_LEN => cache,
            _ => return self.verify_at(token, now).await.map(Arc::new),
        };
        let hash = TokenCache::hash(token);
        if let Some(hit) = cache.get(&hash) {
            // Only while the same key object still stands for that kid: a
            // rotation, removal or refresh of the key set re-verifies.
            if self
                .keys
                .get(&hit.kid)
                .is_some_and(|k| Arc::ptr_eq(&k, &hit.key))
            {
                self.cache_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.check_claims(&hit.claims, now)?;
                return Ok(hit.claims);
            }
            cache.remove(&hash);
        }
        self.cache_misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (claims, kid, key) = self.verify_full(token, now).await?;
        let claims = Arc::new(claims);
        cache.insert(
            hash,
            Entry {
                claims: claims.clone(),
                kid: Arc::from(kid),
                key,
            },
            now,
        );
        Ok(claims)
    }

    /// Full verification; also returns the `kid` and key that verified.
    async fn verify_full(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(AccessTokenClaims, String, Arc<VerifyingKey>), VerifyError> {
        let jws = Unverified::parse(token)?;
        let typ_ok = jws.header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        let kid = jws.header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        let key = match self.keys.get(kid) {
            Some(k) => k,
            None => {
                self.keys.refresh().await;
                self.keys.get(kid).ok_or(VerifyError::UnknownKid)?
            }
        };
        let claims: AccessTokenClaims = jws.verify(&key)?;
        self.check_claims(&claims, now)?;
        Ok((claims, kid.to_owned(), key))
    }

    fn check_claims(&self, c: &AccessTokenClaims, now: i64) -> Result<(), VerifyError> {
        if c.iss != self.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if let Some(aud) = &self.audience
            && !c.aud.contains(aud)
        {
            return Err(VerifyError::WrongAudience);
        }
        if c.exp <= now - self.leeway {
            return Err(VerifyError::Expired);
        }
        if c.nbf > now + self.leeway {
            return Err(VerifyError::NotYetValid);
        }
        if c.iat > now + self.leeway {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;
    use crate::jwt::sign;
    use crate::keys::{Algorithm, SigningKey};
    use crate::scope::ScopeSet;

    const ISS: &str = "http://localhost:8080";
    const AUD: &str = "http://localhost:8000/mcp";

    #[test]
    fn denylist_ttl_lasts_until_the_leeway_ends() {
        let now = 1_000_000;
        assert_eq!(denylist_ttl(now + 900, now).as_secs(), 960);
        assert_eq!(denylist_ttl(now - 5, now).as_secs(), 55);
        assert_eq!(denylist_ttl(now - 60, now).as_secs(), 1);
        assert_eq!(denylist_ttl(now - 3600, now).as_secs(), 1);
        assert_eq!(
            denylist_ttl(i64::MAX, now).as_secs(),
            (i64::MAX - now) as u64
        );
    }

    fn claims(now: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISS.into(),
            sub: "c".into(),
            aud: Audience::One(AUD.into()),
            client_id: "c".into(),
            scope: ScopeSet::parse("customer:read").unwrap(),
            iat: now,
            nbf: now,
            exp: now + 900,
            jti: "j".into(),
        }
    }

    fn setup(alg: Algorithm) -> (SigningKey, Verifier) {
        let key = SigningKey::generate(alg).unwrap();
        let set = JwkSet {
            keys: vec![key.public_jwk().clone()],
        };
        let v = Verifier::new(
            ISS.into(),
            "HTTP://LOCALHOST:8000/mcp/",
            Arc::new(StaticKeys::new(&set)),
        );
        (key, v)
    }

    fn cached_setup(capacity: usize) -> (SigningKey, Arc<StaticKeys>, Verifier) {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let keys = Arc::new(StaticKeys::new(&JwkSet {
            keys: vec![key.public_jwk().clone()],
        }));
        let v = Verifier::new(ISS.into(), AUD, keys.clone()).with_cache(capacity);
        (key, keys, v)
    }

    #[tokio::test]
    async fn cache_answers_like_a_full_verification() {
        let (key, _, v) = cached_setup(64);
        let now = 1_000_000;
        let t = sign(&key, "at+jwt", &claims(now)).unwrap();
        for _ in 0..3 {
            assert_eq!(*v.verify_shared_at(&t, now).await.unwrap(), claims(now));
        }
        assert_eq!(v.cached_tokens(), 1, "one token, one entry");
        // Time is checked again on every hit.
        assert_eq!(
            v.verify_shared_at(&t, now + 900 + 60).await.unwrap_err(),
            VerifyError::Expired
        );
        assert_eq!(
            *v.verify_shared_at(&t, now + 900 + 59).await.unwrap(),
            claims(now)
        );
        // Any other byte string is a different token: verified in full.
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(matches!(
            v.verify_shared_at(&forged, now).await.unwrap_err(),
            VerifyError::Jwt(_)
        ));
        let other_claims = AccessTokenClaims {
            client_id: "other".into(),
            ..claims(now)
        };
        let mut spliced: Vec<&str> = t.split('.').collect();
        let payload = sign(&key, "at+jwt", &other_claims).unwrap();
        spliced[1] = payload.split('.').nth(1).unwrap();
        assert!(matches!(
            v.verify_shared_at(&spliced.join("."), now)
                .await
                .unwrap_err(),
            VerifyError::Jwt(_)
        ));
        assert_eq!(v.cached_tokens(), 1, "failures are never cached");
    }

    #[tokio::test]
    async fn a_token_refused_once_is_refused_again() {
        let (key, _, v) = cached_setup(64);
        let now = 1_000_000;
        let early = AccessTokenClaims {
            nbf: now + 120,
            ..claims(now)
        };
        let t = sign(&key, "at+jwt", &early).unwrap();
        assert_eq!(
            v.verify_shared_at(&t, now).await.unwrap_err(),
            VerifyError::NotYetValid
        );
        assert_eq!(v.cached_tokens(), 0);
        assert_eq!(*v.verify_shared_at(&t, now + 120).await.unwrap(), early);
    }

    #[tokio::test]
    async fn a_key_set_change_invalidates_cached_tokens() {
        let (key, keys, v) = cached_setup(64);
        let now = crate::now_unix();
        let t = sign(&key, "at+jwt", &claims(now)).unwrap();
        v.verify_shared(&t).await.unwrap();
        // The signing key is withdrawn (compromise, rotation): a cached token
        // must not outlive it.
        let replacement = SigningKey::generate(Algorithm::ES256).unwrap();
        keys.replace(&JwkSet {
            keys: vec![replacement.public_jwk().clone()],
        });
        assert_eq!(
            v.verify_shared(&t).await.unwrap_err(),
            VerifyError::UnknownKid
        );
        // Published again: verified in full and cached anew.
        keys.replace(&JwkSet {
            keys: vec![key.public_jwk().clone()],
        });
        assert_eq!(*v.verify_shared(&t).await.unwrap(), claims(now));
        assert_eq!(v.cached_tokens(), 1);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let (key, _, v) = cached_setup(cache::SHARDS * 2);
        let now = 1_000_000;
        for i in 0..200 {
            let c = AccessTokenClaims {
                jti: format!("j{i}"),
                ..claims(now)
            };
            let t = sign(&key, "at+jwt", &c).unwrap();
            assert_eq!(*v.verify_shared_at(&t, now).await.unwrap(), c);
            assert!(
                v.cached_tokens() <= cache::SHARDS * 2,
                "{}",
                v.cached_tokens()
            );
        }
        assert!(v.cached_tokens() > 0);
        // Without a cache, verify_shared is a full verification.
        let (_, plain) = setup(Algorithm::ES256);
        assert_eq!(plain.cached_tokens(), 0);
    }

    #[tokio::test]
    async fn accepts_good_tokens_for_each_alg() {
        for alg in Algorithm::ALL {
            let (key, v) = setup(alg);
            let now = crate::now_unix();
            let t = sign(&key, "at+jwt", &claims(now)).unwrap();
            assert_eq!(v.verify(&t).await.unwrap(), claims(now));
        }
    }

    #[tokio::test]
    async fn refuses_each_claim_failure() {
        let (key, v) = setup(Algorithm::ES256);
        let now = 1_000_000;
        let check = |c: AccessTokenClaims, typ: &'static str| {
            let t = sign(&key, typ, &c).unwrap();
            let v = &v;
            async move { v.verify_at(&t, now).await.unwrap_err() }
        };
        assert_eq!(check(claims(now), "JWT").await, VerifyError::WrongType);
        assert_eq!(
            check(
                AccessTokenClaims {
                    iss: "http://evil".into(),
                    ..claims(now)
                },
                "at+jwt"
            )
            .await,
            VerifyError::WrongIssuer
        );
        assert_eq!(
            check(
                AccessTokenClaims {
                    aud: Audience::One("https://localhost:8001/mcp".into()),
                    ..claims(now)
                },
                "at+jwt"
            )
            .await,
            VerifyError::WrongAudience
        );
        assert_eq!(
            check(
                AccessTokenClaims {
                    exp: now - 61,
                    ..claims(now)
                },
                "at+jwt"
            )
            .await,
            VerifyError::Expired
        );
        assert_eq!(
            check(
                AccessTokenClaims {
                    nbf: now + 61,
                    ..claims(now)
                },
                "at+jwt"
            )
            .await,
            VerifyError::NotYetValid
        );
        assert_eq!(
            check(
                AccessTokenClaims {
                    iat: now + 61,
                    ..claims(now)
                },
                "at+jwt"
            )
            .await,
            VerifyError::IssuedInFuture
        );
        // Inside the leeway is fine.
        let t = sign(
            &key,
            "application/at+jwt",
            &AccessTokenClaims {
                exp: now - 59,
                ..claims(now)
            },
        )
        .unwrap();
        assert!(v.verify_at(&t, now).await.is_ok());
        // Audience arrays work.
        let many = AccessTokenClaims {
            aud: Audience::Many(vec!["x".into(), AUD.into()]),
            ..claims(now)
        };
        assert!(
            v.verify_at(&sign(&key, "at+jwt", &many).unwrap(), now)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn refuses_unknown_kid_and_foreign_key() {
        let (_key, v) = setup(Algorithm::RS256);
        let other = SigningKey::generate(Algorithm::RS256).unwrap();
        let t = sign(&other, "at+jwt", &claims(crate::now_unix())).unwrap();
        assert_eq!(v.verify(&t).await.unwrap_err(), VerifyError::UnknownKid);
        assert_eq!(
            v.verify("not-a-token").await.unwrap_err().reason(),
            "malformed"
        );
    }
}
