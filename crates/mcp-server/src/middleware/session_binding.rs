//! Binds each 2025-11-25 session (`Mcp-Session-Id`) to the client that
//! opened it (MCP security best practices, "session hijacking").
//!
//! Every request is authenticated and authorized on its own token anyway; a
//! session grants nothing. The binding stops a *different* client that learnt
//! a session id from reading that session's server-to-client stream (GET) or
//! terminating it (DELETE): such a request gets the same 404 as an unknown
//! session. It is the innermost layer, because it must see the
//! `Mcp-Session-Id` that rmcp puts on the `initialize` response.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};

use crate::audit::{AuditEvent, names};
use crate::policy::Caller;
use crate::state::AppState;

const SESSION_HEADER: &str = "mcp-session-id";
/// rmcp closes a session after 5 idle minutes; entries idle for longer are dead.
const IDLE_FORGET: Duration = Duration::from_secs(10 * 60);
/// Size at which dead entries are swept.
const SWEEP_AT: usize = 4096;

struct Owner {
    client_id: String,
    last_seen: Instant,
}

/// Session id → owning client id.
#[derive(Default)]
pub struct SessionOwners {
    map: Mutex<HashMap<String, Owner>>,
}

/// What the binding says about a request's session.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Unknown here (rmcp decides), or owned by this client.
    Allow,
    /// Owned by another client.
    Foreign,
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `session` for `client_id` and refreshes its last use.
    pub fn check(&self, session: &str, client_id: &str) -> Verdict {
        let mut map = self.lock();
        match map.get_mut(session) {
            Some(owner) if owner.client_id != client_id => Verdict::Foreign,
            Some(owner) => {
                owner.last_seen = Instant::now();
                Verdict::Allow
            }
            None => Verdict::Allow,
        }
    }

    pub fn insert(&self, session: &str, client_id: &str) {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, o| o.last_seen.elapsed() < IDLE_FORGET);
        }
        map.insert(
            session.to_owned(),
            Owner {
                client_id: client_id.to_owned(),
                last_seen: Instant::now(),
            },
        );
    }

    pub fn remove(&self, session: &str) {
        self.lock().remove(session);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Middleware: refuse another client's session; remember new sessions.
pub async fn bind(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(client_id) = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.client_id().to_owned())
    else {
        return next.run(req).await;
    };
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(sid) = &session
        && state.session_owners().check(sid, &client_id) == Verdict::Foreign
    {
        state.audit().record(
            AuditEvent::new(names::SESSION_REFUSED, "denied")
                .client(&client_id)
                .reason("foreign_session"),
        );
        // Indistinguishable from an unknown session.
        return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
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
                state.session_owners().insert(new, &client_id);
            }
        }
        Some(sid) if is_delete && resp.status().is_success() => state.session_owners().remove(sid),
        Some(_) => {}
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        let o = SessionOwners::default();
        assert_eq!(o.check("s1", "a"), Verdict::Allow, "unknown: rmcp decides");
        o.insert("s1", "a");
        assert_eq!(o.check("s1", "a"), Verdict::Allow);
        assert_eq!(o.check("s1", "b"), Verdict::Foreign);
        o.remove("s1");
        assert_eq!(o.check("s1", "b"), Verdict::Allow);
        assert!(o.is_empty());
    }
}
