//! The `/mcp` checks, outermost first, folded into one tower service,
//! [`gate::McpGate`] (wired in `router.rs`). Each step is a plain function
//! in its own module, takes only the state it needs (`XState`, taken from the
//! [`AppState`](crate::state::AppState) once, when the router is built) and
//! answers every refusal with a [`McpHttpError`](crate::error::McpHttpError):
//!
//! 0. [`cors`]: preflights answered before authentication (204, 400/403
//!    for a refused host or origin); CORS headers on the answers to listed
//!    origins. (Its [`cors::public`] layer serves the metadata documents.)
//! 1. [`host_origin`]: `Host` / `Origin` allow-lists (400/403).
//! 2. [`bearer`]: failed-authentication budget of the address (429), access
//!    token and revocation (401/503).
//! 3. [`scope`]: reads the operation (415/413/400 for a body it cannot read),
//!    then the scope of the requested tool or resource (403).
//! 4. [`rate_limit`]: the per-client budget (429, 503 when the limiter fails
//!    in `closed` mode).
//! 5. [`session_binding`]: a 2025-11-25 session only serves the client that
//!    opened it (404 otherwise).
//!
//! [`body`] holds the bounded body reads that `scope` and `rate_limit` share.

pub mod bearer;
pub mod body;
pub mod cors;
pub mod gate;
pub mod host_origin;
pub mod rate_limit;
pub mod scope;
pub mod session_binding;
