//! The acceptance suite both client binaries run (DESIGN.md §7, issue 5):
//! each function takes the provider's [`Spec`] and drives the real binary
//! against the real oauth-server and mcp-server and the provider's fake API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::llm::{Api, FakeLlm, Reply};

use super::cli::{run, run_in};
use super::stack::{Front, Options, READER_CLIENT, Stack};
use testkit::TestCa as Ca;

/// The API key the fakes expect.
pub const KEY: &str = "test-key-not-a-secret";

/// One provider's binary and variables.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub bin: &'static str,
    pub api: Api,
    pub name: &'static str,
    pub key_var: &'static str,
    pub base_var: &'static str,
    pub model_var: &'static str,
    pub client: (&'static str, &'static str),
}

impl Spec {
    pub async fn fake(&self, script: Vec<Reply>) -> FakeLlm {
        FakeLlm::start(self.api, KEY, script).await
    }

    /// Everything the binary needs: MCP + OAuth + the provider.
    pub fn vars(&self, stack: &Stack, fake: &FakeLlm) -> Vec<(String, String)> {
        let mut v = stack.client_vars(self.client);
        v.push((self.key_var.into(), KEY.into()));
        v.push((self.base_var.into(), fake.base_url()));
        v.push((self.model_var.into(), "test-model".into()));
        v
    }

    pub async fn run(&self, args: &[&str], vars: &[(String, String)]) -> super::cli::Run {
        run(self.bin, args, vars, None).await
    }
}

fn ticket_args() -> Value {
    json!({"customer_id": "67890", "subject": "Billing issues",
           "description": "The customer reports problems with their bill.", "priority": "high"})
}

/// No subcommand: the three demo queries, each through the model, the real
/// tools and back, with every tool call in the transcript.
pub async fn demo_queries(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec
        .fake(vec![
            Reply::tool("get_customer_info", json!({"customer_id": "12345"})),
            Reply::text("Customer 12345: {results}"),
            Reply::tool("create_support_ticket", ticket_args()),
            Reply::text("Ticket created: {results}"),
            Reply::tool(
                "calculate_account_value",
                json!({"customer_id": "12345", "amounts": [150, 300, 89]}),
            ),
            Reply::text("Account value: {results}"),
        ])
        .await;
    let out = spec.run(&[], &spec.vars(&stack, &fake)).await;
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    fake.assert_valid();
    assert_eq!(fake.remaining(), 0);

    let s = &out.stdout;
    for (i, query) in client_core::cli::DEMO_QUERIES.iter().enumerate() {
        assert!(s.contains(&format!("=== Demo query {}/3", i + 1)), "{s}");
        assert!(s.contains(&format!("You: {query}")), "{s}");
    }
    for line in [
        r#"[tool] get_customer_info {"customer_id":"12345"}"#,
        "[tool] get_customer_info -> ok in ",
        "[tool] create_support_ticket {",
        "[tool] create_support_ticket -> ok in ",
        "[tool] calculate_account_value {",
        "[tool] calculate_account_value -> ok in ",
        "Assistant: Customer 12345: ",
        "Assistant: Ticket created: ",
        "Assistant: Account value: ",
    ] {
        assert!(s.contains(line), "missing {line:?} in\n{s}");
    }
    assert!(s.contains("Alice Johnson"), "{s}");
    assert!(s.contains("539"), "the total of 150 + 300 + 89: {s}");

    // What the model was sent: each result answers its call id, and came
    // from the real server.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 6);
    for (i, tool) in [(1, "Alice Johnson"), (3, "67890"), (5, "539")] {
        let results = reqs[i].tool_results(spec.api);
        assert_eq!(results.len(), 1, "request {i}");
        assert!(!results[0].2, "request {i}: {results:?}");
        assert!(results[0].1.contains(tool), "request {i}: {results:?}");
    }
    let called: Vec<_> = stack
        .mcp
        .audit()
        .recent(1000)
        .into_iter()
        .filter(|e| e.event == "mcp.tool_called")
        .map(|e| {
            (
                e.tool.unwrap_or_default().into_owned(),
                e.client_id.unwrap_or_default().into_owned(),
            )
        })
        .collect();
    let who = spec.client.0.to_owned();
    assert_eq!(
        called,
        vec![
            ("get_customer_info".to_owned(), who.clone()),
            ("create_support_ticket".to_owned(), who.clone()),
            ("calculate_account_value".to_owned(), who),
        ]
    );
}

