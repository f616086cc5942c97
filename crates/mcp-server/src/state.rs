//! The one shared state: cheap to clone (`Arc` inside), no globals.
//!
//! It holds the server's parts; each `/mcp` step takes only the parts it
//! needs in its own state (`BearerState::new(&state)`, `ScopeState`, … next
//! to each step in `middleware/`, built once with the router), so this file
//! knows nothing of the middleware.

use std::sync::Arc;

use auth::Verifier;
use server_kit::ready::Readiness;
use server_kit::store::RevocationStore;

use crate::audit::AuditLog;
use crate::challenge::Challenges;
use crate::host_policy::HostPolicy;
use crate::limits::Limits;
use crate::routes::protected_resource::ProtectedResourceMetadata;
use crate::sessions::SessionOwners;
use crate::store::CustomerStore;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

/// Largest JSON-RPC request body accepted on `/mcp` (our largest valid
/// request, a ticket with a 2000-character description, is a few KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `MCP_MAX_RESULT_BYTES` default: the largest tool result (its JSON) that
/// is sent; a larger one becomes a tool error. The largest result a tool can
/// build within its bounds (50 tickets of 2,000-character descriptions) is
/// under 460 KiB, so this is a backstop, not a limit a valid call meets.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 512 * 1024;

/// Everything a request may need.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Arc<Verifier>,
    revocations: Arc<dyn RevocationStore>,
    customers: Arc<dyn CustomerStore>,
    audit: Arc<AuditLog>,
    host_policy: Arc<HostPolicy>,
    challenges: Arc<Challenges>,
    metadata: ProtectedResourceMetadata,
    session_owners: Arc<SessionOwners>,
    rmcp_sessions: Arc<LocalSessionManager>,
    limits: Arc<Limits>,
    revocation_fail_open: bool,
    readiness: Readiness,
    max_result_bytes: usize,
}

/// The parts an [`AppState`] is made of.
pub struct AppStateParts {
    pub verifier: Arc<Verifier>,
    pub revocations: Arc<dyn RevocationStore>,
    pub customers: Arc<dyn CustomerStore>,
    /// Shared with the background tasks that audit (the revocation set's).
    pub audit: Arc<AuditLog>,
    pub host_policy: HostPolicy,
    pub challenges: Challenges,
    pub metadata: ProtectedResourceMetadata,
    pub limits: Limits,
    pub revocation_fail_open: bool,
    /// What `GET /ready` reports on.
    pub readiness: Readiness,
    /// `MCP_MAX_RESULT_BYTES`.
    pub max_result_bytes: usize,
}

impl AppState {
    pub fn new(p: AppStateParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier: p.verifier,
                revocations: p.revocations,
                customers: p.customers,
                audit: p.audit,
                host_policy: Arc::new(p.host_policy),
                challenges: Arc::new(p.challenges),
                metadata: p.metadata,
                session_owners: Arc::default(),
                rmcp_sessions: Arc::default(),
                limits: Arc::new(p.limits),
                revocation_fail_open: p.revocation_fail_open,
                readiness: p.readiness,
                max_result_bytes: p.max_result_bytes,
            }),
        }
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.inner.verifier
    }

    pub fn revocations(&self) -> &Arc<dyn RevocationStore> {
        &self.inner.revocations
    }

    pub fn customers(&self) -> &dyn CustomerStore {
        self.inner.customers.as_ref()
    }

    /// The audit ring of this server.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.inner.audit
    }

    /// The `Host` / `Origin` allow-lists.
    pub fn host_policy(&self) -> &Arc<HostPolicy> {
        &self.inner.host_policy
    }

    /// The pre-built `WWW-Authenticate` values.
    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.inner.challenges
    }

    /// The RFC 9728 document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.inner.metadata
    }

    /// `REVOCATION_FAILURE_MODE=open`: a token whose revocation cannot be
    /// checked is accepted (otherwise 503).
    pub fn revocation_fail_open(&self) -> bool {
        self.inner.revocation_fail_open
    }

    /// The dependencies `GET /ready` reports on.
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// The largest tool result (serialised JSON) sent (`MCP_MAX_RESULT_BYTES`).
    pub fn max_result_bytes(&self) -> usize {
        self.inner.max_result_bytes
    }

    /// The per-client and failed-authentication budgets.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.inner.limits
    }

    /// Which client opened which 2025-11-25 session.
    pub fn session_owners(&self) -> &Arc<SessionOwners> {
        &self.inner.session_owners
    }

    /// rmcp's table of live 2025-11-25 sessions: the `/mcp` service serves
    /// them ([`crate::mcp::service`]), the direct path asks whether one is
    /// still live, the metrics count them.
    pub fn rmcp_sessions(&self) -> &Arc<LocalSessionManager> {
        &self.inner.rmcp_sessions
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("resource", &self.inner.metadata.resource)
            .finish_non_exhaustive()
    }
}
