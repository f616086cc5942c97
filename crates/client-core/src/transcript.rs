//! Printing the loop's events: for people, or as JSON lines (`--json`).
//!
//! People see every tool call with its arguments, then its outcome and
//! latency, then the answer:
//!
//! ```text
//! [tool] get_customer_info {"customer_id":"12345"}
//! [tool] get_customer_info -> ok in 23 ms: {"customer":{"id":"12345",…
//! Assistant: Alice Johnson is a gold customer…
//! ```
//!
//! `--json` prints one object per line with an `event` field:
//! `question`, `model_reply`, `tool_call`, `tool_result`, `answer`, `error`.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::agent::{Event, Observer};

/// Longest tool result shown in a human transcript (characters).
const SHOWN_RESULT_CHARS: usize = 300;

/// Writes events to `out` (stdout in the binaries, a buffer in tests).
pub struct Transcript {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Transcript {
    pub fn new(out: Box<dyn Write + Send>, json: bool) -> Self {
        Self {
            out: Mutex::new(out),
            json,
        }
    }

    /// To standard output.
    pub fn stdout(json: bool) -> Self {
        Self::new(Box::new(std::io::stdout()), json)
    }

    /// Whether this transcript prints JSON lines.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A line for people, or a JSON object for `--json`.
    pub fn line(&self, human: &str, machine: Value) {
        let text = if self.json {
            machine.to_string()
        } else {
            human.to_owned()
        };
        if let Ok(mut out) = self.out.lock() {
            // A closed stdout (e.g. `| head`) must not turn into a panic.
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    /// A new question.
    pub fn question(&self, text: &str) {
        self.line(
            &format!("You: {text}"),
            json!({"event": "question", "text": text}),
        );
    }

    /// A failure the user must see.
    pub fn error(&self, message: &str) {
        self.line(
            &format!("error: {message}"),
            json!({"event": "error", "message": message}),
        );
    }
}

impl Observer for Transcript {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::ModelReply {
                turn,
                latency,
                reply,
            } => {
                if self.json {
                    self.line(
                        "",
                        json!({
                            "event": "model_reply", "turn": turn,
                            "latency_ms": latency.as_millis() as u64,
                            "text": reply.text, "tool_calls": reply.tool_calls.len(),
                        }),
                    );
                } else if let Some(text) = reply.text.as_deref().filter(|t| !t.trim().is_empty())
                    && !reply.tool_calls.is_empty()
                {
                    // Text alongside tool calls ("let me look that up").
                    self.line(&format!("Assistant (thinking): {text}"), Value::Null);
                }
            }
            Event::ToolCallStarted { call } => self.line(
                &format!("[tool] {} {}", call.name, call.arguments),
                json!({"event": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}),
            ),
            Event::ToolCallFinished {
                call,
                result,
                latency,
            } => {
                let outcome = if result.is_error { "error" } else { "ok" };
                self.line(
                    &format!(
                        "[tool] {} -> {outcome} in {} ms: {}",
                        call.name,
                        latency.as_millis(),
                        one_line(&result.content, SHOWN_RESULT_CHARS)
                    ),
                    json!({
                        "event": "tool_result", "id": call.id, "name": call.name,
                        "outcome": outcome, "is_error": result.is_error,
                        "latency_ms": latency.as_millis() as u64, "content": result.content,
                    }),
                );
            }
            Event::Answer { text } => self.line(
                &format!("Assistant: {text}"),
                json!({"event": "answer", "text": text}),
            ),
        }
    }
}

/// `s` on one line, cut at `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::agent::{ToolCall, ToolResult};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn human_and_json_lines() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_customer_info".into(),
            arguments: json!({"customer_id": "12345"}),
        };
        let result = ToolResult {
            call_id: "call_1".into(),
            name: "get_customer_info".into(),
            content: "{\"name\":\n\"Alice\"}".into(),
            is_error: false,
        };
        for json in [false, true] {
            let buf = Buf::default();
            let t = Transcript::new(Box::new(buf.clone()), json);
            t.event(Event::ToolCallStarted { call: &call });
            t.event(Event::ToolCallFinished {
                call: &call,
                result: &result,
                latency: Duration::from_millis(12),
            });
            t.event(Event::Answer { text: "Alice" });
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            if json {
                let lines: Vec<Value> = out
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                assert_eq!(lines[0]["event"], "tool_call");
                assert_eq!(lines[1]["outcome"], "ok");
                assert_eq!(lines[1]["latency_ms"], 12);
                assert_eq!(lines[2]["text"], "Alice");
            } else {
                assert_eq!(
                    out,
                    "[tool] get_customer_info {\"customer_id\":\"12345\"}\n\
                     [tool] get_customer_info -> ok in 12 ms: {\"name\": \"Alice\"}\n\
                     Assistant: Alice\n"
                );
            }
        }
    }
}
