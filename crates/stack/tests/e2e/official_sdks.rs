//! The official MCP SDKs as yardsticks (issue 11): the pinned TypeScript SDK
//! (`scripts/sdk/ts-sdk-flow.mjs`, on the Node 22 of `.tools/conformance`,
//! the SDK in `.tools/sdk`) and the pinned Python SDK
//! (`scripts/sdk/python_sdk_check.py`, in `.tools/venv`) run against a stack
//! started here (both servers in-process on free ports, the issuer and
//! resource URLs they really have), as a host would use them: discovery from
//! the 401, a token from our oauth-server, `tools/list` and a
//! `get_customer_info` call.
//!
//! The tools come from `scripts/conformance.sh --install-only` and
//! `scripts/install-ci-tools.sh`; without them each test skips loudly, or
//! fails when `SECURE_MCP_REQUIRE_SERVICES=1` (CI).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use testkit::{REQUIRE_SERVICES_VAR, services_required};

use crate::helpers::repo_root;

/// The skip-or-fail rule for a tool that lives in `.tools/` (no `PATH` lookup,
/// no override: the pinned copy is the point).
fn unavailable<T>(what: &str, install: &str) -> Option<T> {
    let advice = format!("{what} is not installed; run {install}");
    if services_required() {
        panic!("official SDK check: {REQUIRE_SERVICES_VAR}=1 but {advice}");
    }
    eprintln!("SKIPPED: {advice}; set {REQUIRE_SERVICES_VAR}=1 to make this a failure");
    None
}

/// The pinned Node and the installed TypeScript SDK, or `None` after the skip-or-fail rule.
fn node_with_sdk() -> Option<PathBuf> {
    let root = repo_root();
    let node = root.join(".tools/conformance/node_modules/node/bin/node");
    let sdk = root.join(".tools/sdk/node_modules/@modelcontextprotocol/sdk/package.json");
    if node.is_file() && sdk.is_file() {
        return Some(node);
    }
    unavailable(
        "Node 22 (.tools/conformance) with @modelcontextprotocol/sdk (.tools/sdk)",
        "scripts/conformance.sh --install-only && scripts/install-ci-tools.sh",
    )
}

/// The venv's Python with the `mcp` SDK, or `None` after the skip-or-fail rule.
fn python_with_sdk() -> Option<PathBuf> {
    let python = repo_root().join(".tools/venv/bin/python");
    let has_sdk = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import mcp.client.auth.extensions.client_credentials"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if has_sdk {
        return Some(python);
    }
    unavailable(
        "the mcp Python SDK (.tools/venv)",
        "scripts/install-ci-tools.sh",
    )
}

/// Runs a check script; returns its JSON line after asserting it succeeded
/// (the script's own message is in the panic when it did not).
async fn run(program: &Path, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stderr}\n{stdout}",
        program.display(),
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON line ({e}): {stdout}"))
}

fn script(name: &str) -> String {
    repo_root()
        .join("scripts/sdk")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

async fn start() -> stack::Stack {
    stack::Stack::builder().start().await.unwrap()
}

/// `mcp.tool_called` events of the stack's replica: (client_id, sub, tool).
fn tool_calls(stack: &stack::Stack) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    stack
        .mcp_state()
        .unwrap()
        .audit()
        .recent(1000)
        .into_iter()
        .filter(|e| e.event == "mcp.tool_called")
        .map(|e| {
            (
                e.client_id.map(|c| c.into_owned()),
                e.sub.map(|s| s.into_owned()),
                e.tool.map(|t| t.into_owned()),
            )
        })
        .collect()
}

fn listed(v: &Value) -> Vec<&str> {
    v["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn typescript_sdk_client_credentials() {
    let Some(node) = node_with_sdk() else { return };
    let stack = start().await;
    let out = run(
        &node,
        &[
            &script("ts-sdk-flow.mjs"),
            stack.mcp_url(),
            "--issuer",
            stack.issuer(),
            "--flow",
            "client_credentials",
        ],
    )
    .await;
    assert_eq!(out["sdk"], "@modelcontextprotocol/sdk 1.32.2");
    let cc = &out["client_credentials"];
    assert_eq!(cc["ok"], true, "{out}");
    assert!(listed(cc).contains(&"get_customer_info"), "{out}");
    assert_eq!(
        tool_calls(&stack),
        [(
            Some("mcp-secure-client".to_owned()),
            None,
            Some("get_customer_info".to_owned())
        )]
    );
}

#[tokio::test]
async fn typescript_sdk_authorization_code_with_registration() {
    let Some(node) = node_with_sdk() else { return };
    let stack = start().await;
    let out = run(
        &node,
        &[
            &script("ts-sdk-flow.mjs"),
            stack.mcp_url(),
            "--issuer",
            stack.issuer(),
            "--flow",
            "authorization_code",
        ],
    )
    .await;
    let ac = &out["authorization_code"];
    assert_eq!(ac["ok"], true, "{out}");
    assert!(listed(ac).contains(&"get_customer_info"), "{out}");
    // Login, consent, then the redirect with the code (no step skipped).
    assert_eq!(
        ac["steps"].as_array().and_then(|s| s.first()),
        Some(&Value::from("login")),
        "{out}"
    );
    assert!(
        ac["steps"]
            .as_array()
            .is_some_and(|s| s.contains(&Value::from("consent"))),
        "{out}"
    );
    assert_eq!(ac["refresh_token"], true, "{out}");
    // The mcp-server saw alice, through the client the SDK registered.
    let client_id = ac["client_id"].as_str().unwrap().to_owned();
    assert_ne!(client_id, "mcp-secure-client");
    assert_eq!(
        tool_calls(&stack),
        [(
            Some(client_id),
            Some("alice".to_owned()),
            Some("get_customer_info".to_owned())
        )]
    );
}

#[tokio::test]
async fn python_sdk_metadata_and_client_credentials() {
    let Some(python) = python_with_sdk() else {
        return;
    };
    let stack = start().await;
    let out = run(
        &python,
        &[
            &script("python_sdk_check.py"),
            stack.issuer(),
            stack.mcp_url(),
        ],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["sdk"], "mcp 2.3.0");
    assert_eq!(out["metadata"]["issuer"], stack.issuer());
    assert_eq!(
        out["metadata"]["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert!(
        listed(&out["client_credentials"]).contains(&"get_customer_info"),
        "{out}"
    );
    assert_eq!(
        tool_calls(&stack),
        [(
            Some("mcp-secure-client".to_owned()),
            None,
            Some("get_customer_info".to_owned())
        )]
    );
}
