//! The HTTP layer the LLM providers share: JSON POSTs over the verified TLS
//! client, bounded retries (429 with `Retry-After`, 5xx with backoff, never
//! other 4xx), and error bodies turned into one-line messages.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::retry::{self, RetryPolicy};
use crate::tls;

/// Who we are talking to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// e.g. `OpenAI`.
    pub name: &'static str,
    /// The variable holding the API key, e.g. `OPENAI_API_KEY`.
    pub key_var: &'static str,
    /// The variable holding the base URL, e.g. `OPENAI_BASE_URL`.
    pub base_url_var: &'static str,
}

/// Why the model could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} rejected the API key (HTTP {status}: {message}) — check {key_var}")]
    Auth {
        provider: &'static str,
        key_var: &'static str,
        status: u16,
        message: String,
    },
    #[error("{provider} API refused the request (HTTP {status}{}): {message}", kind.as_deref().map(|k| format!(", {k}")).unwrap_or_default())]
    Api {
        provider: &'static str,
        status: u16,
        kind: Option<String>,
        message: String,
    },
    #[error("{provider} API still answered HTTP {status} {summary}: {message}")]
    GaveUp {
        provider: &'static str,
        status: u16,
        summary: String,
        message: String,
    },
    #[error("cannot reach {provider} at {url} ({summary}): {detail} — check {base_url_var}")]
    Unreachable {
        provider: &'static str,
        url: String,
        base_url_var: &'static str,
        summary: String,
        detail: String,
    },
    #[error("{provider} sent a response this client cannot read: {detail}")]
    BadResponse {
        provider: &'static str,
        detail: String,
    },
}

/// JSON over HTTP with retries, shared by the provider clients.
#[derive(Debug, Clone)]
pub struct LlmHttp {
    http: reqwest::Client,
    retry: RetryPolicy,
    timeout: Duration,
}

impl LlmHttp {
    /// `http` must be the client from [`crate::tls::TrustStore::http_client`].
    pub fn new(http: reqwest::Client, retry: RetryPolicy) -> Self {
        Self {
            http,
            retry,
            timeout: Duration::from_secs(180),
        }
    }

