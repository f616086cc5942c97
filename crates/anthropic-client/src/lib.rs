//! Anthropic Messages API for the secure-mcp client (DESIGN.md §7).
//!
//! Only the wire format lives here; TLS, tokens, the MCP session, retries
//! and the tool loop come from `client-core`.
//!
//! # Mapping
//! - system prompt → top-level `system`;
//! - user text → a `user` turn with a text block;
//! - an assistant turn → a text block (if any) and one `tool_use` block per
//!   call (`input` = the arguments object);
//! - tool results → a `user` turn of `tool_result` blocks (`is_error` set
//!   for failed calls), placed first; a following user question joins the
//!   same turn so roles keep alternating;
//! - MCP tools → `{name, description, input_schema}`.
//!
//! Requests carry `x-api-key` and `anthropic-version: 2023-06-01`.

use async_trait::async_trait;
use client_core::agent::{AssistantTurn, ChatModel, Conversation, Message, ToolCall};
use client_core::cli::ModelFactory;
use client_core::config::{self, ConfigError, Env, Vars};
use client_core::llm::{self, LlmError, LlmHttp, Provider};
use client_core::mcp::ToolInfo;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

/// Default `ANTHROPIC_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Default `ANTHROPIC_MODEL`.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Default `ANTHROPIC_MAX_TOKENS`.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// For messages.
pub const PROVIDER: Provider = Provider {
    name: "Anthropic",
    key_var: "ANTHROPIC_API_KEY",
    base_url_var: "ANTHROPIC_BASE_URL",
};

/// Provider configuration.
///
/// | variable | default |
/// |---|---|
/// | `ANTHROPIC_API_KEY` | required |
/// | `ANTHROPIC_BASE_URL` | `https://api.anthropic.com` (https, or http to localhost) |
/// | `ANTHROPIC_MODEL` | `claude-sonnet-4-5` |
/// | `ANTHROPIC_MAX_TOKENS` | `1024` |
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    pub api_key: SecretString,
    pub base_url: Url,
    pub model: String,
    pub max_tokens: u32,
}

impl AnthropicConfig {
    /// Reads and checks the variables.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let api_key = config::required_secret(vars, PROVIDER.key_var)?;
        let base_url = config::parse_url(
            PROVIDER.base_url_var,
            &vars
                .get(PROVIDER.base_url_var)
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        )?;
        let model = vars
            .get("ANTHROPIC_MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        let max_tokens = match vars.get("ANTHROPIC_MAX_TOKENS") {
            None => DEFAULT_MAX_TOKENS,
            Some(v) => v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ConfigError::new(
                    "ANTHROPIC_MAX_TOKENS",
                    format!("must be a positive integer, not {v:?}"),
                )
            })?,
        };
        Ok(Self {
            api_key,
            base_url,
            model,
            max_tokens,
        })
    }
}

/// A Messages API model.
#[derive(Debug, Clone)]
pub struct AnthropicModel {
    config: AnthropicConfig,
    http: LlmHttp,
    endpoint: Url,
}

impl AnthropicModel {
    pub fn new(config: AnthropicConfig, http: LlmHttp) -> Self {
        let endpoint = llm::join_url(&config.base_url, "v1/messages");
        Self {
            config,
            http,
            endpoint,
        }
    }
}

#[async_trait]
impl ChatModel for AnthropicModel {
    fn describe(&self) -> String {
        format!(
            "Anthropic {} at {}",
            self.config.model, self.config.base_url
        )
    }

    async fn respond(
        &self,
        conversation: &Conversation,
        tools: &[ToolInfo],
    ) -> Result<AssistantTurn, LlmError> {
        let body = request_body(
            &self.config.model,
            self.config.max_tokens,
            conversation,
            tools,
        );
        let mut headers = http::HeaderMap::new();
        let mut key =
            http::HeaderValue::from_str(self.config.api_key.expose_secret()).map_err(|_| {
                LlmError::Auth {
                    provider: PROVIDER.name,
                    key_var: PROVIDER.key_var,
                    status: 0,
                    message: "the key contains characters not allowed in a header".into(),
                }
            })?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        headers.insert(
            "anthropic-version",
            http::HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let response = self
            .http
            .post_json(&PROVIDER, &self.endpoint, headers, &body)
            .await?;
        parse_response(&response)
    }
}

/// Builds [`AnthropicModel`]s for the CLI.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ModelFactory for Factory {
    fn build(&self, http: LlmHttp) -> Result<Box<dyn ChatModel>, ConfigError> {
        Ok(Box::new(AnthropicModel::new(
            AnthropicConfig::from_vars(&Env)?,
            http,
        )))
    }
}