/// Parallel tool calls in one turn: all run, results go back under their
/// ids in order, a failing call becomes an error result; `--json` transcript.
pub async fn parallel_calls_and_error_results(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec
        .fake(vec![
            Reply::tools(&[
                ("get_customer_info", json!({"customer_id": "12345"})),
                ("get_customer_info", json!({"customer_id": "67890"})),
                ("get_customer_info", json!({"customer_id": "no such id!"})),
            ]),
            Reply::text("Summary: {results}"),
        ])
        .await;
    let out = spec
        .run(
            &["ask", "Compare customers 12345 and 67890", "--json"],
            &spec.vars(&stack, &fake),
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    fake.assert_valid();
    let events = out.json_lines();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "tool_call").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "tool_result").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"answer"));
    let errors: Vec<bool> = events
        .iter()
        .filter(|e| e["event"] == "tool_result")
        .map(|e| e["is_error"].as_bool().unwrap())
        .collect();
    assert_eq!(errors.iter().filter(|e| **e).count(), 1);
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "tool_result")
            .all(|e| e["latency_ms"].is_u64())
    );

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let results = reqs[1].tool_results(spec.api);
    let prefix = match spec.api {
        Api::OpenAi => "call_",
        Api::Anthropic => "toolu_",
    };
    let ids: Vec<String> = results.iter().map(|r| r.0.clone()).collect();
    assert_eq!(
        ids,
        (1..=3)
            .map(|i| format!("{prefix}{i:04}"))
            .collect::<Vec<_>>()
    );
    assert!(results[0].1.contains("Alice Johnson"));
    assert!(results[1].1.contains("Bob Martinez"));
    assert!(results[2].2, "the bad id is an error result: {results:?}");
    let answer = events.last().unwrap()["text"].as_str().unwrap();
    assert!(answer.starts_with("Summary: "), "{answer}");
}

/// A model that never stops calling tools is cut off at `--max-turns`.
pub async fn turn_limit(spec: Spec) {
    let stack = Stack::start().await;
    let call = Reply::tool("get_recent_customers", json!({"limit": 2}));
    let fake = spec.fake(vec![call.clone(), call.clone(), call]).await;
    let out = spec
        .run(
            &["ask", "loop forever", "--max-turns", "2"],
            &spec.vars(&stack, &fake),
        )
        .await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.trim_end(),
        "error: the model was still calling tools after 2 turns — stopped (raise --max-turns if the task really needs more)"
    );
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.remaining(), 1);
    fake.assert_valid();
}

/// LLM 429 with `Retry-After: 1`, then success: one retry, after ≥ 1 s.
pub async fn llm_429_is_retried_after_retry_after(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec
        .fake(vec![Reply::error(429, Some("1")), Reply::text("Hello.")])
        .await;
    let out = spec.run(&["ask", "hi"], &spec.vars(&stack, &fake)).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Assistant: Hello."), "{}", out.stdout);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "Retry-After honoured: {gap:?}"
    );
}

/// Five 500s: a clear one-line failure, within the retry bound.
pub async fn five_llm_500s_fail_clearly(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec.fake(vec![Reply::error(500, None); 5]).await;
    let out = spec.run(&["ask", "hi"], &spec.vars(&stack, &fake)).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    // Each retry is announced; the failure is one last line.
    let lines: Vec<&str> = out.stderr.lines().collect();
    let prefix = format!(
        "error: {} API still answered HTTP 500 after 5 attempts in ",
        spec.name
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with(&prefix), "{}", out.stderr);
    assert!(last.ends_with(": scripted error 500"), "{}", out.stderr);
    assert_eq!(lines.len(), 5, "{}", out.stderr);
    for (i, line) in lines[..4].iter().enumerate() {
        assert!(
            line.contains(&format!(
                "{} API answered HTTP 500; retrying in ",
                spec.name
            )) && line.ends_with(&format!("(attempt {} of 5)", i + 2)),
            "{line}"
        );
    }
    assert_eq!(fake.requests().len(), 5);
}

/// A 400 is the request's fault: reported at once, never retried.
pub async fn llm_400_is_not_retried(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec
        .fake(vec![Reply::error(400, None), Reply::text("unused")])
        .await;
    let out = spec.run(&["ask", "hi"], &spec.vars(&stack, &fake)).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "error: {} API refused the request (HTTP 400, invalid_request_error): scripted error 400",
            spec.name
        )
    );
    assert_eq!(fake.requests().len(), 1);
}

