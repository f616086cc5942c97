//! Integration tests: a real oauth-server and a real mcp-server on port 0,
//! real tokens, plain HTTP. One binary, one module per concern.

// Test code: a failed unwrap is a failed test (CONVENTIONS.md allows it in tests;
// clippy only knows that for #[test] functions, not for shared helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod audit_events;
mod bad_input;
mod binary;
mod cors;
mod error_answers;
mod jwks_rotation;
mod lazy_redis;
mod metadata;
mod metrics;
mod protocols;
mod rate_limits;
mod results;
mod revocation;
mod scopes;
mod second_wall;
mod token_rejections;
mod user_tokens;
