//! Binds each 2025-11-25 session (`Mcp-Session-Id`) to the client that
//! opened it — to the (client, user) pair for a user token
//! ([`Caller::principal`]) — (MCP security best practices, "session hijacking").
//!
//! Every request is authenticated and authorized on its own token anyway; a
//! session grants nothing. The binding stops a *different* client that learnt
//! a session id from reading that session's server-to-client stream (GET) or
//! terminating it (DELETE): such a request gets the same 404 as an unknown
//! session. It is the innermost step, because it must see the
//! `Mcp-Session-Id` that rmcp puts on the `initialize` response.

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::Method;

use crate::audit::{AuditEvent, AuditLog, names};
use crate::error::McpHttpError;
use crate::middleware::scope;
use crate::policy::Caller;
use crate::sessions::{SessionOwners, Verdict};
use crate::state::AppState;

const SESSION_HEADER: &str = "mcp-session-id";

/// What this step needs.
#[derive(Clone)]
pub struct SessionBindingState {
    owners: Arc<SessionOwners>,
    audit: Arc<AuditLog>,
}

impl SessionBindingState {
    pub fn new(state: &AppState) -> Self {
        Self {
            owners: state.session_owners().clone(),
            audit: state.audit().clone(),
        }
    }
}

/// Refuses another principal's session (404), else serves `req` with
/// `serve` and remembers a session it opens (forgets one it deletes).
/// `serve`'s second argument says whether the request names a session of
/// this principal that the direct path may answer ([`Verdict::Owned`]).
/// `principal` is the caller's [`Caller::principal`]; `read` the POST body
/// the scope step read (a body rmcp cannot read is answered as such first:
/// [`scope::readable`]).
pub async fn bind<F, Fut>(
    state: &SessionBindingState,
    caller: &Caller,
    principal: &str,
    req: Request,
    read: Option<&Bytes>,
    serve: F,
) -> Result<Response, McpHttpError>
where
    F: FnOnce(Request, bool) -> Fut,
    Fut: Future<Output = Response>,
{
    // A reference count on the header's bytes, not a copy: `req` moves on.
    let session = req.headers().get(SESSION_HEADER).cloned();
    let sid = session.as_ref().and_then(|v| v.to_str().ok());
    let verdict = sid.map(|sid| state.owners.check(sid, principal));
    if verdict == Some(Verdict::Foreign) {
        scope::readable(read)?;
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
    let direct = verdict == Some(Verdict::Owned { direct: true });
    let resp = serve(req, direct).await;
    match sid {
        None => {
            if let Some(new) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                state.owners.insert(new, principal);
            }
        }
        Some(sid) if is_delete && resp.status().is_success() => state.owners.remove(sid),
        Some(_) => {}
    }
    Ok(resp)
}
