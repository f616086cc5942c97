//! Fake LLM APIs: OpenAI Chat Completions and Anthropic Messages.
//!
//! Each fake is a real HTTP server on a free loopback port that
//! - **checks every request against the provider's wire format** — the
//!   authentication header (`Authorization: Bearer` / `x-api-key` plus
//!   `anthropic-version`), the required fields and their types, unknown
//!   top-level fields, the tool definitions (name syntax, object schemas,
//!   unique names), and the tool-calling protocol: every tool result must
//!   answer a tool call of the assistant turn just before it, every tool call
//!   must be answered before the conversation moves on, Anthropic's
//!   `tool_result` blocks must come first in their user turn and roles must
//!   alternate. A request that breaks a rule is answered with HTTP 400 in the
//!   provider's error shape (as the real API would) and the rule is recorded
//!   in [`FakeLlm::violations`];
//! - **answers from a script** of [`Reply`]s, one per request: tool calls
//!   (several = parallel calls, ids generated), text (where `{results}` is
//!   replaced by the tool results the request carried), or an HTTP error such
//!   as 429 with `Retry-After` or 500;
//! - **records** every request ([`FakeLlm::requests`]) with its arrival
//!   time, so tests can assert what the model was sent and when.
//!
//! ```no_run
//! # async fn demo() {
//! use serde_json::json;
//! use testkit::llm::{FakeLlm, Reply};
//! let fake = FakeLlm::openai("sk-test", vec![
//!     Reply::tool("get_customer_info", json!({"customer_id": "12345"})),
//!     Reply::text("Here it is: {results}"),
//! ]).await;
//! // point OPENAI_BASE_URL at fake.base_url(), run the client, then:
//! fake.assert_valid();
//! # }
//! ```

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

/// The Anthropic API version the fake accepts.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The model calls these tools (`(name, arguments)`), all in one turn,
    /// optionally with some text.
    ToolCalls {
        text: Option<String>,
        calls: Vec<(String, Value)>,
    },
    /// A final text answer; `{results}` becomes the tool results the
    /// request carried (joined by newlines).
    Text(String),
    /// An HTTP error in the provider's error shape.
    Error {
        status: u16,
        retry_after: Option<String>,
        message: String,
    },
    /// `then`, answered after `delay` (a slow model).
    Slow { delay: Duration, then: Box<Reply> },
}

impl Reply {
    /// One tool call.
    pub fn tool(name: &str, arguments: Value) -> Self {
        Self::ToolCalls {
            text: None,
            calls: vec![(name.to_owned(), arguments)],
        }
    }

    /// Several tool calls in one turn (parallel).
    pub fn tools(calls: &[(&str, Value)]) -> Self {
        Self::ToolCalls {
            text: None,
            calls: calls
                .iter()
                .map(|(n, a)| ((*n).to_owned(), a.clone()))
                .collect(),
        }
    }

    /// A text answer.
    pub fn text(text: &str) -> Self {
        Self::Text(text.to_owned())
    }

    /// This reply, after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Self::Slow {
            delay,
            then: Box::new(self),
        }
    }

    /// An HTTP error with an optional `Retry-After`.
    pub fn error(status: u16, retry_after: Option<&str>) -> Self {
        Self::Error {
            status,
            retry_after: retry_after.map(str::to_owned),
            message: format!("scripted error {status}"),
        }
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub headers: HeaderMap,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The status the fake answered with.
    pub status: u16,
}

impl Recorded {
    /// The tool results this request carried, as `(call id, content, is_error)`.
    pub fn tool_results(&self, api: Api) -> Vec<(String, String, bool)> {
        let messages = self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match api {
            Api::OpenAi => messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    let content = text_of(&m["content"]);
                    (
                        m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                        content.clone(),
                        // Chat Completions has no error flag; the content says it.
                        content.starts_with("Error:") || content.starts_with("error:"),
                    )
                })
                .collect(),
            Api::Anthropic => messages
                .iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| {
                    (
                        b["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                        text_of(&b["content"]),
                        b["is_error"].as_bool().unwrap_or(false),
                    )
                })
                .collect(),
        }
    }
}

