//! Binds each 2025-11-25 session (`Mcp-Session-Id`) to the client that
//! opened it — to the (client, user) pair for a user token
//! ([`Caller::principal`]) — (MCP security best practices, "session hijacking").
//!
//! Every request is authenticated and authorized on its own token anyway; a
//! session grants nothing. The binding stops a *different* client that learnt
//! a session id from reading that session's server-to-client stream (GET) or
//! terminating it (DELETE): such a request gets the same 404 as an unknown
//! session. It is the innermost layer, because it must see the
//! `Mcp-Session-Id` that rmcp puts on the `initialize` response.

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use crate::audit::{AuditEvent, AuditLog, names};
use crate::error::McpHttpError;
use crate::policy::Caller;
use crate::sessions::{SessionOwners, Verdict};
use crate::state::AppState;

const SESSION_HEADER: &str = "mcp-session-id";

/// What this layer needs.
#[derive(Clone)]
pub struct SessionBindingState {
    owners: Arc<SessionOwners>,
    audit: Arc<AuditLog>,
}

impl FromRef<AppState> for SessionBindingState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            owners: state.session_owners().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// Middleware: refuse another client's session; remember new sessions.
pub async fn bind(
    State(state): State<SessionBindingState>,
    req: Request,
    next: Next,
) -> Result<Response, McpHttpError> {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return Ok(next.run(req).await);
    };
    let owner = caller.principal();
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(sid) = &session
        && state.owners.check(sid, &owner) == Verdict::Foreign
    {
        state.audit.record(
            AuditEvent::new(names::SESSION_REFUSED, "denied")
                .client(caller.client_id())
                .subject(caller.sub())
                .reason("foreign_session"),
        );
        // Indistinguishable from an unknown session.
        return Err(McpHttpError::SessionNotFound);
    }
    let is_delete = req.method() == Method::DELETE;
    let resp = next.run(req).await;
    match &session {
        None => {
            if let Some(new) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                state.owners.insert(new, &owner);
            }
        }
        Some(sid) if is_delete && resp.status().is_success() => state.owners.remove(sid),
        Some(_) => {}
    }
    Ok(resp)
}
