//! The client runner for the MCP conformance suite
//! (`conformance client --command "openai-client conformance"`).
//!
//! The suite appends the server URL and sets `MCP_CONFORMANCE_SCENARIO` and,
//! for authorization scenarios, `MCP_CONFORMANCE_CONTEXT` (JSON with
//! `client_id` and `client_secret`, or `private_key_pem` for
//! private_key_jwt). The runner does what the CLI does — discovery, token,
//! session (2026-07-28 with the 2025-11-25 fallback), tools/list, and the
//! tool calls the scenario expects ([`tool_calls`]) — through the same code
//! paths, then closes the session.
//!
//! A server that wants a token when the suite gave no credentials gets the
//! person's flow of `login` (login.rs) with an [`Unattended`] user agent: the
//! suite's authorization server approves without a page, so following its
//! redirect is the whole sign-in. The client is the context's (a
//! pre-registered one), else the suite's client ID metadata document URL
//! when the server supports those, else dynamic registration.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cli::CliError;
use crate::config::{self, ClientAuth, ClientConfig, ConfigError, Credentials, Env, Vars as _};
use crate::discovery;
use crate::login::{AskAgain, Login, Unattended, UserAgent as _};
use crate::mcp::{McpClient, McpError, Protocol, ToolInfo};
use crate::retry::RetryPolicy;
use crate::tls::TrustStore;
use crate::token::{TokenError, TokenSource};

/// JSON-RPC "method not found".
const METHOD_NOT_FOUND: i32 = -32601;