struct Shared {
    api: Api,
    api_key: String,
    script: VecDeque<Reply>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    next_id: u64,
}

type SharedState = Arc<Mutex<Shared>>;

/// A running fake API; stops when dropped.
pub struct FakeLlm {
    api: Api,
    addr: SocketAddr,
    shared: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("api", &self.api)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl FakeLlm {
    /// A fake OpenAI Chat Completions API expecting `api_key`.
    pub async fn openai(api_key: &str, script: Vec<Reply>) -> Self {
        Self::start(Api::OpenAi, api_key, script).await
    }

    /// A fake Anthropic Messages API expecting `api_key`.
    pub async fn anthropic(api_key: &str, script: Vec<Reply>) -> Self {
        Self::start(Api::Anthropic, api_key, script).await
    }

    /// Starts a fake of `api` on a free loopback port.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(api: Api, api_key: &str, script: Vec<Reply>) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            api,
            api_key: api_key.to_owned(),
            script: script.into(),
            requests: Vec::new(),
            violations: Vec::new(),
            next_id: 1,
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(handle_openai))
            .route("/v1/messages", post(handle_anthropic))
            .fallback(|| async { (StatusCode::NOT_FOUND, "fake LLM: no such endpoint") })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("testkit: fake LLM cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("testkit: fake LLM has no address: {e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            api,
            addr,
            shared,
            stop: Some(tx),
        }
    }

    /// Which API this fake speaks.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The value for `OPENAI_BASE_URL` (`http://127.0.0.1:PORT/v1`) or
    /// `ANTHROPIC_BASE_URL` (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        match self.api {
            Api::OpenAi => format!("http://{}/v1", self.addr),
            Api::Anthropic => format!("http://{}", self.addr),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends replies to the script.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Scripted replies not used yet.
    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Every wire-format rule a request broke.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panics with the list of violations, if any.
    pub fn assert_valid(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "fake {:?} API saw invalid requests:\n{}",
            self.api,
            v.join("\n")
        );
    }
}

// ---------------------------------------------------------------- handlers

async fn handle_openai(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, delay) = handle(Api::OpenAi, shared, headers, body);
    tokio::time::sleep(delay).await;
    response
}

async fn handle_anthropic(
    State(shared): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, delay) = handle(Api::Anthropic, shared, headers, body);
    tokio::time::sleep(delay).await;
    response
}

/// The response and how long to hold it back.
fn handle(api: Api, shared: SharedState, headers: HeaderMap, body: Bytes) -> (Response, Duration) {
    let mut delay = Duration::ZERO;
    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let json_body = parsed.as_ref().ok().cloned().unwrap_or(Value::Null);
    let (status, response) = if api != s.api {
        (404, error_body(api, 404, "this fake serves the other API"))
    } else if let Some(resp) = check_auth(api, &s.api_key, &headers) {
        resp
    } else {
        let mut problems = check_headers(api, &headers);
        match &parsed {
            Ok(v) => problems.extend(match api {
                Api::OpenAi => validate_openai(v),
                Api::Anthropic => validate_anthropic(v),
            }),
            Err(e) => problems.push(format!("body is not JSON: {e}")),
        }
        if problems.is_empty() {
            let (status, response, wait) = answer(api, &mut s, &json_body);
            delay = wait;
            (status, response)
        } else {
            s.violations.extend(problems.iter().cloned());
            (400, error_body(api, 400, &problems.join("; ")))
        }
    };
    s.requests.push(Recorded {
        at: Instant::now(),
        headers: headers.clone(),
        body: json_body,
        status,
    });
    drop(s);
    (response, delay)
}

fn check_auth(api: Api, key: &str, headers: &HeaderMap) -> Option<(u16, Response)> {
    let ok = match api {
        Api::OpenAi => header(headers, "authorization") == Some(format!("Bearer {key}").as_str()),
        Api::Anthropic => header(headers, "x-api-key") == Some(key),
    };
    (!ok).then(|| (401, error_body(api, 401, "invalid API key")))
}