/// Missing or wrong configuration: one line naming the fix, before any traffic.
pub async fn configuration_errors_name_the_fix(spec: Spec) {
    let out = spec.run(&["ask", "hi"], &[]).await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        format!(
            "error: {} is not set — put it in .env or export it\n",
            spec.key_var
        )
    );
    // Neither a machine client nor a person's login: both fixes are named.
    let program = std::path::Path::new(spec.bin)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let not_logged_in = format!(
        "error: not logged in at http://localhost:8080 for http://localhost:8000/mcp — run `{program} login`, or give a machine client's OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (the dev clients are in config/clients.toml)\n"
    );
    let out = spec.run(&["tools"], &[]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, not_logged_in);
    let out = spec
        .run(&["ask", "hi"], &[(spec.key_var.into(), KEY.into())])
        .await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, not_logged_in);
    // A secret without its client id is a machine client missing a variable.
    let out = spec
        .run(&["tools"], &[("OAUTH_CLIENT_SECRET".into(), "s".into())])
        .await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: OAUTH_CLIENT_ID is not set — put it in .env or export it (the dev clients are in config/clients.toml)\n"
    );
    let vars = vec![
        (spec.key_var.into(), KEY.into()),
        (spec.base_var.into(), "http://api.example.com/v1".into()),
    ];
    let out = spec.run(&["ask", "hi"], &vars).await;
    assert_eq!(
        out.stderr,
        format!(
            "error: {} must use https (plain http is allowed only for localhost): http://api.example.com/v1\n",
            spec.base_var
        )
    );
    let out = spec
        .run(&["call", "get_customer_info", "{not json"], &[])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: the arguments are not valid JSON ("),
        "{}",
        out.stderr
    );
}

/// `tools` and `call` need no LLM key; `--json` is machine-readable; a
/// client without the scope gets the clear message.
pub async fn tools_and_call_without_an_llm_key(spec: Spec) {
    let stack = Stack::start().await;
    let vars = stack.client_vars(spec.client);
    let out = spec.run(&["tools"], &vars).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with(&format!(
        "4 tools on {} for client {}:",
        stack.mcp_url, spec.client.0
    )));
    for (tool, scope) in [
        ("get_customer_info", "customer:read"),
        ("get_recent_customers", "customer:read"),
        ("create_support_ticket", "ticket:create"),
        ("calculate_account_value", "account:calculate"),
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(tool))
            .unwrap_or_else(|| panic!("{tool} missing:\n{}", out.stdout));
        assert!(line.contains(&format!("scopes: {scope}")), "{line}");
    }

    let out = spec.run(&["tools", "--json"], &vars).await;
    let doc = &out.json_lines()[0];
    assert_eq!(doc["event"], "tools");
    // The default wire against our server is the 2026-07-28 stateless one.
    assert_eq!(doc["protocol"], "2026-07-28");
    assert_eq!(doc["tools"][2]["name"], "create_support_ticket");
    assert_eq!(doc["tools"][2]["scopes"], json!(["ticket:create"]));

    let out = spec
        .run(
            &["call", "get_customer_info", r#"{"customer_id":"12345"}"#],
            &vars,
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("[tool] get_customer_info -> ok in "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Alice Johnson"), "{}", out.stdout);

    let out = spec
        .run(
            &["call", "get_customer_info", r#"{"customer_id":"bad!"}"#],
            &vars,
        )
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("-> error in "), "{}", out.stdout);
    assert!(
        out.stderr
            .starts_with("error: the tool reported an error: "),
        "{}",
        out.stderr
    );

    let reader = stack.client_vars(READER_CLIENT);
    let out = spec
        .run(
            &["call", "create_support_ticket", &ticket_args().to_string()],
            &reader,
        )
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: client `reader-client` lacks scope `ticket:create` and could not get it (the \
         authorization server granted only `customer:read`) — if the client is allowed it, add it to \
         OAUTH_SCOPES; otherwise grant it in the authorization server's client registry \
         (allowed_scopes)\n"
    );
}

/// `.env` in the working directory is read.
pub async fn reads_dotenv(spec: Spec) {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env: String = stack
        .client_vars(spec.client)
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let out = run_in(dir.path(), spec.bin, &["tools"], &[], None).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("4 tools on "), "{}", out.stdout);
}

