//! First layer on `/mcp`: `Host` and `Origin` allow-lists (DNS-rebinding and
//! cross-origin protection), before any token is looked at, so a request from
//! a rebinding page is refused with 403 whether or not it carries a token.
//! The rules are in [`crate::host_policy`].

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::McpHttpError;
use crate::host_policy::HostPolicy;
use crate::state::AppState;

/// What this layer needs.
#[derive(Clone)]
pub struct HostOriginState {
    policy: Arc<HostPolicy>,
}

impl HostOriginState {
    /// The allow-lists (the [`cors`](super::cors) layer reads them too).
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }
}

impl FromRef<AppState> for HostOriginState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            policy: state.host_policy().clone(),
        }
    }
}

/// Middleware: 400 for a missing/unparsable `Host`, 403 for a host or origin
/// outside the allow-lists (the same statuses and texts rmcp uses).
pub async fn check(
    State(state): State<HostOriginState>,
    req: Request,
    next: Next,
) -> Result<Response, McpHttpError> {
    if let Err(refusal) = state.policy.check(req.uri(), req.headers()) {
        tracing::warn!(
            reason = refusal.reason(),
            "request refused by Host/Origin allow-list"
        );
        return Err(McpHttpError::HostOrigin(refusal));
    }
    Ok(next.run(req).await)
}
