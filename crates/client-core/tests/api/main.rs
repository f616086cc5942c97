//! client-core against the real oauth-server and mcp-server (port 0,
//! in-process), a fault-injecting proxy, a TLS proxy with a test CA, and the
//! fake LLM APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod discovery;
mod limits;
mod llm_http;
mod session;
mod tls;
mod tokens;
