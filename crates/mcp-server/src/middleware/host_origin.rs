//! Step 1 on `/mcp`: `Host` and `Origin` allow-lists (DNS-rebinding and
//! cross-origin protection), before any token is looked at, so a request from
//! a rebinding page is refused with 403 whether or not it carries a token.
//! The rules are in [`crate::host_policy`].

use std::sync::Arc;

use http::{HeaderMap, Uri};

use crate::error::McpHttpError;
use crate::host_policy::HostPolicy;
use crate::state::AppState;

/// What this step needs.
#[derive(Clone)]
pub struct HostOriginState {
    policy: Arc<HostPolicy>,
}

impl HostOriginState {
    pub fn new(state: &AppState) -> Self {
        Self {
            policy: state.host_policy().clone(),
        }
    }

    /// The allow-lists (the [`cors`](super::cors) step reads them too).
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }
}

/// 400 for a missing/unparsable `Host`, 403 for a host or origin outside the
/// allow-lists (the same statuses and texts rmcp uses).
pub fn check(state: &HostOriginState, uri: &Uri, headers: &HeaderMap) -> Result<(), McpHttpError> {
    state.policy.check(uri, headers).map_err(|refusal| {
        tracing::warn!(
            reason = refusal.reason(),
            "request refused by Host/Origin allow-list"
        );
        McpHttpError::HostOrigin(refusal)
    })
}