/// Over TLS with a test CA: refused without it, fine with SSL_CERT_FILE.
pub async fn tls_with_ssl_cert_file(spec: Spec) {
    let ca = Ca::new("secure-mcp test CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    let stack = Stack::start_with(Options {
        front: Front::Tls {
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
        },
        ..Options::default()
    })
    .await;
    let mut vars = stack.client_vars(spec.client);
    let out = spec.run(&["tools"], &vars).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "TLS: the server's certificate is not signed by a trusted CA — set SSL_CERT_FILE"
        ),
        "{}",
        out.stderr
    );
    let ca_file = stack.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    vars.push(("SSL_CERT_FILE".into(), ca_file.to_str().unwrap().into()));
    let out = spec.run(&["tools"], &vars).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("4 tools on {}", stack.mcp_url)),
        "{}",
        out.stdout
    );
}

/// `chat` keeps the conversation between questions.
pub async fn chat_keeps_the_conversation(spec: Spec) {
    let stack = Stack::start().await;
    let fake = spec
        .fake(vec![
            Reply::tool("get_customer_info", json!({"customer_id": "12345"})),
            Reply::text("Alice is gold."),
            Reply::text("You asked about Alice."),
        ])
        .await;
    let out = run(
        spec.bin,
        &["chat"],
        &spec.vars(&stack, &fake),
        Some("Who is 12345?\nWhat did I ask?\nexit\n"),
    )
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Assistant: Alice is gold."));
    assert!(out.stdout.contains("Assistant: You asked about Alice."));
    fake.assert_valid();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    // The second question is sent with the whole first exchange.
    let history = reqs[2].body["messages"].to_string();
    assert!(history.contains("Who is 12345?") && history.contains("Alice is gold."));
    assert!(history.contains("What did I ask?"));
}

/// Client scenarios of the MCP conformance suite this client passes, each at
/// every protocol revision the suite lists for it (`conformance list
/// --client`; `None` = an extension scenario, run without `--spec-version`):
/// the plain protocol ones on both wires (2026-07-28 stateless, and the
/// 2025-11-25 fallback where the scenario's server is legacy), the
/// client-credentials ones, and every authorization scenario a client with a
/// person's login can pass (the runner signs in unattended, like `login`).
/// Not run (docs/conformance.md): DPoP, enterprise-managed and workload-
/// identity grants (extensions this client does not implement), elicitation
/// defaults and `sep-2322-client-request-state` (the client declares neither
/// elicitation nor sampling).
pub const CONFORMANCE_SCENARIOS: &[(&str, Option<&str>)] = &[
    ("initialize", Some("2025-06-18")),
    ("initialize", Some("2025-11-25")),
    ("tools_call", Some("2025-06-18")),
    ("tools_call", Some("2025-11-25")),
    ("tools_call", Some("2026-07-28")),
    ("request-metadata", Some("2026-07-28")),
    ("http-standard-headers", Some("2026-07-28")),
    ("http-custom-headers", Some("2026-07-28")),
    ("http-invalid-tool-headers", Some("2026-07-28")),
    ("json-schema-2020-12-preservation", Some("2025-11-25")),
    ("json-schema-2020-12-preservation", Some("2026-07-28")),
    ("json-schema-ref-no-deref", Some("2026-07-28")),
    ("sse-retry", Some("2025-11-25")),
    ("auth/client-credentials-basic", None),
    ("auth/client-credentials-jwt", None),
    ("auth/metadata-default", Some("2025-11-25")),
    ("auth/metadata-default", Some("2026-07-28")),
    ("auth/metadata-var1", Some("2025-11-25")),
    ("auth/metadata-var1", Some("2026-07-28")),
    ("auth/metadata-var2", Some("2025-11-25")),
    ("auth/metadata-var2", Some("2026-07-28")),
    ("auth/metadata-var3", Some("2025-11-25")),
    ("auth/metadata-var3", Some("2026-07-28")),
    ("auth/basic-cimd", Some("2025-11-25")),
    ("auth/basic-cimd", Some("2026-07-28")),
    ("auth/scope-from-www-authenticate", Some("2025-11-25")),
    ("auth/scope-from-www-authenticate", Some("2026-07-28")),
    ("auth/scope-from-scopes-supported", Some("2025-11-25")),
    ("auth/scope-from-scopes-supported", Some("2026-07-28")),
    ("auth/scope-omitted-when-undefined", Some("2025-11-25")),
    ("auth/scope-omitted-when-undefined", Some("2026-07-28")),
    ("auth/scope-step-up", Some("2025-11-25")),
    ("auth/scope-step-up", Some("2026-07-28")),
    ("auth/scope-retry-limit", Some("2025-11-25")),
    ("auth/scope-retry-limit", Some("2026-07-28")),
    ("auth/token-endpoint-auth-basic", Some("2025-06-18")),
    ("auth/token-endpoint-auth-basic", Some("2025-11-25")),
    ("auth/token-endpoint-auth-basic", Some("2026-07-28")),
    ("auth/token-endpoint-auth-post", Some("2025-06-18")),
    ("auth/token-endpoint-auth-post", Some("2025-11-25")),
    ("auth/token-endpoint-auth-post", Some("2026-07-28")),
    ("auth/token-endpoint-auth-none", Some("2025-06-18")),
    ("auth/token-endpoint-auth-none", Some("2025-11-25")),
    ("auth/token-endpoint-auth-none", Some("2026-07-28")),
    ("auth/pre-registration", Some("2025-11-25")),
    ("auth/pre-registration", Some("2026-07-28")),
    (
        "auth/2025-03-26-oauth-metadata-backcompat",
        Some("2025-03-26"),
    ),
    (
        "auth/2025-03-26-oauth-endpoint-fallback",
        Some("2025-03-26"),
    ),
    ("auth/resource-mismatch", Some("2026-07-28")),
    ("auth/offline-access-scope", Some("2026-07-28")),
    ("auth/offline-access-not-supported", Some("2026-07-28")),
    ("auth/authorization-server-migration", Some("2026-07-28")),
    ("auth/iss-supported", Some("2026-07-28")),
    ("auth/iss-not-advertised", Some("2026-07-28")),
    ("auth/iss-supported-missing", Some("2026-07-28")),
    ("auth/iss-wrong-issuer", Some("2026-07-28")),
    ("auth/iss-unexpected", Some("2026-07-28")),
    ("auth/iss-normalized", Some("2026-07-28")),
    ("auth/metadata-issuer-mismatch", Some("2026-07-28")),
];

