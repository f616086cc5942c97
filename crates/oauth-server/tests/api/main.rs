//! oauth-server integration tests: the real app on port 0, real HTTP.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod authorize;
mod cimd;
mod cli;
mod client_auth;
mod code_grant;
mod cors;
mod errors;
mod metadata;
mod metrics;
mod ratelimit;
mod refresh;
mod register;
mod revocation;
mod rotation;
mod token;