    /// A per-request timeout (default 180 s; models can be slow).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// POSTs `body` to `url` with `headers`; the parsed JSON of a 2xx answer.
    pub async fn post_json(
        &self,
        provider: &Provider,
        url: &Url,
        headers: HeaderMap,
        body: &Value,
    ) -> Result<Value, LlmError> {
        let mut attempts = self.retry.start();
        loop {
            let sent = self
                .http
                .post(url.clone())
                .headers(headers.clone())
                .json(body)
                .timeout(self.timeout)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    // Connection refused/reset or timed out: transient. TLS: not.
                    let transient =
                        tls::explain(&e).is_none() && (e.is_connect() || e.is_timeout());
                    if transient && let Ok(delay) = attempts.next_delay(None) {
                        tracing::warn!(
                            "cannot reach {} ({}); retrying in {:.1} s (attempt {} of {})",
                            provider.name,
                            tls::describe(&e),
                            delay.as_secs_f64(),
                            attempts.attempts(),
                            self.retry.max_attempts
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(LlmError::Unreachable {
                        provider: provider.name,
                        url: url.to_string(),
                        base_url_var: provider.base_url_var,
                        summary: attempts.summary(),
                        detail: tls::describe(&e),
                    });
                }
            };
            let status = response.status();
            if status.is_success() {
                let bytes = crate::read::read_capped(response, crate::read::LLM_MAX)
                    .await
                    .map_err(|e| LlmError::BadResponse {
                        provider: provider.name,
                        detail: e.to_string(),
                    })?;
                return serde_json::from_slice(&bytes).map_err(|e| LlmError::BadResponse {
                    provider: provider.name,
                    detail: format!("not JSON ({e})"),
                });
            }
            if retry::is_retryable_status(status) {
                let wanted = retry::retry_after(response.headers());
                match attempts.next_delay(wanted) {
                    Ok(delay) => {
                        tracing::warn!(
                            "{} API answered HTTP {}; retrying in {:.1} s (attempt {} of {})",
                            provider.name,
                            status.as_u16(),
                            delay.as_secs_f64(),
                            attempts.attempts(),
                            self.retry.max_attempts
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    Err(_) => {
                        let (_, message) = error_details(response).await;
                        return Err(LlmError::GaveUp {
                            provider: provider.name,
                            status: status.as_u16(),
                            summary: attempts.summary(),
                            message,
                        });
                    }
                }
            }
            let (kind, message) = error_details(response).await;
            return Err(
                if status == reqwest::StatusCode::UNAUTHORIZED
                    || status == reqwest::StatusCode::FORBIDDEN
                {
                    LlmError::Auth {
                        provider: provider.name,
                        key_var: provider.key_var,
                        status: status.as_u16(),
                        message,
                    }
                } else {
                    LlmError::Api {
                        provider: provider.name,
                        status: status.as_u16(),
                        kind,
                        message,
                    }
                },
            );
        }
    }
}

/// `(error.type, error.message)` from an OpenAI- or Anthropic-style error body.
async fn error_details(response: reqwest::Response) -> (Option<String>, String) {
    // An error body larger than this is not worth showing: the status says enough.
    let text = crate::read::read_capped(response, crate::read::ERROR_BODY_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        let err = v.get("error").unwrap_or(&v);
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .map(str::to_owned);
        let kind = err
            .get("type")
            .or_else(|| err.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(message) = message {
            return (kind, message);
        }
    }
    let mut snippet: String = text.chars().take(200).collect();
    if snippet.trim().is_empty() {
        snippet = "(empty body)".to_owned();
    }
    (None, snippet.replace('\n', " "))
}

/// An MCP tool's `inputSchema` as both providers want it: an object schema
/// with `properties`, without the `$schema`/`$id` keywords some validators
/// reject; everything else (descriptions, patterns, bounds) is kept so the
/// model sees the same constraints the server enforces.
pub fn tool_schema(input_schema: &serde_json::Map<String, Value>) -> Value {
    let mut schema = input_schema.clone();
    schema.remove("$schema");
    schema.remove("$id");
    schema.insert("type".to_owned(), Value::String("object".to_owned()));
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema.insert("properties".to_owned(), Value::Object(Default::default()));
    }
    Value::Object(schema)
}

/// `base` with `path` appended (keeping the base's own path, e.g. `/v1`).
pub fn join_url(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_become_plain_object_schemas() {
        let input = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Params", "type": "object",
            "properties": {"customer_id": {"type": "string", "pattern": "^[A-Z0-9]{5,10}$"}},
            "required": ["customer_id"],
        });
        let out = tool_schema(input.as_object().unwrap());
        assert_eq!(
            out,
            serde_json::json!({
                "title": "Params", "type": "object",
                "properties": {"customer_id": {"type": "string", "pattern": "^[A-Z0-9]{5,10}$"}},
                "required": ["customer_id"],
            })
        );
        let empty = tool_schema(&serde_json::Map::new());
        assert_eq!(
            empty,
            serde_json::json!({"type": "object", "properties": {}})
        );
    }

    #[test]
    fn joins_paths() {
        let b = Url::parse("https://api.openai.com/v1").unwrap();
        assert_eq!(
            join_url(&b, "chat/completions").as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        let b = Url::parse("http://127.0.0.1:1234/v1/").unwrap();
        assert_eq!(
            join_url(&b, "/chat/completions").as_str(),
            "http://127.0.0.1:1234/v1/chat/completions"
        );
        let b = Url::parse("https://api.anthropic.com").unwrap();
        assert_eq!(
            join_url(&b, "/v1/messages").as_str(),
            "https://api.anthropic.com/v1/messages"
        );
    }
}