/// Why a conformance run did not pass cleanly, or `None`. The suite prints
/// (on stderr) one line per check, `<time> [check-id] STATUS description`,
/// then `Passed: a/b, N failed, M warnings` and `OVERALL: PASSED|FAILED`.
/// A WARNING (a SHOULD the client missed) counts as a failure here.
pub fn conformance_verdict(exit_ok: bool, output: &str) -> Option<String> {
    let plain = strip_ansi(output);
    let flagged: Vec<&str> = plain
        .lines()
        .filter(|line| {
            let Some((_, rest)) = line.split_once("] ") else {
                return false;
            };
            rest.starts_with("FAILURE") || rest.starts_with("WARNING")
        })
        .collect();
    if !flagged.is_empty() {
        return Some(format!("checks flagged:\n{}", flagged.join("\n")));
    }
    if !plain.contains(" 0 failed, 0 warnings") {
        return Some("the summary counts failures or warnings".to_owned());
    }
    if !exit_ok || !plain.contains("OVERALL: PASSED") {
        return Some("the run did not pass".to_owned());
    }
    None
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs [`CONFORMANCE_SCENARIOS`] with the binary's `conformance` mode
/// (the suite is installed by `scripts/conformance.sh --install-only`).
pub async fn conformance_client_scenarios(spec: Spec) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tools = root.join(".tools/conformance/node_modules");
    let node = tools.join("node/bin/node");
    let suite = tools.join("@modelcontextprotocol/conformance/dist/index.js");
    if !node.exists() || !suite.exists() {
        assert!(
            !testkit::services_required(),
            "the MCP conformance suite is not installed: run scripts/conformance.sh --install-only"
        );
        eprintln!(
            "SKIPPED: MCP conformance suite not installed (scripts/conformance.sh --install-only)"
        );
        return;
    }
    let command = format!("{} conformance", spec.bin);
    let mut failures = Vec::new();
    for (scenario, version) in CONFORMANCE_SCENARIOS {
        let mut run = tokio::process::Command::new(&node);
        run.arg(&suite)
            .args(["client", "--command", &command, "--scenario", scenario]);
        if let Some(version) = version {
            run.args(["--spec-version", version]);
        }
        let out = run
            .env_remove("MCP_SERVER_URL")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let output = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(why) = conformance_verdict(out.status.success(), &output) {
            failures.push(format!(
                "{scenario} at {}: {why}\n{output}",
                version.unwrap_or("(extension)")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Tokens that live two seconds, a model that takes 0.7 s per turn: the
/// conversation outlives several tokens and the client renews them on its
/// own — every tool call succeeds and the server never rejects a token.
pub async fn a_long_conversation_renews_tokens(spec: Spec) {
    let stack = Stack::start_with(Options {
        token_ttl: Some(Duration::from_secs(2)),
        oauth_proxy: true,
        ..Options::default()
    })
    .await;
    let slow = Duration::from_millis(700);
    let mut script: Vec<Reply> = (0..6)
        .map(|_| Reply::tool("get_customer_info", json!({"customer_id": "12345"})).after(slow))
        .collect();
    script.push(Reply::text("Done.").after(slow));
    let fake = spec.fake(script).await;
    let out = spec
        .run(
            &["ask", "Check customer 12345 six times", "--json"],
            &spec.vars(&stack, &fake),
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let results: Vec<Value> = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 6);
    assert!(
        results.iter().all(|r| r["is_error"] == false),
        "{results:?}"
    );
    // The conversation outlived its tokens: the client renewed them itself
    // (shown by the token requests, not by a wall-clock bound).
    let token_requests = stack.oauth_faults.seen("/token");
    assert!(
        token_requests.len() >= 3 && token_requests.iter().all(|(_, s)| *s == 200),
        "{token_requests:?}"
    );
    let rejected: Vec<_> = stack
        .mcp
        .audit()
        .recent(1000)
        .into_iter()
        .filter(|e| e.event == "mcp.token_rejected")
        .map(|e| e.reason)
        .collect();
    assert_eq!(
        rejected,
        vec![Some("missing_token")],
        "only discovery's probe"
    );
    fake.assert_valid();
}

/// A hostile MCP server names a foreign authorization server: the client
/// stops with one line naming both and OAUTH_ISSUER, exit 2, and sends that
/// server nothing at all (not even a metadata request).
pub async fn credentials_go_only_to_oauth_issuer(spec: Spec) {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign = format!("http://{}", listener.local_addr().unwrap());
    let counter = seen.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(req);
                axum::Json(json!({"issuer": "nope"}))
            }
        });
        let _ = axum::serve(listener, app).await;
    });
    let stack = Stack::start_with(Options {
        mcp_names_issuer: Some(foreign.clone()),
        ..Default::default()
    })
    .await;
    let fake = spec.fake(vec![]).await;
    let out = spec.run(&["tools"], &spec.vars(&stack, &fake)).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "error: OAUTH_ISSUER is {issuer}, but the MCP server names the authorization server \
             {foreign} — this client's credentials go only to OAUTH_ISSUER; if {foreign} is where \
             they belong, set OAUTH_ISSUER={foreign}\n",
            issuer = stack.issuer
        )
    );
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the foreign server was contacted"
    );
}

