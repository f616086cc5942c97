//! The MCP session: connect, list tools with their scopes, call tools.
//!
//! Both protocol generations: by default the client opens with
//! `server/discover` and speaks the 2026-07-28 stateless wire (per-request
//! `_meta`, `MCP-Protocol-Version`, `Mcp-Method`/`Mcp-Name` and SEP-2243
//! `Mcp-Param-*` headers — rmcp's transport adds them); a server that answers
//! the probe like a 2025-11-25 server (a JSON-RPC error, or a 4xx with or
//! without one) gets a legacy `initialize` session on the same connection at
//! once. Only a server that does not answer the probe at all costs rmcp's
//! 10 s auto-discover timeout. [`Protocol`] pins one generation.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig as ClientInfo, Implementation,
    JsonObject, ProtocolVersion, RequestParamsMeta as _, Tool,
};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt as _, RoleClient, RunningService,
    ServiceError,
};
use rmcp::transport::DynamicTransportError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::Value;
use tracing::Instrument as _;
use url::Url;

use crate::config::{ClientConfig, ConfigError};
use crate::discovery::{self, DiscoveryError};
use crate::retry::RetryPolicy;
use crate::tls::{TlsError, TrustStore};
use crate::token::{TokenEndpoint, TokenError, TokenSource};
use crate::transport::{AuthorizedHttp, TransportError};
use crate::wire::{TOO_LARGE_KEY, Wire};

/// `_meta` key under which the server lists the scopes a tool needs.
pub const SCOPES_META_KEY: &str = "securemcp/scopes";

/// The largest MCP answer the client reads: one JSON response or one SSE
/// event (the same bound as one LLM answer, [`crate::read::LLM_MAX`]). A
/// larger one ends the request with [`McpError::TooLarge`].
pub const MCP_MAX: usize = 16 * 1024 * 1024;

/// Which MCP protocol generation the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// 2026-07-28 (stateless, `server/discover`), falling back to 2025-11-25
    /// sessions when the server is legacy. What the CLI uses.
    #[default]
    Auto,
    /// 2026-07-28 only: a legacy server is an error.
    Stateless,
    /// 2025-11-25 sessions only (`initialize`, `Mcp-Session-Id`).
    Legacy,
}

impl Protocol {
    /// The 2026-07-28 stateless revision.
    pub const STATELESS: ProtocolVersion = ProtocolVersion::V_2026_07_28;
    /// The 2025-11-25 session revision used for the fallback.
    pub const LEGACY: ProtocolVersion = ProtocolVersion::V_2025_11_25;

    fn lifecycle(self) -> ClientLifecycleMode {
        match self {
            Self::Auto => ClientLifecycleMode::Auto {
                preferred_versions: vec![Self::STATELESS],
                legacy_version: Some(Self::LEGACY),
            },
            Self::Stateless => ClientLifecycleMode::Discover {
                preferred_versions: vec![Self::STATELESS],
            },
            Self::Legacy => ClientLifecycleMode::Initialize,
        }
    }

    /// The client info to start with: `initialize` carries its version.
    fn client_info(self) -> ClientInfo {
        let mut info = ClientInfo::new(
            ClientCapabilities::default(),
            Implementation::new("secure-mcp-client", env!("CARGO_PKG_VERSION")),
        );
        if self == Self::Legacy {
            info.protocol_version = Self::LEGACY;
        }
        info
    }
}

/// A tool as the server describes it, plus the scopes it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: JsonObject,
    /// `_meta["securemcp/scopes"]`; empty when the server says nothing.
    pub scopes: Vec<String>,
    pub read_only: Option<bool>,
}

impl From<Tool> for ToolInfo {
    fn from(tool: Tool) -> Self {
        let scopes = tool
            .meta
            .as_ref()
            .and_then(|m| m.0.get(SCOPES_META_KEY))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            title: tool
                .title
                .clone()
                .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone())),
            read_only: tool.annotations.as_ref().and_then(|a| a.read_only_hint),
            description: tool.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: (*tool.input_schema).clone(),
            name: tool.name.into_owned(),
            scopes,
        }
    }
}

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// The text content (structured content as JSON when there is no text).
    pub text: String,
    pub structured: Option<Value>,
    /// The tool reported a failure (`isError: true`): the text says why.
    pub is_error: bool,
}

