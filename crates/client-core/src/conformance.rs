//! The client runner for the MCP conformance suite
//! (`conformance client --command "openai-client conformance"`).
//!
//! The suite appends the server URL and sets `MCP_CONFORMANCE_SCENARIO` and,
//! for authorization scenarios, `MCP_CONFORMANCE_CONTEXT` (JSON with
//! `client_id` and `client_secret`, or `private_key_pem` for
//! private_key_jwt). The runner does what the CLI does — discovery, token,
//! session, tools/list, and one tools/call when the server offers tools —
//! through the same code paths, then closes the session.
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
use crate::mcp::{McpClient, McpError};
use crate::retry::RetryPolicy;
use crate::tls::TrustStore;

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
                retry,
            };
            McpClient::connect_using(http, &config).await?
        }
        None => match McpClient::connect_anonymous(http.clone(), &mcp_url).await {
            // Some servers let `initialize` through and want a token for
            // everything else: the first refusal starts the sign-in.
            Ok(client) => match client.list_tools().await {
                Err(McpError::Unauthorized { .. }) => {
                    client.close(Duration::from_secs(2)).await;
                    signed_in(http, &mcp_url, &context, retry).await?
                }
                _ => client,
            },
            Err(McpError::Unauthorized { .. }) => {
                signed_in(http, &mcp_url, &context, retry).await?
            }
            Err(e) => return Err(e.into()),
        },
    };
    let tools = client.list_tools().await?;
    // Every scenario whose server offers a tool expects it called (the
    // step-up scenarios challenge exactly there).
    if let Some(tool) = tools.first() {
        let arguments = sample_arguments(&Value::Object(tool.input_schema.clone()));
        let outcome = client.call_tool(&tool.name, arguments).await?;
        tracing::info!(tool = %tool.name, is_error = outcome.is_error, "tool called");
    }
    client.close(Duration::from_secs(2)).await;
    Ok(())
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