/// Starts `bin login --no-browser` and returns the child and the sign-in URL
/// it printed (the rest of its stderr is kept for the assertion messages).
async fn start_login(
    bin: &str,
    args: &[&str],
    vars: &[(String, String)],
) -> (tokio::process::Child, url::Url, Vec<String>) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if let Some(url) = line.trim().strip_prefix("http") {
                return url::Url::parse(&format!("http{url}")).unwrap();
            }
        }
        panic!("login printed no URL: {seen:?}");
    })
    .await
    .expect("login printed no URL within 30 s");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, seen)
}

/// Where the login test keeps the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStore {
    /// `OAUTH_TOKEN_STORE=file` in a temporary folder.
    File,
    /// `OAUTH_TOKEN_STORE=keyring`: the OS keyring (the kernel keyring on
    /// Linux; required where services are required).
    Keyring,
}

/// `login` end to end against the real oauth-server: an HTTP form submitter
/// plays the browser (signs in as alice, approves), the client registers
/// itself (RFC 7591), checks the redirect and stores the refresh token
/// (0600 file, or the OS keyring); `tools` then works with no secret at all
/// and rotates the refresh token; `logout` revokes it (introspection:
/// inactive) and forgets it, after which `tools` names the fix.
pub async fn login_and_logout(spec: Spec, store: LoginStore) {
    use client_core::store::{KeyringStore, StoredLogin, TokenStore as _};
    let store = match (store, KeyringStore::probe()) {
        (LoginStore::Keyring, Err(e)) => {
            assert!(!testkit::services_required(), "no OS keyring: {e}");
            eprintln!("SKIPPED the keyring part: no OS keyring ({e}); using the file store");
            LoginStore::File
        }
        (s, _) => s,
    };
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logins.json");
    let mut vars: Vec<(String, String)> = vec![
        ("MCP_SERVER_URL".into(), stack.mcp_url.clone()),
        ("OAUTH_ISSUER".into(), stack.issuer.clone()),
    ];
    match store {
        LoginStore::File => {
            vars.push(("OAUTH_TOKEN_STORE".into(), "file".into()));
            vars.push(("OAUTH_TOKEN_STORE_FILE".into(), file.display().to_string()));
        }
        LoginStore::Keyring => vars.push(("OAUTH_TOKEN_STORE".into(), "keyring".into())),
    }
    let key = StoredLogin::key(&stack.issuer, &stack.mcp_url);
    let stored = || -> Option<StoredLogin> {
        match store {
            LoginStore::File => client_core::store::FileStore::new(file.clone())
                .load(&key)
                .unwrap(),
            LoginStore::Keyring => KeyringStore.load(&key).unwrap(),
        }
    };
    let described = match store {
        LoginStore::File => file.display().to_string(),
        LoginStore::Keyring => "the OS keyring".to_owned(),
    };
    let (child, url, _) = start_login(spec.bin, &["login", "--no-browser"], &vars).await;
    assert_eq!(
        url.as_str().split('?').next(),
        Some(format!("{}/authorize", stack.issuer).as_str())
    );
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["resource"], stack.mcp_url);
    assert!(query["redirect_uri"].starts_with("http://127.0.0.1:"));
    assert!(query["state"].len() >= 22);

    let mut alice = ::stack::signin::Person::new(::stack::ALICE.0, ::stack::ALICE.1).unwrap();
    let back = alice
        .authorize(&url, ::stack::signin::Decision::Approve)
        .await
        .unwrap();
    assert_eq!(back.iss.as_deref(), Some(stack.issuer.as_str()));
    let page = reqwest::get(back.location.clone()).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Signed in."));
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "Logged in at {} for {} (scope: ",
            stack.issuer, stack.mcp_url
        )),
        "{stdout}"
    );

    let first = stored().expect("the login is stored");
    assert_eq!(first.issuer, stack.issuer);
    assert_eq!(first.resource, stack.mcp_url);
    assert!(
        first.registered,
        "no OAUTH_CLIENT_ID: the client registered itself"
    );
    assert!(first.client_secret.is_none(), "a public client");
    assert_eq!(first.refresh_token.len(), 43);
    #[cfg(unix)]
    if store == LoginStore::File {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.matches("refresh_token").count(), 1);
    }
    assert!(stack.is_active(&first.refresh_token).await);

    // No secret, no client id: the stored login is enough.
    let out = spec.run(&["tools"], &vars).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("get_customer_info"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("for client {}:", first.client_id)),
        "{}",
        out.stdout
    );
    let rotated = stored().unwrap();
    assert_ne!(
        rotated.refresh_token, first.refresh_token,
        "refresh rotates"
    );
    assert!(!stack.is_active(&first.refresh_token).await);
    assert!(stack.is_active(&rotated.refresh_token).await);
    let out = spec
        .run(
            &["call", "get_customer_info", r#"{"customer_id":"12345"}"#],
            &vars,
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A second login reuses the registered client and replaces the token.
    let (child, url, _) = start_login(spec.bin, &["login", "--no-browser"], &vars).await;
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], first.client_id);
    let back = alice
        .authorize(&url, ::stack::signin::Decision::Approve)
        .await
        .unwrap();
    reqwest::get(back.location).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let second = stored().unwrap();
    assert_eq!(second.client_id, first.client_id);
    if store == LoginStore::File {
        let live = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            live.matches("refresh_token").count(),
            1,
            "one login per server"
        );
    }
    assert!(stack.is_active(&second.refresh_token).await);
    assert!(
        !stack.is_active(&rotated.refresh_token).await,
        "the replaced login is revoked"
    );

    let out = spec.run(&["logout"], &vars).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Logged out of {}: the refresh token is revoked and deleted from {}.\n",
            stack.issuer, described
        )
    );
    assert!(!stack.is_active(&second.refresh_token).await, "revoked");
    assert!(stored().is_none(), "forgotten");
    let out = spec.run(&["logout"], &vars).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with("Not logged in at "),
        "{}",
        out.stdout
    );

    let out = spec.run(&["tools"], &vars).await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        format!(
            "error: not logged in at {} for {} — run `{} login`, or give a machine client's OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (the dev clients are in config/clients.toml)\n",
            stack.issuer,
            stack.mcp_url,
            std::path::Path::new(spec.bin)
                .file_stem()
                .unwrap()
                .to_string_lossy()
        )
    );
}