/// The Messages request for `conversation`.
pub fn request_body(
    model: &str,
    max_tokens: u32,
    conversation: &Conversation,
    tools: &[ToolInfo],
) -> Value {
    // (role, blocks); consecutive user material is merged into one turn.
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>| match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    };
    for message in &conversation.messages {
        match message {
            Message::User(text) => push("user", vec![text_block(text)]),
            Message::Assistant(turn) => {
                let mut blocks = Vec::new();
                if let Some(text) = turn.text.as_deref().filter(|t| !t.trim().is_empty()) {
                    blocks.push(text_block(text));
                }
                for call in &turn.tool_calls {
                    let input = if call.arguments.is_object() {
                        call.arguments.clone()
                    } else {
                        json!({})
                    };
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                if blocks.is_empty() {
                    blocks.push(text_block("(no answer)"));
                }
                push("assistant", blocks);
            }
            Message::ToolResults(results) => push(
                "user",
                results
                    .iter()
                    .map(|r| {
                        let content = if r.content.is_empty() {
                            "(empty result)"
                        } else {
                            r.content.as_str()
                        };
                        json!({"type": "tool_result", "tool_use_id": r.call_id,
                               "content": content, "is_error": r.is_error})
                    })
                    .collect(),
            ),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
    if let Some(system) = &conversation.system {
        body["system"] = json!(system);
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": llm::tool_schema(&t.input_schema),
                })
            })
            .collect();
        body["tool_choice"] = json!({"type": "auto"});
    }
    body
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// The assistant turn in a Messages response.
pub fn parse_response(response: &Value) -> Result<AssistantTurn, LlmError> {
    let bad = |detail: String| LlmError::BadResponse {
        provider: PROVIDER.name,
        detail,
    };
    let blocks = response
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no content array".into()))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => {
                if let Some(t) = block["text"].as_str() {
                    texts.push(t.to_owned());
                }
            }
            Some("tool_use") => {
                let id = block["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("a tool_use block has no id".into()))?;
                let name = block["name"]
                    .as_str()
                    .ok_or_else(|| bad("a tool_use block has no name".into()))?;
                tool_calls.push(ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
                });
            }
            // thinking, server tool blocks, …: nothing to act on here.
            _ => {}
        }
    }
    let text = Some(texts.join("")).filter(|t| !t.trim().is_empty());
    if text.is_none() && tool_calls.is_empty() {
        let reason = response["stop_reason"].as_str().unwrap_or("unknown");
        return Err(bad(format!(
            "neither text nor tool_use blocks (stop_reason {reason})"
        )));
    }
    Ok(AssistantTurn { text, tool_calls })
}

#[cfg(test)]
mod tests {
    use client_core::agent::ToolResult;

    use super::*;

    fn tool() -> ToolInfo {
        ToolInfo {
            name: "create_support_ticket".into(),
            title: None,
            description: "Create a ticket".into(),
            input_schema:
                json!({"type": "object", "properties": {"customer_id": {"type": "string"}}})
                    .as_object()
                    .cloned()
                    .unwrap(),
            scopes: vec!["ticket:create".into()],
            read_only: Some(false),
        }
    }

    #[test]
    fn a_full_round_trip_is_valid_messages_api() {
        let mut conv = Conversation::new();
        conv.messages.push(Message::User("hi".into()));
        conv.messages.push(Message::Assistant(AssistantTurn {
            text: Some("Let me check.".into()),
            tool_calls: vec![
                ToolCall {
                    id: "toolu_1".into(),
                    name: "create_support_ticket".into(),
                    arguments: json!({"customer_id": "67890"}),
                },
                ToolCall {
                    id: "toolu_2".into(),
                    name: "create_support_ticket".into(),
                    arguments: json!({}),
                },
            ],
        }));
        conv.messages.push(Message::ToolResults(vec![
            ToolResult {
                call_id: "toolu_1".into(),
                name: "create_support_ticket".into(),
                content: "{\"ticket_id\":\"T-1\"}".into(),
                is_error: false,
            },
            ToolResult {
                call_id: "toolu_2".into(),
                name: "create_support_ticket".into(),
                content: "invalid input: missing field `customer_id`".into(),
                is_error: true,
            },
        ]));
        // A turn limit ended the previous question: the next question joins
        // the tool results' user turn.
        conv.messages.push(Message::User("next question".into()));
        let body = request_body("claude-test", 512, &conv, &[tool()]);
        assert_eq!(
            testkit::llm::validate_anthropic(&body),
            Vec::<String>::new()
        );
        assert_eq!(body["messages"].as_array().unwrap().len(), 3);
        assert_eq!(body["messages"][2]["content"][1]["is_error"], true);
        assert_eq!(body["messages"][2]["content"][2]["text"], "next question");
        assert_eq!(body["system"], client_core::agent::SYSTEM_PROMPT);
        assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    }

    #[test]
    fn parses_text_and_tool_use() {
        let turn = parse_response(&json!({"content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "t", "input": {"a": 1}}],
            "stop_reason": "tool_use"}))
        .unwrap();
        assert_eq!(turn.text.as_deref(), Some("Checking."));
        assert_eq!(turn.tool_calls[0].id, "toolu_9");
        assert_eq!(turn.tool_calls[0].arguments, json!({"a": 1}));
        let err = parse_response(&json!({"content": [], "stop_reason": "max_tokens"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Anthropic sent a response this client cannot read: neither text nor tool_use blocks (stop_reason max_tokens)"
        );
    }

    #[test]
    fn config_errors_name_the_variable() {
        let vars = |_: &str| None::<String>;
        assert_eq!(
            AnthropicConfig::from_vars(&vars).unwrap_err().to_string(),
            "ANTHROPIC_API_KEY is not set — put it in .env or export it"
        );
        let vars = |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some("k".to_owned()),
            "ANTHROPIC_MAX_TOKENS" => Some("0".to_owned()),
            _ => None,
        };
        assert_eq!(
            AnthropicConfig::from_vars(&vars).unwrap_err().to_string(),
            "ANTHROPIC_MAX_TOKENS must be a positive integer, not \"0\""
        );
    }
}
