//! OpenAI Chat Completions for the secure-mcp client (DESIGN.md §7).
//!
//! Only the wire format lives here; TLS, tokens, the MCP session, retries
//! and the tool loop come from `client-core`. Any OpenAI-compatible server
//! works (`OPENAI_BASE_URL`, e.g. a local Ollama or vLLM at
//! `http://localhost:11434/v1`).
//!
//! A small typed client rather than `async-openai`: that crate brings its
//! own reqwest and retry loop, and we need the shared, CA-aware TLS client
//! and the shared bounded retries — the request is three fields.
//!
//! # Mapping
//! - system prompt → `{"role":"system"}`; user text → `{"role":"user"}`;
//! - an assistant turn → `content` (or null) plus `tool_calls` with the
//!   arguments as a JSON string;
//! - each tool result → `{"role":"tool","tool_call_id":…}`; Chat
//!   Completions has no error flag, so failed calls start with `Error: `;
//! - MCP tools → `{"type":"function","function":{name, description,
//!   parameters: inputSchema}}`.

use async_trait::async_trait;
use client_core::agent::{AssistantTurn, ChatModel, Conversation, Message, ToolCall};
use client_core::cli::ModelFactory;
use client_core::config::{self, ConfigError, Env, Vars};
use client_core::llm::{self, LlmError, LlmHttp, Provider};
use client_core::mcp::ToolInfo;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

/// Default `OPENAI_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default `OPENAI_MODEL`.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// For messages.
pub const PROVIDER: Provider = Provider {
    name: "OpenAI",
    key_var: "OPENAI_API_KEY",
    base_url_var: "OPENAI_BASE_URL",
};

/// Provider configuration.
///
/// | variable | default |
/// |---|---|
/// | `OPENAI_API_KEY` | required |
/// | `OPENAI_BASE_URL` | `https://api.openai.com/v1` (https, or http to localhost) |
/// | `OPENAI_MODEL` | `gpt-4o-mini` |
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub api_key: SecretString,
    pub base_url: Url,
    pub model: String,
}

impl OpenAiConfig {
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
            .get("OPENAI_MODEL")
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        Ok(Self {
            api_key,
            base_url,
            model,
        })
    }
}

/// A Chat Completions model.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    config: OpenAiConfig,
    http: LlmHttp,
    endpoint: Url,
}

impl OpenAiModel {
    pub fn new(config: OpenAiConfig, http: LlmHttp) -> Self {
        let endpoint = llm::join_url(&config.base_url, "chat/completions");
        Self {
            config,
            http,
            endpoint,
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiModel {
    fn describe(&self) -> String {
        format!("OpenAI {} at {}", self.config.model, self.config.base_url)
    }

    async fn respond(
        &self,
        conversation: &Conversation,
        tools: &[ToolInfo],
    ) -> Result<AssistantTurn, LlmError> {
        let body = request_body(&self.config.model, conversation, tools);
        let mut headers = http::HeaderMap::new();
        let mut auth =
            http::HeaderValue::from_str(&format!("Bearer {}", self.config.api_key.expose_secret()))
                .map_err(|_| LlmError::Auth {
                    provider: PROVIDER.name,
                    key_var: PROVIDER.key_var,
                    status: 0,
                    message: "the key contains characters not allowed in a header".into(),
                })?;
        auth.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, auth);
        let response = self
            .http
            .post_json(&PROVIDER, &self.endpoint, headers, &body)
            .await?;
        parse_response(&response)
    }
}

/// Builds [`OpenAiModel`]s for the CLI.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ModelFactory for Factory {
    fn build(&self, http: LlmHttp) -> Result<Box<dyn ChatModel>, ConfigError> {
        Ok(Box::new(OpenAiModel::new(
            OpenAiConfig::from_vars(&Env)?,
            http,
        )))
    }
}

/// The Chat Completions request for `conversation`.
pub fn request_body(model: &str, conversation: &Conversation, tools: &[ToolInfo]) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &conversation.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &conversation.messages {
        match message {
            Message::User(text) => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant(turn) => {
                let mut m = json!({"role": "assistant", "content": turn.text});
                if turn.tool_calls.is_empty() {
                    m["content"] = json!(turn.text.clone().unwrap_or_default());
                } else {
                    m["tool_calls"] = turn
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function", "function": {
                                "name": c.name,
                                "arguments": arguments_string(&c.arguments),
                            }})
                        })
                        .collect();
                }
                messages.push(m);
            }
            Message::ToolResults(results) => {
                for r in results {
                    let content = if r.is_error {
                        format!("Error: {}", r.content)
                    } else {
                        r.content.clone()
                    };
                    messages.push(
                        json!({"role": "tool", "tool_call_id": r.call_id, "content": content}),
                    );
                }
            }
        }
    }
    let mut body = json!({"model": model, "messages": messages});
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": llm::tool_schema(&t.input_schema),
                }})
            })
            .collect();
        body["tool_choice"] = json!("auto");
    }
    body
}