fn check_headers(api: Api, headers: &HeaderMap) -> Vec<String> {
    let mut v = Vec::new();
    if !header(headers, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        v.push("content-type must be application/json".to_owned());
    }
    if api == Api::Anthropic {
        match header(headers, "anthropic-version") {
            Some(ANTHROPIC_VERSION) => {}
            Some(other) => v.push(format!(
                "anthropic-version {other:?} is not {ANTHROPIC_VERSION}"
            )),
            None => v.push("anthropic-version header is required".to_owned()),
        }
        if headers.contains_key("authorization") {
            v.push("the Anthropic API key goes in x-api-key, not Authorization".to_owned());
        }
    }
    v
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn error_body(api: Api, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::OpenAi => json!({"error": {
            "message": message,
            "type": match status { 401 => "invalid_request_error", 429 => "rate_limit_exceeded", 400 => "invalid_request_error", _ => "server_error" },
            "param": null,
            "code": if status == 401 { json!("invalid_api_key") } else { Value::Null },
        }}),
        Api::Anthropic => json!({"type": "error", "error": {
            "type": match status { 401 => "authentication_error", 429 => "rate_limit_error", 400 => "invalid_request_error", 529 => "overloaded_error", _ => "api_error" },
            "message": message,
        }}),
    };
    (code, axum::Json(body)).into_response()
}

fn answer(api: Api, s: &mut Shared, request: &Value) -> (u16, Response, Duration) {
    let Some(mut reply) = s.script.pop_front() else {
        s.violations
            .push("the client sent more requests than the script has replies".to_owned());
        return (
            500,
            error_body(api, 500, "fake LLM script exhausted"),
            Duration::ZERO,
        );
    };
    let mut delay = Duration::ZERO;
    while let Reply::Slow { delay: d, then } = reply {
        delay += d;
        reply = *then;
    }
    let (status, response) = reply_to(api, s, request, reply);
    (status, response, delay)
}

fn reply_to(api: Api, s: &mut Shared, request: &Value, reply: Reply) -> (u16, Response) {
    match reply {
        Reply::Error {
            status,
            retry_after,
            message,
        } => {
            let mut resp = error_body(api, status, &message);
            if let Some(ra) = retry_after
                && let Ok(v) = ra.parse()
            {
                resp.headers_mut().insert("retry-after", v);
            }
            (status, resp)
        }
        Reply::Text(template) => {
            let results = tool_results_of_last_turn(api, request).join("\n");
            let text = template.replace("{results}", &results);
            (200, success(api, s, request, Some(text), Vec::new()))
        }
        Reply::ToolCalls { text, calls } => {
            let offered = offered_tools(api, request);
            if let Some((name, _)) = calls.iter().find(|(n, _)| !offered.contains(n)) {
                let msg = format!(
                    "script asks for tool {name:?}, which the request did not offer (offered: {offered:?})"
                );
                s.violations.push(msg.clone());
                return (500, error_body(api, 500, &msg));
            }
            (200, success(api, s, request, text, calls))
        }
        // Unwrapped by `answer`; kept total for nesting.
        Reply::Slow { then, .. } => reply_to(api, s, request, *then),
    }
}