/// Runs the scenario the suite names against `server_url`.
pub async fn run(server_url: &str) -> Result<(), CliError> {
    let scenario = Env.get("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let context: Value = match Env.get("MCP_CONFORMANCE_CONTEXT") {
        Some(raw) => serde_json::from_str(&raw).map_err(|e| {
            ConfigError::new("MCP_CONFORMANCE_CONTEXT", format!("is not JSON ({e})"))
        })?,
        None => Value::Null,
    };
    let mcp_url = config::parse_url("the server URL", server_url)?;
    let http = TrustStore::load(&config::ca_files(&Env))?.http_client()?;
    let retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(10),
    };
    tracing::info!(%scenario, "conformance run");
    let client = match credentials(&context)? {
        Some(credentials) => {
            // The suite hands over the server URL and the credentials of its
            // own authorization server together, on ports it picks per run:
            // that server is what the credentials belong to, so the runner
            // pins it from the suite's metadata. The CLI never does this:
            // its credentials go only to OAUTH_ISSUER.
            let issuer = discovery::discover(&http, &mcp_url, &retry)
                .await
                .map_err(McpError::from)?
                .issuer;
            let config = ClientConfig {
                mcp_url: mcp_url.clone(),
                issuer,
                token_url: None,
                credentials,
                scopes: None,
                ca_files: Vec::new(),
                retry: retry.clone(),
            };
            McpClient::connect_using(http.clone(), &config).await?
        }
        None => match McpClient::connect_anonymous(http.clone(), &mcp_url, Protocol::Auto).await {
            // Some servers let `initialize` through and want a token for
            // everything else: the first refusal starts the sign-in.
            Ok(client) => match client.list_tools().await {
                Err(McpError::Unauthorized { .. }) => {
                    client.close(Duration::from_secs(2)).await;
                    signed_in(http.clone(), &mcp_url, &context, retry.clone()).await?
                }
                _ => client,
            },
            Err(McpError::Unauthorized { .. }) => {
                signed_in(http.clone(), &mcp_url, &context, retry.clone()).await?
            }
            Err(e) => return Err(e.into()),
        },
    };
    let signed = client.tokens().is_some_and(TokenSource::is_login);
    match exercise(&client, &scenario, &context).await {
        // A refused token that renewal could not replace, in a signed-in
        // session (no refresh token, or refused again): the MCP
        // server may now name another authorization server (SEP-2352). Run
        // discovery and the sign-in again — a new registration there, never
        // this server's client — and repeat the scenario's calls once.
        Err(McpError::Unauthorized { .. } | McpError::Token(TokenError::LoginExpired { .. }))
            if signed =>
        {
            client.close(Duration::from_secs(2)).await;
            tracing::info!(
                "token refused after renewal; discovering the authorization server again"
            );
            let client = signed_in(http, &mcp_url, &Value::Null, retry).await?;
            exercise(&client, &scenario, &context).await?;
            client.close(Duration::from_secs(2)).await;
        }
        other => {
            other?;
            client.close(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}

/// tools/list, then the calls the scenario expects.
async fn exercise(client: &McpClient, scenario: &str, context: &Value) -> Result<(), McpError> {
    let tools = client.list_tools().await?;
    tracing::info!(protocol = ?client.protocol_version(), tools = tools.len(), "session open");
    for (name, arguments) in tool_calls(scenario, context, &tools) {
        match client.call_tool(&name, arguments).await {
            Ok(outcome) => tracing::info!(tool = %name, is_error = outcome.is_error, "tool called"),
            // A server that lists tools but has no tools/call (e.g.
            // json-schema-ref-no-deref) is only testing tools/list.
            Err(McpError::Protocol { code, .. }) if code == METHOD_NOT_FOUND => {
                tracing::info!(tool = %name, "the server does not implement tools/call");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The tool calls a scenario expects: the suite's own list when its context
/// has one (`toolCalls`, e.g. `http-custom-headers`), the schema round trip
/// `json-schema-2020-12-preservation` asks for, else one call of the first
/// listed tool with arguments that satisfy its schema (`tools_call`,
/// `sse-retry`, `http-standard-headers`, `http-invalid-tool-headers`, …).
/// rmcp has already dropped tools whose `x-mcp-header` annotations are
/// invalid (SEP-2243), so "first listed" is never one of those.
fn tool_calls(scenario: &str, context: &Value, tools: &[ToolInfo]) -> Vec<(String, Value)> {
    if let Some(calls) = context.get("toolCalls").and_then(Value::as_array) {
        return calls
            .iter()
            .filter_map(|call| {
                let name = call.get("name")?.as_str()?.to_owned();
                Some((name, call.get("arguments").cloned().unwrap_or(Value::Null)))
            })
            .collect();
    }
    if scenario == "json-schema-2020-12-preservation" {
        // The suite's instruction: pass the focal tool's inputSchema,
        // verbatim, as `schema` to the echo tool.
        let focal = tools.iter().find(|t| t.name == "json_schema_2020_12_tool");
        if let Some(focal) = focal
            && tools.iter().any(|t| t.name == "json_schema_echo")
        {
            let schema = Value::Object(focal.input_schema.clone());
            return vec![(
                "json_schema_echo".to_owned(),
                serde_json::json!({ "schema": schema }),
            )];
        }
    }
    tools
        .first()
        .map(|tool| {
            let schema = Value::Object(tool.input_schema.clone());
            (tool.name.clone(), sample_arguments(&schema))
        })
        .into_iter()
        .collect()
}

/// The suite's client ID metadata document (its authorization server
/// accepts only this URL as a metadata-document client id).
const SUITE_CLIENT_METADATA_URL: &str = "https://conformance-test.local/client-metadata.json";

/// The authorization-code flow of `login`, unattended.
async fn signed_in(
    http: reqwest::Client,
    mcp_url: &url::Url,
    context: &Value,
    retry: RetryPolicy,
) -> Result<McpClient, CliError> {
    let found = discovery::discover(&http, mcp_url, &retry)
        .await
        .map_err(McpError::from)?;
    let configured = match context.get("client_id").and_then(Value::as_str) {
        Some(id) => Some(Credentials {
            client_id: id.to_owned(),
            auth: match context.get("client_secret").and_then(Value::as_str) {
                Some(secret) => ClientAuth::Secret {
                    secret: secret.to_owned().into(),
                    method: None,
                },
                None => ClientAuth::None,
            },
        }),
        None if found.server.cimd_supported => Some(Credentials {
            client_id: SUITE_CLIENT_METADATA_URL.to_owned(),
            auth: ClientAuth::None,
        }),
        None => None,
    };
    let redirect =
        url::Url::parse("http://127.0.0.1/callback").map_err(|e| CliError::Usage(e.to_string()))?;
    let agent = Unattended::new(http.clone(), redirect);
    let login = Arc::new(
        Login::prepare(
            http.clone(),
            found,
            configured,
            None,
            agent.redirect_uri(),
            retry.clone(),
        )
        .await?,
    );
    let step_up = Arc::new(AskAgain {
        login: login.clone(),
        open_browser: false,
        timeout: Duration::from_secs(30),
        unattended: true,
    });
    let tokens = login.tokens(None, None, Some(step_up));
    let scope = login.scope(None);
    login.authorize(&agent, &tokens, scope.as_deref()).await?;
    Ok(McpClient::connect_with(http, tokens, mcp_url, retry).await?)
}

fn credentials(context: &Value) -> Result<Option<Credentials>, ConfigError> {
    let Some(client_id) = context.get("client_id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let auth = if let Some(secret) = context.get("client_secret").and_then(Value::as_str) {
        ClientAuth::Secret {
            secret: secret.to_owned().into(),
            method: None,
        }
    } else if let Some(pem) = context.get("private_key_pem").and_then(Value::as_str) {
        let key = auth::keys::SigningKey::from_pem(pem).map_err(|e| {
            ConfigError::new("MCP_CONFORMANCE_CONTEXT", format!("private_key_pem: {e}"))
        })?;
        ClientAuth::PrivateKeyJwt { key: Arc::new(key) }
    } else {
        return Err(ConfigError::new(
            "MCP_CONFORMANCE_CONTEXT",
            "has a client_id but neither client_secret nor private_key_pem",
        ));
    };
    Ok(Some(Credentials {
        client_id: client_id.to_owned(),
        auth,
    }))
}

/// Minimal arguments that satisfy `schema`: every required property gets a
/// value of its declared type.
pub fn sample_arguments(schema: &Value) -> Value {
    let mut args = serde_json::Map::new();
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let value = match schema["properties"][name]["type"].as_str() {
            Some("number") | Some("integer") => Value::from(1),
            Some("boolean") => Value::Bool(false),
            Some("array") => Value::Array(Vec::new()),
            Some("object") => sample_arguments(&schema["properties"][name]),
            _ => Value::String("x".to_owned()),
        };
        args.insert(name.to_owned(), value);
    }
    Value::Object(args)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn sample_arguments_fill_required_properties() {
        let schema = json!({"type": "object", "required": ["a", "b", "s"],
            "properties": {"a": {"type": "number"}, "b": {"type": "integer"},
                           "s": {"type": "string"}, "x": {"type": "number"}}});
        assert_eq!(
            super::sample_arguments(&schema),
            json!({"a": 1, "b": 1, "s": "x"})
        );
    }
}
