//! A bounded cache of tokens whose signature already verified.
//!
//! Clients reuse one access token for its whole lifetime (minutes, hundreds
//! of requests), so a resource server that checks the RSA/ECDSA signature of
//! every request spends most of its verification CPU proving the same thing
//! again. The profile of a `tools/call` showed the RSA verification as the
//! largest single cost of the server (≈ 11 % of its CPU).
//!
//! What is cached, and what is not:
//! - The key is the SHA-256 of the **whole** compact token, so a hit means
//!   byte-for-byte the same header, claims and signature that verified.
//! - The entry remembers the `kid` and the exact key object that verified it.
//!   A hit is only honoured while the key source still returns that same key
//!   for that `kid`; a rotation, a removal or any JWKS refresh invalidates
//!   the entry (it is then verified again in full).
//! - Time checks (`exp`, `nbf`, `iat`, with leeway) run again on every hit,
//!   against the current clock; issuer and audience are fixed per verifier.
//! - Failures are never cached (the per-address failed-authentication limit
//!   handles floods of bad tokens), and revocation is not this cache's
//!   business: callers check their denylist on every request.
//!
//! Memory is bounded: [`SHARDS`] shards of at most `capacity / SHARDS`
//! entries each; a full shard first drops its expired entries and, if still
//! full, is emptied (simple, O(1) amortised, and a miss only costs one
//! verification). Sharding keeps two worker threads from contending on one
//! lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::claims::AccessTokenClaims;
use crate::keys::VerifyingKey;

/// Number of independently locked shards.
pub const SHARDS: usize = 16;

/// Default number of cached tokens (≈ 0.5 KiB each).
pub const DEFAULT_CAPACITY: usize = 4096;

pub(crate) type TokenHash = [u8; 32];

pub(crate) struct Entry {
    pub(crate) claims: Arc<AccessTokenClaims>,
    pub(crate) kid: Arc<str>,
    pub(crate) key: Arc<VerifyingKey>,
}

pub(crate) struct TokenCache {
    shards: Box<[Mutex<HashMap<TokenHash, Entry>>]>,
    per_shard: usize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    pub(crate) fn hash(token: &str) -> TokenHash {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn shard(&self, h: &TokenHash) -> &Mutex<HashMap<TokenHash, Entry>> {
        &self.shards[usize::from(h[0]) % self.shards.len()]
    }

    /// The cached entry for `h` (three reference-count increments, no copy).
    pub(crate) fn get(&self, h: &TokenHash) -> Option<Entry> {
        let shard = self.shard(h).lock().unwrap_or_else(PoisonError::into_inner);
        shard.get(h).map(|e| Entry {
            claims: e.claims.clone(),
            kid: e.kid.clone(),
            key: e.key.clone(),
        })
    }

    pub(crate) fn insert(&self, h: TokenHash, entry: Entry, now: i64) {
        let mut shard = self
            .shard(&h)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&h) {
            shard.retain(|_, e| e.claims.exp > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(h, entry);
    }

    pub(crate) fn remove(&self, h: &TokenHash) {
        self.shard(h)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(h);
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