fn success(
    api: Api,
    s: &mut Shared,
    request: &Value,
    text: Option<String>,
    calls: Vec<(String, Value)>,
) -> Response {
    let model = request["model"].clone();
    let mut ids = Vec::new();
    for _ in &calls {
        ids.push(s.next_id);
        s.next_id += 1;
    }
    let body = match api {
        Api::OpenAi => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .zip(&ids)
                .map(|((name, args), id)| {
                    json!({"id": format!("call_{id:04}"), "type": "function",
                           "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
            let mut message = json!({"role": "assistant", "content": text, "refusal": null});
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            json!({
                "id": format!("chatcmpl-fake{}", s.requests.len() + 1),
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": null,
                             "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            })
        }
        Api::Anthropic => {
            let mut content = Vec::new();
            if let Some(t) = text {
                content.push(json!({"type": "text", "text": t}));
            }
            for ((name, args), id) in calls.iter().zip(&ids) {
                content.push(json!({"type": "tool_use", "id": format!("toolu_{id:04}"), "name": name, "input": args}));
            }
            json!({
                "id": format!("msg_fake{}", s.requests.len() + 1),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
                "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            })
        }
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn offered_tools(api: Api, request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| match api {
                    Api::OpenAi => t["function"]["name"].as_str(),
                    Api::Anthropic => t["name"].as_str(),
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Tool results at the end of the conversation (the last turn's).
fn tool_results_of_last_turn(api: Api, request: &Value) -> Vec<String> {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    match api {
        Api::OpenAi => {
            let mut out: Vec<String> = messages
                .iter()
                .rev()
                .take_while(|m| m["role"] == "tool")
                .map(|m| text_of(&m["content"]))
                .collect();
            out.reverse();
            out
        }
        Api::Anthropic => messages
            .last()
            .and_then(|m| m["content"].as_array())
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| text_of(&b["content"]))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A content value as text: a string, or the text parts of a block list.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------- validation

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], what: &str, v: &mut Vec<String>) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            v.push(format!("{what}: unrecognized field {k:?}"));
        }
    }
}

fn check_schema(schema: &Value, what: &str, v: &mut Vec<String>) {
    match schema.as_object() {
        None => v.push(format!("{what}: schema must be a JSON object")),
        Some(o) => {
            if o.get("type").and_then(Value::as_str) != Some("object") {
                v.push(format!("{what}: schema type must be \"object\""));
            }
            if let Some(p) = o.get("properties")
                && !p.is_object()
            {
                v.push(format!("{what}: properties must be an object"));
            }
        }
    }
}

/// OpenAI Chat Completions request rules.
pub fn validate_openai(body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec!["body must be a JSON object".into()];
    };
    check_keys(
        obj,
        &[
            "model",
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "temperature",
            "max_tokens",
            "max_completion_tokens",
            "stream",
            "user",
            "n",
            "top_p",
            "seed",
            "response_format",
            "stop",
            "store",
            "metadata",
        ],
        "request",
        &mut v,
    );
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        v.push("model: required non-empty string".into());
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        v.push("stream: the fake does not stream".into());
    }
    let mut offered = HashSet::new();
    if let Some(tools) = obj.get("tools") {
        match tools.as_array() {
            None => v.push("tools: must be an array".into()),
            Some(tools) => {
                for (i, t) in tools.iter().enumerate() {
                    let what = format!("tools[{i}]");
                    if t["type"] != "function" {
                        v.push(format!("{what}.type must be \"function\""));
                    }
                    if let Some(o) = t.as_object() {
                        check_keys(o, &["type", "function"], &what, &mut v);
                    }
                    let f = &t["function"];
                    let name = f["name"].as_str().unwrap_or_default();
                    if !valid_tool_name(name) {
                        v.push(format!(
                            "{what}.function.name {name:?} must match ^[a-zA-Z0-9_-]{{1,64}}$"
                        ));
                    }
                    if !offered.insert(name.to_owned()) {
                        v.push(format!("{what}: duplicate tool name {name:?}"));
                    }
                    if let Some(o) = f.as_object() {
                        check_keys(
                            o,
                            &["name", "description", "parameters", "strict"],
                            &format!("{what}.function"),
                            &mut v,
                        );
                    }
                    if let Some(d) = f.get("description")
                        && !d.is_string()
                    {
                        v.push(format!("{what}.function.description must be a string"));
                    }
                    if let Some(p) = f.get("parameters") {
                        check_schema(p, &format!("{what}.function.parameters"), &mut v);
                    }
                }
            }
        }
    }
    if let Some(choice) = obj.get("tool_choice") {
        let ok = matches!(choice.as_str(), Some("auto" | "none" | "required"))
            || (choice["type"] == "function" && choice["function"]["name"].is_string());
        if !ok {
            v.push(format!("tool_choice {choice} is not valid"));
        }
    }
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        v.push("messages: required array".into());
        return v;
    };
    if messages.is_empty() {
        v.push("messages: must not be empty".into());
    }
    // Tool call ids of the last assistant turn still waiting for results.
    let mut pending: Vec<String> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        let what = format!("messages[{i}]");
        let role = m["role"].as_str().unwrap_or_default();
        if role != "tool" && !pending.is_empty() {
            v.push(format!(
                "{what}: an assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id' (missing: {pending:?})"
            ));
            pending.clear();
        }
        match role {
            "system" | "developer" | "user" => {
                if let Some(o) = m.as_object() {
                    check_keys(o, &["role", "content", "name"], &what, &mut v);
                }
                let c = &m["content"];
                let ok = c.as_str().is_some_and(|s| !s.is_empty())
                    || c.as_array().is_some_and(|a| {
                        !a.is_empty()
                            && a.iter()
                                .all(|p| p["type"] == "text" && p["text"].is_string())
                    });
                if !ok {
                    v.push(format!(
                        "{what}.content: required non-empty string or text parts"
                    ));
                }
            }
            "assistant" => {
                if let Some(o) = m.as_object() {
                    check_keys(
                        o,
                        &["role", "content", "tool_calls", "name", "refusal"],
                        &what,
                        &mut v,
                    );
                }
                let calls = m.get("tool_calls");
                let content = &m["content"];
                match calls {
                    None => {
                        if !content.is_string() {
                            v.push(format!(
                                "{what}.content: required when there are no tool_calls"
                            ));
                        }
                    }
                    Some(calls) => {
                        if !(content.is_null() || content.is_string()) {
                            v.push(format!("{what}.content must be a string or null"));
                        }
                        let Some(calls) = calls.as_array().filter(|a| !a.is_empty()) else {
                            v.push(format!("{what}.tool_calls must be a non-empty array"));
                            continue;
                        };
                        answered.clear();
                        for (j, c) in calls.iter().enumerate() {
                            let w = format!("{what}.tool_calls[{j}]");
                            let id = c["id"].as_str().unwrap_or_default();
                            if id.is_empty() {
                                v.push(format!("{w}.id: required"));
                            }
                            if c["type"] != "function" {
                                v.push(format!("{w}.type must be \"function\""));
                            }
                            let name = c["function"]["name"].as_str().unwrap_or_default();
                            if !offered.is_empty() && !offered.contains(name) {
                                v.push(format!("{w}: tool {name:?} is not in tools"));
                            }
                            match c["function"]["arguments"].as_str() {
                                None => {
                                    v.push(format!("{w}.function.arguments must be a JSON string"))
                                }
                                Some(a) => {
                                    if !serde_json::from_str::<Value>(a)
                                        .is_ok_and(|x| x.is_object())
                                    {
                                        v.push(format!(
                                            "{w}.function.arguments must encode a JSON object"
                                        ));
                                    }
                                }
                            }
                            pending.push(id.to_owned());
                        }
                    }
                }
            }
            "tool" => {
                if let Some(o) = m.as_object() {
                    check_keys(o, &["role", "content", "tool_call_id"], &what, &mut v);
                }
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                if !m["content"].is_string() {
                    v.push(format!("{what}.content: required string"));
                }
                if let Some(pos) = pending.iter().position(|p| p == id) {
                    pending.remove(pos);
                    answered.insert(id.to_owned());
                } else if answered.contains(id) {
                    v.push(format!("{what}: tool_call_id {id:?} answered twice"));
                } else {
                    v.push(format!(
                        "{what}: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (unknown tool_call_id {id:?})"
                    ));
                }
            }
            other => v.push(format!("{what}.role {other:?} is not valid")),
        }
    }
    if !pending.is_empty() {
        v.push(format!(
            "tool calls without results at the end of messages: {pending:?}"
        ));
    }
    v
}

/// Anthropic Messages request rules.
pub fn validate_anthropic(body: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec!["body must be a JSON object".into()];
    };
    check_keys(
        obj,
        &[
            "model",
            "max_tokens",
            "messages",
            "system",
            "tools",
            "tool_choice",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "stream",
            "metadata",
            "thinking",
        ],
        "request",
        &mut v,
    );
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        v.push("model: Field required (non-empty string)".into());
    }
    if obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n < 1)
    {
        v.push("max_tokens: Field required (integer >= 1)".into());
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        v.push("stream: the fake does not stream".into());
    }
    if let Some(system) = obj.get("system") {
        let ok = system.is_string()
            || system.as_array().is_some_and(|a| {
                a.iter()
                    .all(|b| b["type"] == "text" && b["text"].is_string())
            });
        if !ok {
            v.push("system: must be a string or an array of text blocks".into());
        }
    }
    let mut offered = HashSet::new();
    if let Some(tools) = obj.get("tools") {
        match tools.as_array() {
            None => v.push("tools: must be an array".into()),
            Some(tools) => {
                for (i, t) in tools.iter().enumerate() {
                    let what = format!("tools.{i}");
                    if let Some(o) = t.as_object() {
                        check_keys(
                            o,
                            &[
                                "name",
                                "description",
                                "input_schema",
                                "cache_control",
                                "type",
                            ],
                            &what,
                            &mut v,
                        );
                    }
                    let name = t["name"].as_str().unwrap_or_default();
                    if !valid_tool_name(name) {
                        v.push(format!("{what}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$' (got {name:?})"));
                    }
                    if !offered.insert(name.to_owned()) {
                        v.push(format!("{what}: tool names must be unique ({name:?})"));
                    }
                    if let Some(d) = t.get("description")
                        && !d.is_string()
                    {
                        v.push(format!("{what}.description must be a string"));
                    }
                    match t.get("input_schema") {
                        None => v.push(format!("{what}.input_schema: Field required")),
                        Some(s) => check_schema(s, &format!("{what}.input_schema"), &mut v),
                    }
                }
            }
        }
    }
    if let Some(choice) = obj.get("tool_choice") {
        let ok = matches!(choice["type"].as_str(), Some("auto" | "any" | "none"))
            || (choice["type"] == "tool" && choice["name"].is_string());
        if !ok {
            v.push(format!("tool_choice {choice} is not valid"));
        }
    }
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        v.push("messages: Field required".into());
        return v;
    };
    if messages.is_empty() {
        v.push("messages: at least one message is required".into());
    }
    if messages.first().is_some_and(|m| m["role"] != "user") {
        v.push("messages.0.role: the first message must use the \"user\" role".into());
    }
    let mut previous_role = "";
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let what = format!("messages.{i}");
        if let Some(o) = m.as_object() {
            check_keys(o, &["role", "content"], &what, &mut v);
        }
        let role = m["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            v.push(format!(
                "{what}.role: Input should be 'user' or 'assistant' (got {role:?})"
            ));
        }
        if role == previous_role {
            v.push(format!(
                "{what}: roles must alternate between \"user\" and \"assistant\""
            ));
        }
        previous_role = role;
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => {
                if s.is_empty() {
                    v.push(format!(
                        "{what}.content: text content blocks must be non-empty"
                    ));
                }
                vec![json!({"type": "text", "text": s})]
            }
            Value::Array(a) if !a.is_empty() => a.clone(),
            _ => {
                v.push(format!(
                    "{what}.content: must be a non-empty string or array of content blocks"
                ));
                Vec::new()
            }
        };
        let mut results_done = false;
        let mut answered = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let w = format!("{what}.content.{j}");
            let kind = b["type"].as_str().unwrap_or_default();
            match (role, kind) {
                (_, "text") => {
                    results_done = true;
                    if b["text"].as_str().is_none_or(str::is_empty) {
                        v.push(format!("{w}: text content blocks must be non-empty"));
                    }
                    if let Some(o) = b.as_object() {
                        check_keys(
                            o,
                            &["type", "text", "cache_control", "citations"],
                            &w,
                            &mut v,
                        );
                    }
                }
                ("assistant", "tool_use") => {
                    if let Some(o) = b.as_object() {
                        check_keys(
                            o,
                            &["type", "id", "name", "input", "cache_control"],
                            &w,
                            &mut v,
                        );
                    }
                    let id = b["id"].as_str().unwrap_or_default();
                    if id.is_empty() {
                        v.push(format!("{w}.id: Field required"));
                    }
                    let name = b["name"].as_str().unwrap_or_default();
                    if !offered.is_empty() && !offered.contains(name) {
                        v.push(format!("{w}: tool {name:?} is not in tools"));
                    }
                    if !b["input"].is_object() {
                        v.push(format!("{w}.input: Input should be a valid dictionary"));
                    }
                    pending.push(id.to_owned());
                }
                ("user", "tool_result") => {
                    if results_done {
                        v.push(format!(
                            "{w}: tool_result blocks must come FIRST in the content array"
                        ));
                    }
                    if let Some(o) = b.as_object() {
                        check_keys(
                            o,
                            &[
                                "type",
                                "tool_use_id",
                                "content",
                                "is_error",
                                "cache_control",
                            ],
                            &w,
                            &mut v,
                        );
                    }
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if let Some(pos) = pending.iter().position(|p| p == id) {
                        pending.remove(pos);
                        answered.push(id.to_owned());
                    } else {
                        v.push(format!(
                            "{w}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                    let c = &b["content"];
                    let ok = c.is_string()
                        || c.as_array().is_some_and(|a| {
                            a.iter()
                                .all(|p| p["type"] == "text" && p["text"].is_string())
                        });
                    if !c.is_null() && !ok {
                        v.push(format!("{w}.content: must be a string or text blocks"));
                    }
                    if let Some(e) = b.get("is_error")
                        && !e.is_boolean()
                    {
                        v.push(format!("{w}.is_error must be a boolean"));
                    }
                }
                (r, k) => v.push(format!(
                    "{w}: block type {k:?} is not allowed in a {r} message"
                )),
            }
        }
        if role == "user" && !pending.is_empty() {
            v.push(format!(
                "{what}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                pending.join(", ")
            ));
            pending.clear();
        }
        if role == "assistant" && i + 1 == messages.len() && !pending.is_empty() {
            v.push(format!(
                "{what}: the conversation ends with unanswered tool_use blocks"
            ));
        }
        let _ = answered;
    }
    if messages.last().is_some_and(|m| m["role"] != "user") {
        v.push("the last message must use the \"user\" role".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_accepts_a_tool_round_trip() {
        let body = json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "{}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_2", "content": "two"},
                {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            ],
            "tools": [{"type": "function", "function": {"name": "t", "description": "d",
                       "parameters": {"type": "object", "properties": {}}}}],
        });
        assert_eq!(validate_openai(&body), Vec::<String>::new());
    }

    #[test]
    fn openai_rejects_protocol_mistakes() {
        let body = json!({
            "model": "gpt-test",
            "foo": 1,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "[1]"}}]},
                {"role": "user", "content": "next"},
                {"role": "tool", "tool_call_id": "call_9", "content": "x"},
            ],
            "tools": [{"type": "function", "function": {"name": "bad name", "parameters": {"type": "string"}}}],
        });
        let v = validate_openai(&body).join("\n");
        for needle in [
            "unrecognized field \"foo\"",
            "must match ^[a-zA-Z0-9_-]{1,64}$",
            "schema type must be \"object\"",
            "arguments must encode a JSON object",
            "must be followed by tool messages",
            "unknown tool_call_id \"call_9\"",
        ] {
            assert!(v.contains(needle), "missing {needle:?} in\n{v}");
        }
    }

    #[test]
    fn anthropic_accepts_a_tool_round_trip() {
        let body = json!({
            "model": "claude-test", "max_tokens": 100, "system": "sys",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", "is_error": false}]},
            ],
            "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
        });
        assert_eq!(validate_anthropic(&body), Vec::<String>::new());
    }

    #[test]
    fn anthropic_rejects_protocol_mistakes() {
        let body = json!({
            "model": "claude-test",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "and"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "ok"}]},
            ],
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        });
        let v = validate_anthropic(&body).join("\n");
        for needle in [
            "max_tokens: Field required",
            "tool_result blocks must come FIRST",
            "unexpected `tool_use_id`",
            "ids were found without `tool_result` blocks immediately after: toolu_1",
        ] {
            assert!(v.contains(needle), "missing {needle:?} in\n{v}");
        }
    }
}
