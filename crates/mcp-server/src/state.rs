//! The one shared state: cheap to clone (`Arc` inside), no globals.

use std::sync::Arc;

use auth::Verifier;
use server_kit::store::RevocationStore;

use crate::audit::AuditLog;
use crate::middleware::challenge::Challenges;
use crate::middleware::host_origin::HostPolicy;
use crate::middleware::rate_limit::Limits;
use crate::middleware::session_binding::SessionOwners;
use crate::routes::protected_resource::ProtectedResourceMetadata;
use crate::store::CustomerStore;

/// Largest JSON-RPC request body accepted on `/mcp` (our largest valid
/// request, a ticket with a 2000-character description, is a few KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a request may need.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Arc<Verifier>,
    revocations: Arc<dyn RevocationStore>,
    customers: Arc<dyn CustomerStore>,
    audit: AuditLog,
    host_policy: HostPolicy,
    challenges: Challenges,
    metadata: ProtectedResourceMetadata,
    session_owners: SessionOwners,
    limits: Limits,
    revocation_fail_open: bool,
}

/// The parts an [`AppState`] is made of.
pub struct AppStateParts {
    pub verifier: Arc<Verifier>,
    pub revocations: Arc<dyn RevocationStore>,
    pub customers: Arc<dyn CustomerStore>,
    pub audit: AuditLog,
    pub host_policy: HostPolicy,
    pub challenges: Challenges,
    pub metadata: ProtectedResourceMetadata,
    pub limits: Limits,
    pub revocation_fail_open: bool,
}

impl AppState {
    pub fn new(p: AppStateParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier: p.verifier,
                revocations: p.revocations,
                customers: p.customers,
                audit: p.audit,
                host_policy: p.host_policy,
                challenges: p.challenges,
                metadata: p.metadata,
                session_owners: SessionOwners::default(),
                limits: p.limits,
                revocation_fail_open: p.revocation_fail_open,
            }),
        }
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn revocations(&self) -> &dyn RevocationStore {
        self.inner.revocations.as_ref()
    }

    pub fn customers(&self) -> &dyn CustomerStore {
        self.inner.customers.as_ref()
    }

    /// The audit ring of this server.
    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    pub fn host_policy(&self) -> &HostPolicy {
        &self.inner.host_policy
    }

    pub fn challenges(&self) -> &Challenges {
        &self.inner.challenges
    }

    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.inner.metadata
    }

    /// Which client opened which 2025-11-25 session.
    /// `REVOCATION_FAILURE_MODE=open`.
    pub fn revocation_fail_open(&self) -> bool {
        self.inner.revocation_fail_open
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn session_owners(&self) -> &SessionOwners {
        &self.inner.session_owners
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("resource", &self.inner.metadata.resource)
            .finish_non_exhaustive()
    }
}