/// Runs `login --no-browser` to the end with `person` approving.
async fn log_in(spec: Spec, vars: &[(String, String)], person: &mut ::stack::signin::Person) {
    let (child, url, _) = start_login(spec.bin, &["login", "--no-browser"], vars).await;
    let back = person
        .authorize(&url, ::stack::signin::Decision::Approve)
        .await
        .unwrap();
    assert_eq!(reqwest::get(back.location).await.unwrap().status(), 200);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A person's login outlives its access tokens: two-second tokens, a model
/// that takes 0.7 s per turn. Every tool call succeeds; the client renewed
/// the access token by refresh before expiry (refresh_token grants at the
/// token endpoint, each rotating the stored refresh token), and the MCP
/// server never rejected a token.
pub async fn a_long_conversation_renews_a_login(spec: Spec) {
    let stack = Stack::start_with(Options {
        token_ttl: Some(Duration::from_secs(2)),
        oauth_proxy: true,
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logins.json");
    let vars: Vec<(String, String)> = vec![
        ("MCP_SERVER_URL".into(), stack.mcp_url.clone()),
        ("OAUTH_ISSUER".into(), stack.issuer.clone()),
        ("OAUTH_TOKEN_STORE".into(), "file".into()),
        ("OAUTH_TOKEN_STORE_FILE".into(), file.display().to_string()),
    ];
    let mut alice = ::stack::signin::Person::new(::stack::ALICE.0, ::stack::ALICE.1).unwrap();
    log_in(spec, &vars, &mut alice).await;
    let store = client_core::store::FileStore::new(file.clone());
    let key = client_core::store::StoredLogin::key(&stack.issuer, &stack.mcp_url);
    let first = client_core::store::TokenStore::load(&store, &key)
        .unwrap()
        .unwrap();
    let before = stack.oauth_faults.seen("/token").len();

    let slow = Duration::from_millis(700);
    let mut script: Vec<Reply> = (0..6)
        .map(|_| Reply::tool("get_customer_info", json!({"customer_id": "12345"})).after(slow))
        .collect();
    script.push(Reply::text("Done.").after(slow));
    let fake = spec.fake(script).await;
    let mut run_vars = vars.clone();
    run_vars.push((spec.key_var.into(), KEY.into()));
    run_vars.push((spec.base_var.into(), fake.base_url()));
    run_vars.push((spec.model_var.into(), "test-model".into()));
    let out = spec
        .run(
            &["ask", "Check customer 12345 six times", "--json"],
            &run_vars,
        )
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let results: Vec<Value> = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 6);
    assert!(
        results.iter().all(|r| r["is_error"] == false),
        "{results:?}"
    );
    let renewals = &stack.oauth_faults.seen("/token")[before..];
    assert!(
        renewals.len() >= 3 && renewals.iter().all(|(_, s)| *s == 200),
        "{renewals:?}"
    );
    let last = client_core::store::TokenStore::load(&store, &key)
        .unwrap()
        .unwrap();
    assert_ne!(last.refresh_token, first.refresh_token);
    assert!(stack.is_active(&last.refresh_token).await);
    let rejected: Vec<_> = stack
        .mcp
        .audit()
        .recent(1000)
        .into_iter()
        .filter(|e| e.event == "mcp.token_rejected")
        .map(|e| e.reason)
        .collect();
    assert_eq!(
        rejected,
        vec![Some("missing_token"), Some("missing_token")],
        "only the two discovery probes (login, ask)"
    );
    fake.assert_valid();
}
