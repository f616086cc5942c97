//! The rmcp side: the [`McpHandler`] (`ServerHandler`) and the streamable
//! HTTP service mounted at `/mcp`.
//!
//! One service serves both protocol generations: with rmcp's legacy session
//! mode on, an `initialize` opens a 2025-11-25 session (`Mcp-Session-Id`,
//! GET stream, DELETE), while a request whose `_meta` carries the 2026-07-28
//! per-request fields is served statelessly (SEP-2567). Either way each
//! request's `http::request::Parts` — and so the [`Caller`] our bearer
//! middleware put in its extensions — reach the handler through the
//! `RequestContext`. The handler filters lists by the caller's scopes and
//! re-checks the scope of every tool call and resource read (second wall).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit::{AuditEvent, names};
use crate::policy::Caller;
use crate::resources;
use crate::state::{AppState, MAX_BODY_BYTES};
use crate::tools::{self, ToolCtx, ToolError};

/// The rmcp service mounted at `/mcp`, shared behind an `Arc`.
///
/// axum clones a route's service for every request, and so does each
/// `from_fn` layer in front of it; rmcp's `StreamableHttpService` clones its
/// whole configuration (host and origin lists included) when cloned. The
/// profile of a loaded server showed those clones and their drops; behind an
/// `Arc` a clone is one reference count, and requests go to rmcp's
/// `handle(&self)` without any copy.
#[derive(Clone)]
pub struct McpService(Arc<StreamableHttpService<McpHandler, LocalSessionManager>>);

impl tower::Service<http::Request<axum::body::Body>> for McpService {
    type Response = http::Response<
        http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>,
    >;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(req).await) })
    }
}

/// Builds the streamable HTTP service on the state's session table
/// ([`AppState::rmcp_sessions`]). `allowed_hosts` / `allowed_origins` are
/// the same lists our Host/Origin middleware enforces first.
pub fn service(
    state: AppState,
    allowed_hosts: &[String],
    allowed_origins: &[String],
    ct: CancellationToken,
) -> McpService {
    let sessions = state.rmcp_sessions().clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_allowed_hosts(allowed_hosts.iter().cloned())
        .with_allowed_origins(allowed_origins.iter().cloned())
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(ct);
    let handler = McpHandler { state };
    McpService(Arc::new(StreamableHttpService::new(
        move || Ok(handler.clone()),
        sessions,
        config,
    )))
}

/// The MCP request handler. Cloned per session / stateless request.
#[derive(Clone)]
pub struct McpHandler {
    state: AppState,
}

impl McpHandler {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// `tools/call` for `caller`: the second-wall scope check, argument
    /// validation, the tool, the result-size cap, the audit event. The one
    /// owner of a tool call: rmcp's `call_tool` and the direct stateless
    /// path ([`crate::direct`]) both come here.
    pub async fn call_tool_for(
        &self,
        caller: &Caller,
        request: CallToolRequestParams,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let name = request.name.as_ref();
        let Some(def) = tools::find(name) else {
            let shown: String = name.chars().take(64).collect();
            self.state.audit().record(
                AuditEvent::new(names::TOOL_CALLED, "unknown_tool")
                    .client(caller.client_id())
                    .subject(caller.sub())
                    .tool(&shown)
                    .reason("unknown_tool")
                    .latency(started.elapsed()),
            );
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", tools::validate::preview(name)),
                None,
            ));
        };
        let audit = |outcome: &'static str| {
            AuditEvent::new(names::TOOL_CALLED, outcome)
                .client(caller.client_id())
                .subject(caller.sub())
                .tool(def.name)
        };
        if !caller.has_scope(def.scope) {
            self.state.audit().record(
                AuditEvent::new(names::SCOPE_DENIED, "denied")
                    .client(caller.client_id())
                    .subject(caller.sub())
                    .tool(def.name)
                    .reason("insufficient_scope")
                    .required_scope(def.scope)
                    .latency(started.elapsed()),
            );
            return Err(insufficient_scope(
                &format!("the tool {}", def.name),
                def.scope,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let ctx = ToolCtx {
            state: &self.state,
            client_id: caller.client_id(),
        };
        // Debug level: the audit event below already names tool and client;
        // an info span per call was measurable CPU (BENCHMARKS.md).
        let span = tracing::debug_span!("tool", tool = def.name, client_id = caller.client_id());
        let max = self.state.max_result_bytes();
        let (result, outcome, reason) = match (def.call)(ctx, args).instrument(span).await {
            Ok(value) if fits(&value, max) => (CallToolResult::structured(value), "ok", None),
            Ok(_) => (
                CallToolResult::error(vec![ContentBlock::text(too_large_message(max))]),
                "tool_error",
                Some("result_too_large"),
            ),

            Err(ToolError::InvalidInput(msg)) => (
                CallToolResult::error(vec![ContentBlock::text(format!("Invalid input: {msg}"))]),
                "invalid_input",
                Some("invalid_input"),
            ),
            Err(ToolError::NotFound(msg)) => (
                CallToolResult::error(vec![ContentBlock::text(msg)]),
                "tool_error",
                Some("not_found"),
            ),
            Err(ToolError::Store(e)) => {
                tracing::error!(tool = def.name, error = %e, "tool back end failed");
                (
                    CallToolResult::error(vec![ContentBlock::text(
                        "The service is temporarily unavailable; try again later.",
                    )]),
                    "tool_error",
                    Some("backend_unavailable"),
                )
            }
        };
        let mut event = audit(outcome).latency(started.elapsed());
        event.reason = reason;
        self.state.audit().record(event);
        Ok(result)
    }
}

/// The authenticated caller of this request.
fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        // Only reachable if the service were mounted without the bearer layer.
        .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))
}

