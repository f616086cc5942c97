//! secure-mcp's MCP server: an OAuth 2.1 resource server that exposes a
//! customer-service tool set over MCP streamable HTTP (rmcp, mounted in axum).
//!
//! # Layout
//! - [`config`]: `Config::from_env()`, every variable and its default.
//! - [`app`]: `App::build` / `build_with_listener` (port 0 in tests) and
//!   `run_until_stopped` (graceful shutdown on SIGINT/SIGTERM).
//! - [`router`]: every route and the `/mcp` middleware stack, in order, with
//!   the status each layer can answer.
//! - [`middleware`]: CORS → Host/Origin → bearer token → scope → rate limit →
//!   session binding, one plain function each, run in that order by one tower
//!   service ([`middleware::gate::McpGate`]); each step takes its own slice
//!   of [`state::AppState`].
//! - [`error`]: [`error::McpHttpError`], every answer that does not come
//!   from rmcp (400/401/403/404/405/413/415/429/503).
//! - [`state`]: the shared [`state::AppState`].
//! - [`host_policy`], [`challenge`], [`limits`], [`sessions`]: what the
//!   layers consult (allow-lists, `WWW-Authenticate` values, rate-limit
//!   budgets, session owners).
//! - [`jsonrpc`]: peeking at a JSON-RPC body for the tool or resource, and
//!   for the `id` an error answer echoes.
//! - [`policy`]: the authenticated [`policy::Caller`], the [`policy::Operation`]
//!   a request asks for and the scope it needs, `scopes_supported`.
//! - [`mcp`]: the rmcp `ServerHandler` and the streamable HTTP service;
//!   [`mcp::McpHandler::call_tool_for`] is the one owner of a tool call.
//! - [`direct`]: the direct stateless 2026-07-28 `tools/call` path, taken
//!   after every check instead of rmcp's per-request task, answering as rmcp
//!   would (decision 0015).
//! - [`tools`]: one file per tool, its scope declared next to it.
//! - [`resources`]: `health://status` and `security://events`.
//! - [`store`]: the customer/ticket store behind a trait (seeded in memory).
//! - [`audit`]: audit events and the bounded ring behind `security://events`.
//! - [`routes`]: `/health` and the RFC 9728 metadata documents.
//! - [`metrics`]: the mcp-server's Prometheus families (token rejections,
//!   scope denials, tool calls derived from audit events; sessions and the
//!   token cache read at scrape time), served on `MCP_METRICS_BIND`.
//!
//! # A request's path
//! `POST /mcp` → [`middleware::gate::McpGate`], which runs:
//! `cors::mcp_preflight` (answers a browser's preflight before any token,
//! for `MCP_ALLOWED_ORIGINS` only; adds the CORS headers on the way out) →
//! `host_origin::check` (403 on a foreign Host/Origin) →
//! `bearer::authenticate` (429 for an address that keeps failing; verify the
//! JWT against the cached JWKS, check the revocation list; 401 +
//! `WWW-Authenticate` otherwise; the [`policy::Caller`] is passed on, and put
//! in the request extensions for rmcp's handlers) → `scope::require_scope` (which tool or resource? from
//! `Mcp-Method`/`Mcp-Name` on 2026-07-28 requests, from the body otherwise;
//! 403 `insufficient_scope`) → `rate_limit::limit` (the caller's budget —
//! per client, per (client, user) for a user token — shared through Redis; 429) → `session_binding::bind` (a legacy session
//! serves only its opener) → a stateless 2026-07-28 `tools/call` that passes
//! every check rmcp would make is answered by [`direct::DirectCalls`] →
//! everything else goes to rmcp, which hands the request's
//! `http::request::Parts` to [`mcp::McpHandler`]; the handler filters lists
//! by the caller's scopes, checks the scope again, validates the arguments
//! and runs the tool. Every refusal before rmcp is an [`error::McpHttpError`];
//! every rejection and every tool call is an [`audit::AuditEvent`].

pub mod app;
pub mod audit;
pub mod challenge;
pub mod config;
pub mod direct;
pub mod error;
pub mod host_policy;
pub mod jsonrpc;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod middleware;
pub mod policy;
pub mod resources;
pub mod router;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod store;
pub mod tools;

pub use app::App;
pub use config::Config;
