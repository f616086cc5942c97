//! `AppState`: everything a handler needs, built once at start-up.

use std::ops::Deref;
use std::sync::Arc;

use auth::verify::Verifier;
use bytes::Bytes;
use server_kit::kv::KvStore;
use server_kit::ready::Readiness;
use server_kit::store::{ReplayStore, RevocationStore};

use crate::codes::Codes;
use crate::config::Config;
use crate::directory::ClientDirectory;
use crate::keystore::KeyStore;
use crate::limits::Limits;
use crate::metrics::OAuthMetrics;
use crate::refresh::RefreshTokens;
use crate::users::{PasswordCheck, UserDirectory};

/// Cheap to clone; one `Arc` inside.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    /// Every registered client: file, dynamic registration, metadata documents.
    pub clients: ClientDirectory,
    /// Authorization codes (single use, 60 s).
    pub codes: Codes,
    /// Refresh-token families (rotation, reuse detection).
    pub refresh: RefreshTokens,
    /// Expiring state of the interactive flow (sessions, consents, refresh
    /// tokens, registrations): memory, or Redis when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set.
    pub kv: Arc<dyn KvStore>,
    /// Every scope some client may hold (`scopes_supported`); a request for
    /// anything else is `invalid_scope`.
    pub known_scopes: auth::scope::ScopeSet,
    pub keys: KeyStore,
    /// Verifies our own tokens (any audience, no leeway) for introspection.
    pub own_tokens: Verifier,
    /// The same with the resource servers' leeway, for `/revoke`: a token
    /// that expired a moment ago is still accepted there, so it must still
    /// be revocable here.
    pub revocable_tokens: Verifier,
    pub revocations: Arc<dyn RevocationStore>,
    pub replays: Arc<dyn ReplayStore>,
    /// RFC 8414 metadata, serialised once.
    pub metadata_body: Bytes,
    /// Brute-force protection (per IP, per client).
    pub limits: Limits,
    /// The people who sign in at /authorize (`OAUTH_USERS_FILE`).
    pub users: Arc<dyn UserDirectory>,
    /// Runs (and counts) every argon2id verification: user passwords and
    /// client secrets (`OAUTH_ARGON2_THREADS` dedicated threads).
    pub passwords: PasswordCheck,
    /// What `GET /ready` reports on (Redis).
    pub readiness: Readiness,
    /// Prometheus counters (`OAUTH_METRICS_BIND`), shared with the limiter.
    pub metrics: Arc<OAuthMetrics>,
    /// Where `/metrics` is served (`None`: `OAUTH_METRICS_BIND` empty).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Computes RSA signatures off the async workers, one thread per core,
    /// in arrival order.
    pub rsa_signing: crate::signer::SigningPool,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