/// Whether `value`'s JSON is at most `max` bytes. Counted by a writer that
/// stops at the cap, so a huge result costs no huge buffer.
pub fn fits(value: &serde_json::Value, max: usize) -> bool {
    struct Counter {
        n: usize,
        max: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n = self.n.saturating_add(buf.len());
            if self.n > self.max {
                // Stops serialising: the answer is known.
                return Err(std::io::Error::other("over the cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { n: 0, max }, value).is_ok()
}

/// The tool error for a result over the cap: what happened and what to do.
pub fn too_large_message(max: usize) -> String {
    format!(
        "The result is too large to send (its JSON is over the server's limit of {max} \
         bytes). Ask for less: a smaller limit, or page with the cursor."
    )
}

fn insufficient_scope(what: &str, scope: &str) -> ErrorData {
    ErrorData::invalid_request(
        format!("insufficient_scope: {what} requires the scope {scope}"),
        Some(serde_json::json!({ "error": "insufficient_scope", "scope": scope })),
    )
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new("secure-mcp", env!("CARGO_PKG_VERSION"))
                .with_title("secure-mcp customer service"),
        )
        .with_instructions(
            "Customer-service tools. Each tool needs one OAuth scope, published in its \
                 _meta[\"securemcp/scopes\"]; tools/list shows only the tools your token may call.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx)?;
        let tools = tools::ALL
            .iter()
            .filter(|t| caller.has_scope(t.scope))
            .map(|t| {
                t.to_tool()
                    .map_err(|e| ErrorData::internal_error(format!("tool {}: {e}", t.name), None))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The list depends on the token, so only this caller may cache it.
        Ok(ListToolsResult::with_all_items(tools)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name).and_then(|t| t.to_tool().ok())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&ctx)?;
        self.call_tool_for(&caller, request).await.map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = caller(&ctx)?;
        let list = resources::ALL
            .iter()
            .filter(|r| r.scope.is_none_or(|s| caller.has_scope(s)))
            .map(resources::ResourceDef::to_resource)
            .collect();
        Ok(ListResourcesResult::with_all_items(list)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![])
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        // No prompts; the capability is advertised so list calls (and caching
        // hints) behave uniformly for generic clients.
        Ok(ListPromptsResult::with_all_items(vec![])
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    /// The `prompts` capability is declared, so `prompts/get` is a method this
    /// server has (rmcp's default answers -32601, method not found); the list
    /// is empty, so every name is unknown: -32602, as MCP specifies for an
    /// invalid prompt name.
    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        caller(&ctx)?;
        Err(ErrorData::invalid_params(
            format!(
                "unknown prompt: {} (prompts/list names the prompts)",
                tools::validate::preview(&request.name)
            ),
            None,
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = caller(&ctx)?;
        let uri = request.uri;
        let Some(def) = resources::find(&uri) else {
            // -32002 for legacy peers; rmcp turns it into -32602 for 2026-07-28 ones (SEP-2164).
            return Err(ErrorData::resource_not_found(
                "Resource not found",
                Some(serde_json::json!({ "uri": uri })),
            ));
        };
        if let Some(scope) = def.scope
            && !caller.has_scope(scope)
        {
            self.state.audit().record(
                AuditEvent::new(names::SCOPE_DENIED, "denied")
                    .client(caller.client_id())
                    .subject(caller.sub())
                    .resource(def.uri)
                    .reason("insufficient_scope")
                    .required_scope(scope),
            );
            return Err(insufficient_scope(
                &format!("the resource {}", def.uri),
                scope,
            ));
        }
        let text = (def.read)(&self.state).await;
        let contents = ResourceContents::text(text, def.uri).with_mime_type(def.mime_type);
        Ok(ReadResourceResult::new(vec![contents])
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private)
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_the_json_bytes() {
        let v = serde_json::json!({"a": "x".repeat(100)});
        let len = serde_json::to_vec(&v).unwrap().len();
        assert!(fits(&v, len));
        assert!(!fits(&v, len - 1));
        let huge = serde_json::json!(vec!["y".repeat(1000); 10_000]);
        assert!(!fits(&huge, 1024));
    }
}