/// Why an MCP operation failed. Every message is one line that names the fix.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot discover the authorization server: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "client `{client_id}` lacks scope `{scope}`{} — if the client is allowed it, add it to OAUTH_SCOPES; otherwise grant it in the authorization server's client registry (allowed_scopes)",
        denial(.refusal)
    )]
    InsufficientScope {
        client_id: String,
        scope: String,
        /// The authorization server's answer to the step-up, if one was tried.
        refusal: Option<String>,
    },
    #[error(
        "{detail} — the MCP server's OAUTH_ISSUER and MCP_RESOURCE_URL must match this authorization server and MCP_SERVER_URL"
    )]
    Unauthorized { detail: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("the MCP server answered with error {code}: {message}")]
    Protocol { code: i32, message: String },
    #[error("tool arguments must be a JSON object, got {0}")]
    InvalidArguments(String),
    #[error(
        "the MCP server speaks protocol version{} {}, this client speaks {} — upgrade the one that is behind",
        if .server.len() == 1 { "" } else { "s" },
        list_or_none(.server),
        .client.join(" and ")
    )]
    UnsupportedProtocol {
        server: Vec<String>,
        client: Vec<String>,
    },
    #[error(
        "the MCP server sent an answer larger than {max} bytes (the client's limit for one MCP message); the request was abandoned"
    )]
    TooLarge { max: usize },
    #[error("MCP session failed: {0}")]
    Session(String),
}

fn list_or_none(versions: &[String]) -> String {
    if versions.is_empty() {
        "(none named)".to_owned()
    } else {
        versions.join(", ")
    }
}

fn denial(refusal: &Option<String>) -> String {
    refusal
        .as_deref()
        .map(|r| format!(" and could not get it ({r})"))
        .unwrap_or_default()
}

/// A connected MCP session.
pub struct McpClient {
    service: RunningService<RoleClient, ClientInfo>,
    /// `None` only for [`McpClient::connect_anonymous`].
    tokens: Option<TokenSource>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl McpClient {
    /// TLS → discovery (unless `OAUTH_TOKEN_URL`) → first token → session.
    pub async fn connect(config: &ClientConfig) -> Result<Self, McpError> {
        let http = TrustStore::load(&config.ca_files)?.http_client()?;
        Self::connect_using(http, config).await
    }

    /// Like [`McpClient::connect`] with an HTTP client built elsewhere
    /// (it must come from [`TrustStore::http_client`]).
    pub async fn connect_using(
        http: reqwest::Client,
        config: &ClientConfig,
    ) -> Result<Self, McpError> {
        let tokens = token_source(&http, config).await?;
        Self::connect_with(http, tokens, &config.mcp_url, config.retry.clone()).await
    }

    /// Opens a session with an existing token source (tests, embedders),
    /// speaking 2026-07-28 with the 2025-11-25 fallback.
    pub async fn connect_with(
        http: reqwest::Client,
        tokens: TokenSource,
        mcp_url: &Url,
        retry: RetryPolicy,
    ) -> Result<Self, McpError> {
        Self::connect_with_protocol(http, tokens, mcp_url, retry, Protocol::Auto).await
    }

    /// [`McpClient::connect_with`] pinned to one protocol generation.
    pub async fn connect_with_protocol(
        http: reqwest::Client,
        tokens: TokenSource,
        mcp_url: &Url,
        retry: RetryPolicy,
        protocol: Protocol,
    ) -> Result<Self, McpError> {
        // Fail on credentials before rmcp wraps the error in its own.
        tokens.token().await?;
        let client = AuthorizedHttp::new(http, tokens.clone(), retry);
        let service = protocol
            .client_info()
            .serve_with_lifecycle(transport(client, mcp_url), protocol.lifecycle())
            .await
            .map_err(|e| from_init_error(e, tokens.client_id()))?;
        Ok(Self {
            service,
            tokens: Some(tokens),
        })
    }

    /// A session without any token, for servers that need none (the
    /// conformance suite's plain scenarios). Never used by the CLI commands.
    pub async fn connect_anonymous(
        http: reqwest::Client,
        mcp_url: &Url,
        protocol: Protocol,
    ) -> Result<Self, McpError> {
        let service = protocol
            .client_info()
            .serve_with_lifecycle(transport(http, mcp_url), protocol.lifecycle())
            .await
            .map_err(|e| {
                if e.auth_challenge().is_some() {
                    return McpError::Unauthorized {
                        detail: "the MCP server requires a token".to_owned(),
                    };
                }
                from_init_error(e, "(anonymous)")
            })?;
        Ok(Self {
            service,
            tokens: None,
        })
    }

    /// The protocol revision the server and this client agreed on
    /// (`2026-07-28`, or `2025-11-25` after the fallback).
    pub fn protocol_version(&self) -> Option<String> {
        self.service
            .peer()
            .peer_info()
            .map(|info| info.protocol_version.as_str().to_owned())
    }

    /// The token source (for statistics and tests).
    pub fn tokens(&self) -> Option<&TokenSource> {
        self.tokens.as_ref()
    }

    fn client_id(&self) -> &str {
        self.tokens
            .as_ref()
            .map_or("(anonymous)", TokenSource::client_id)
    }

    /// Every tool the server offers this client, with its scopes.
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, McpError> {
        let tools = self
            .service
            .peer()
            .list_all_tools()
            .instrument(tracing::info_span!("tools/list"))
            .await
            .map_err(|e| from_service_error(e, self.client_id()))?;
        Ok(tools.into_iter().map(ToolInfo::from).collect())
    }

    /// Calls `name` with `arguments` (a JSON object, or null for none).
    /// A tool that fails reports `is_error`; an `Err` means the call itself
    /// did not happen or was refused.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<ToolOutcome, McpError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map),
            Value::Null => {}
            other => return Err(McpError::InvalidArguments(kind(&other).to_owned())),
        }
        let span = tracing::info_span!("tools/call", tool = name);
        // rmcp sends the request from its own task: the span's trace
        // context rides in `_meta` (SEP-414), and the transport turns it into
        // the `traceparent` header (`AuthorizedHttp`).
        if let Some(traceparent) = span.in_scope(crate::trace::traceparent) {
            params.set_traceparent(&traceparent);
        }
        let result = self
            .service
            .call_tool(params)
            .instrument(span)
            .await
            .map_err(|e| from_service_error(e, self.client_id()))?;
        let texts: Vec<String> = result
            .content
            .iter()
            .map(|c| match c.as_text() {
                Some(t) => t.text.clone(),
                None => "[non-text content]".to_owned(),
            })
            .collect();
        let text = if texts.is_empty() {
            result
                .structured_content
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default()
        } else {
            texts.join("\n")
        };
        Ok(ToolOutcome {
            text,
            structured: result.structured_content,
            is_error: result.is_error.unwrap_or(false),
        })
    }

    /// Ends the session (DELETE for session servers), waiting at most `timeout`.
    pub async fn close(mut self, timeout: Duration) {
        if let Err(e) = self.service.close_with_timeout(timeout).await {
            tracing::debug!(error = %e, "closing the MCP session");
        }
    }
}

