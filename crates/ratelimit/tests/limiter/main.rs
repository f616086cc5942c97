//! Integration tests for the `ratelimit` crate (one binary, DESIGN.md
//! conventions). Redis tests start their own `redis-server` through
//! `testkit` and skip loudly when it is not installed (fail in CI).

// clippy.toml allows these in `#[test]` functions only; the helpers of this
// test-only crate deserve the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod failure;
mod memory;
mod redis;
mod suite;
mod support;