/// The arguments as the JSON string Chat Completions carries (the model's
/// own text when it was not valid JSON, so the history stays faithful).
fn arguments_string(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// The assistant turn in a Chat Completions response.
pub fn parse_response(response: &Value) -> Result<AssistantTurn, LlmError> {
    let bad = |detail: &str| LlmError::BadResponse {
        provider: PROVIDER.name,
        detail: detail.to_owned(),
    };
    let message = response
        .pointer("/choices/0/message")
        .ok_or_else(|| bad("no choices[0].message"))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let mut tool_calls = Vec::new();
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            let id = call["id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("a tool call has no id"))?;
            let name = call["function"]["name"]
                .as_str()
                .ok_or_else(|| bad("a tool call has no function name"))?;
            let raw = call["function"]["arguments"].as_str().unwrap_or("{}");
            // Unparseable arguments stay a string: the loop answers with an
            // error result so the model can correct itself.
            let arguments =
                serde_json::from_str::<Value>(if raw.trim().is_empty() { "{}" } else { raw })
                    .unwrap_or_else(|_| Value::String(raw.to_owned()));
            tool_calls.push(ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments,
            });
        }
    }
    if text.is_none() && tool_calls.is_empty() {
        let reason = response
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return Err(bad(&format!(
            "neither text nor tool calls (finish_reason {reason})"
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
            name: "get_customer_info".into(),
            title: None,
            description: "Look up a customer".into(),
            input_schema: json!({"$schema": "x", "type": "object",
                "properties": {"customer_id": {"type": "string"}}, "required": ["customer_id"]})
            .as_object()
            .cloned()
            .unwrap(),
            scopes: vec!["customer:read".into()],
            read_only: Some(true),
        }
    }

    #[test]
    fn a_full_round_trip_is_valid_chat_completions() {
        let mut conv = Conversation::new();
        conv.messages.push(Message::User("hi".into()));
        conv.messages.push(Message::Assistant(AssistantTurn {
            text: None,
            tool_calls: vec![
                ToolCall {
                    id: "call_1".into(),
                    name: "get_customer_info".into(),
                    arguments: json!({"customer_id": "12345"}),
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "get_customer_info".into(),
                    arguments: json!("{not json"),
                },
            ],
        }));
        conv.messages.push(Message::ToolResults(vec![
            ToolResult {
                call_id: "call_1".into(),
                name: "get_customer_info".into(),
                content: "{}".into(),
                is_error: false,
            },
            ToolResult {
                call_id: "call_2".into(),
                name: "get_customer_info".into(),
                content: "bad arguments".into(),
                is_error: true,
            },
        ]));
        conv.messages.push(Message::Assistant(AssistantTurn {
            text: Some("done".into()),
            tool_calls: vec![],
        }));
        conv.messages.push(Message::User("more".into()));
        let body = request_body("gpt-test", &conv, &[tool()]);
        // call_2's arguments were not JSON: the fake flags that, as the API would.
        let problems = testkit::llm::validate_openai(&body);
        assert_eq!(
            problems,
            vec!["messages[2].tool_calls[1].function.arguments must encode a JSON object"]
        );
        assert_eq!(body["messages"][4]["content"], "Error: bad arguments");
        assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
        assert!(
            body["tools"][0]["function"]["parameters"]
                .get("$schema")
                .is_none()
        );
    }

    #[test]
    fn parses_text_and_tool_calls() {
        let turn = parse_response(&json!({"choices": [{"message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "t", "arguments": "{\"a\":1}"}}]}}]}))
        .unwrap();
        assert_eq!(turn.text, None);
        assert_eq!(turn.tool_calls[0].arguments, json!({"a": 1}));
        let turn =
            parse_response(&json!({"choices": [{"message": {"content": "hello"}}]})).unwrap();
        assert_eq!(turn.text.as_deref(), Some("hello"));
        let err = parse_response(&json!({"choices": []})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "OpenAI sent a response this client cannot read: no choices[0].message"
        );
    }

    #[test]
    fn config_errors_name_the_variable() {
        let vars = |_: &str| None::<String>;
        assert_eq!(
            OpenAiConfig::from_vars(&vars).unwrap_err().to_string(),
            "OPENAI_API_KEY is not set — put it in .env or export it"
        );
        let vars = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk".to_owned()),
            "OPENAI_BASE_URL" => Some("http://llm.example.com/v1".to_owned()),
            _ => None,
        };
        assert_eq!(
            OpenAiConfig::from_vars(&vars).unwrap_err().to_string(),
            "OPENAI_BASE_URL must use https (plain http is allowed only for localhost): http://llm.example.com/v1"
        );
    }
}