/// rmcp's streamable HTTP transport over `client` (through [`Wire`]), every
/// answer bounded by [`MCP_MAX`]: rmcp's reqwest client enforces the limits
/// it is handed, and [`AuthorizedHttp`] and [`Wire`] pass them through.
fn transport<C: StreamableHttpClient + Sync>(
    client: C,
    mcp_url: &Url,
) -> StreamableHttpClientTransport<Wire<C>> {
    StreamableHttpClientTransport::with_client(
        Wire::new(client),
        StreamableHttpClientTransportConfig::with_uri(mcp_url.as_str())
            .max_json_response_size(MCP_MAX)
            .max_sse_event_size(MCP_MAX),
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The token source for `config`: `OAUTH_TOKEN_URL`, or discovery from the MCP server.
pub async fn token_source(
    http: &reqwest::Client,
    config: &ClientConfig,
) -> Result<TokenSource, McpError> {
    let (endpoint, resource) = match &config.token_url {
        Some(url) => {
            let resource = auth::uri::canonical_resource(config.mcp_url.as_str())
                .map_err(|e| ConfigError::new("MCP_SERVER_URL", format!("is not usable: {e}")))?;
            (
                TokenEndpoint {
                    url: url.clone(),
                    issuer: None,
                    auth_methods: Vec::new(),
                },
                resource,
            )
        }
        None => {
            let found =
                discovery::discover_for(http, &config.mcp_url, &config.issuer, &config.retry)
                    .await
                    .map_err(|e| match e {
                        e @ discovery::DiscoveryError::ForeignIssuer { .. } => {
                            McpError::Config(ConfigError::new("OAUTH_ISSUER", e.to_string()))
                        }
                        e => McpError::from(e),
                    })?;
            tracing::debug!(issuer = %found.issuer, token_endpoint = %found.token_endpoint, "authorization server discovered");
            (
                TokenEndpoint {
                    url: found.token_endpoint,
                    issuer: Some(found.issuer),
                    auth_methods: found.auth_methods,
                },
                found.resource,
            )
        }
    };
    Ok(TokenSource::new(
        http.clone(),
        endpoint,
        config.credentials.clone(),
        resource,
        config.scopes.clone(),
        config.retry.clone(),
    ))
}

fn from_init_error(e: ClientInitializeError, client_id: &str) -> McpError {
    match e {
        ClientInitializeError::TransportError { error, .. } => from_transport(&error, client_id),
        ClientInitializeError::JsonRpcError(data) => McpError::Protocol {
            code: data.code.0,
            message: data.message.into_owned(),
        },
        // The probe said "legacy"; what went wrong is the fallback's story.
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => {
            from_init_error(*fallback, client_id)
        }
        ClientInitializeError::NoCompatibleProtocolVersion {
            client_supported,
            server_supported,
        } => McpError::UnsupportedProtocol {
            server: server_supported
                .iter()
                .map(|v| v.as_str().to_owned())
                .collect(),
            client: client_supported
                .iter()
                .map(|v| v.as_str().to_owned())
                .collect(),
        },
        other => McpError::Session(other.to_string()),
    }
}

/// Maps rmcp's error for one request to ours.
pub fn from_service_error(e: ServiceError, client_id: &str) -> McpError {
    match e {
        ServiceError::McpError(data) if too_large(&data).is_some() => McpError::TooLarge {
            max: too_large(&data).unwrap_or(MCP_MAX),
        },
        ServiceError::McpError(data) => McpError::Protocol {
            code: data.code.0,
            message: data.message.into_owned(),
        },
        ServiceError::TransportSend(error) => from_transport(&error, client_id),
        other => McpError::Session(other.to_string()),
    }
}

/// The limit named by [`crate::wire`]'s stand-in for an oversized event.
fn too_large(data: &rmcp::model::ErrorData) -> Option<usize> {
    let max = data.data.as_ref()?.get(TOO_LARGE_KEY)?.as_u64()?;
    usize::try_from(max).ok()
}

fn from_transport(error: &DynamicTransportError, client_id: &str) -> McpError {
    let Some(e) = error
        .error
        .downcast_ref::<StreamableHttpError<TransportError>>()
    else {
        // An anonymous session (plain reqwest transport) refused by a server
        // that wants a token for this request.
        if let Some(StreamableHttpError::AuthRequired(_)) = error
            .error
            .downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            return McpError::Unauthorized {
                detail: "the MCP server requires a token".to_owned(),
            };
        }
        return McpError::Session(crate::tls::describe(error.error.as_ref()));
    };
    match e {
        StreamableHttpError::Client(TransportError::Token(t)) => McpError::Token(t.clone()),
        StreamableHttpError::Client(TransportError::ScopeDenied {
            client_id,
            scope,
            source,
        }) => McpError::InsufficientScope {
            client_id: client_id.clone(),
            scope: scope.clone(),
            refusal: Some(source.oauth_code().map_or_else(
                || source.to_string(),
                |code| format!("the authorization server answered {code}"),
            )),
        },
        StreamableHttpError::InsufficientScope(challenge) => McpError::InsufficientScope {
            client_id: client_id.to_owned(),
            scope: challenge
                .required_scope
                .clone()
                .unwrap_or_else(|| "(unnamed)".to_owned()),
            refusal: None,
        },
        StreamableHttpError::Client(TransportError::Unauthorized { .. })
        | StreamableHttpError::AuthRequired(_) => McpError::Unauthorized {
            detail: "the MCP server rejected a freshly issued token".to_owned(),
        },
        StreamableHttpError::Client(
            e @ (TransportError::GaveUp { .. } | TransportError::Unreachable { .. }),
        ) => McpError::Unavailable(e.to_string()),
        StreamableHttpError::Client(e) => McpError::Unavailable(e.to_string()),
        StreamableHttpError::HttpStatus(s) => {
            McpError::Unavailable(format!("the MCP server answered HTTP {}", s.status))
        }
        StreamableHttpError::ResponseBodyTooLarge { max_size } => {
            McpError::TooLarge { max: *max_size }
        }
        other => McpError::Session(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ErrorData, ProtocolVersion};
    use rmcp::service::ClientInitializeError;

    use super::from_init_error;

    #[test]
    fn no_common_protocol_version_is_one_line_naming_both() {
        let future: ProtocolVersion = serde_json::from_str("\"2099-01-01\"").unwrap();
        let e = from_init_error(
            ClientInitializeError::NoCompatibleProtocolVersion {
                client_supported: vec![ProtocolVersion::V_2026_07_28],
                server_supported: vec![future],
            },
            "c",
        );
        assert_eq!(
            e.to_string(),
            "the MCP server speaks protocol version 2099-01-01, this client speaks 2026-07-28 — \
             upgrade the one that is behind"
        );
    }

    #[test]
    fn a_failed_fallback_reports_the_fallbacks_error() {
        let e = from_init_error(
            ClientInitializeError::LegacyFallbackFailed {
                discover: Box::new(ClientInitializeError::JsonRpcError(
                    ErrorData::method_not_found::<rmcp::model::DiscoverRequestMethod>(),
                )),
                fallback: Box::new(ClientInitializeError::JsonRpcError(
                    ErrorData::invalid_params("unsupported protocol version", None),
                )),
            },
            "c",
        );
        assert_eq!(
            e.to_string(),
            "the MCP server answered with error -32602: unsupported protocol version"
        );
    }
}
