//! Everything an MCP client needs that is not the LLM (DESIGN.md §7).
//!
//! `openai-client` and `anthropic-client` only add their provider's wire
//! format (a [`agent::ChatModel`]); this crate owns the rest.
//!
//! # Layout
//! - [`config`]: `ClientConfig::from_env()` — every variable, its default,
//!   and one-line errors that name the fix.
//! - [`tls`]: the one rustls configuration (webpki roots plus the PEM CA in
//!   `SSL_CERT_FILE` / `MCP_CA_CERT`; verification cannot be switched off)
//!   and the shared `reqwest::Client`; [`tls::explain`] turns a handshake
//!   failure into a sentence.
//! - [`retry`]: bounded retries — `Retry-After` honoured, exponential
//!   backoff with full jitter, a cap on attempts and on total time — used by
//!   the token endpoint, the MCP transport and the LLM APIs alike.
//! - [`discovery`]: `WWW-Authenticate` parsing, RFC 9728 protected-resource
//!   metadata and RFC 8414 authorization-server metadata (issuer checked).
//! - [`token`]: [`token::TokenSource`] — client_credentials with
//!   client_secret_basic/post or private_key_jwt, `resource` always sent,
//!   cached, renewed before expiry, renewed once after a rejection, and one
//!   bounded scope step-up.
//! - [`transport`]: [`transport::AuthorizedHttp`], the seam into rmcp's
//!   streamable HTTP client (`StreamableHttpClient`): it puts the bearer
//!   token on every request, re-authenticates once on 401, steps up once on
//!   403 `insufficient_scope`, and retries 429/5xx.
//! - [`wire`]: [`wire::Wire`], under rmcp's transport for every MCP
//!   connection: a legacy server's answer to the `server/discover` probe
//!   becomes the error that makes rmcp fall back, an oversized SSE event
//!   becomes an error naming the limit.
//! - [`mcp`]: [`mcp::McpClient`] — connect (discovery → token → rmcp
//!   client: 2026-07-28 stateless, falling back to 2025-11-25 sessions;
//!   every answer bounded by [`mcp::MCP_MAX`]), list tools with their
//!   `_meta["securemcp/scopes"]`, call tools, and map every failure to an
//!   [`mcp::McpError`] that says what to do.
//! - [`agent`]: the provider-neutral conversation, [`agent::ChatModel`], and
//!   the tool loop (parallel tool calls, error results, turn limit).
//! - [`llm`]: the HTTP layer the providers share (retries, error bodies).
//! - [`read`]: bounded response bodies (token, metadata, LLM, errors; MCP
//!   answers are bounded in [`mcp`]).
//! - [`transcript`]: printing the loop's events for people or as JSON lines.
//! - [`trace`]: OpenTelemetry traces (opt-in, `OTEL_EXPORTER_OTLP_ENDPOINT`):
//!   a span per command and tool call, W3C `traceparent` on every request to
//!   the authorization server and the MCP server.
//! - [`cli`]: the command line both binaries expose (`ask`, `chat`, `tools`,
//!   `call`, the demo queries); [`conformance`]: the hidden client runner for
//!   the MCP conformance suite.
//!
//! # A tool call's path
//! model asks for `get_customer_info` → [`agent::Agent`] →
//! [`mcp::McpClient::call_tool`] → rmcp (`_meta`, `MCP-Protocol-Version`,
//! `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` headers) → [`wire::Wire`] →
//! [`transport::AuthorizedHttp`] (token from [`token::TokenSource`],
//! retries from [`retry`]) → the MCP
//! server → the result (or an error result) goes back to the model with the
//! call's id.

pub mod agent;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod discovery;
pub mod llm;
pub mod login;
pub mod mcp;
pub mod read;
pub mod retry;
pub mod store;
pub mod tls;
pub mod token;
pub mod trace;
pub mod transcript;
pub mod transport;
pub mod wire;

pub use agent::{Agent, AssistantTurn, ChatModel, Conversation, Message, ToolCall, ToolResult};
pub use config::{ClientConfig, ConfigError};
pub use mcp::{McpClient, McpError, Protocol, ToolInfo, ToolOutcome};
pub use retry::RetryPolicy;
pub use token::TokenSource;
