//! The `/mcp` middleware stack, outermost first (wired in `router.rs`):
//!
//! 1. [`host_origin`]: `Host` / `Origin` allow-lists (400/403).
//! 2. [`bearer`]: access-token verification and revocation (401/503).
//! 3. [`scope`]: the scope of the requested tool or resource (403).
//! 4. [`rate_limit`]: the seam where the distributed rate limiter goes (429).
//! 5. [`session_binding`]: a 2025-11-25 session only serves the client that
//!    opened it (404 otherwise).
//!
//! [`challenge`] builds the 401/403 responses.

pub mod bearer;
pub mod challenge;
pub mod host_origin;
pub mod rate_limit;
pub mod scope;
pub mod session_binding;
