//! CI's smoke test of the README's first Quickstart command: the binary
//! `cargo run -p quickstart` runs, started from an empty directory (no .env,
//! no keys, no config — as in a fresh clone's checkout elsewhere) without
//! any provider key, must finish successfully within a time limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs the quickstart binary from an empty directory with the client/LLM
/// variables cleared and `extra` set; (stdout, stderr) after a successful exit.
fn run_quickstart(cwd: &std::path::Path, extra: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    cmd.current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "MCP_SERVER_URL",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "OAUTH_TOKEN_URL",
        "REDIS_URL",
        "SSL_CERT_FILE",
        "MCP_CA_CERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(extra.iter().copied());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("quickstart did not finish within {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "quickstart failed ({status}):\n{stdout}\n--- stderr ---\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn quickstart_runs_the_whole_job_and_stops_cleanly() {
    let cwd = tempfile::tempdir().unwrap();
    let (stdout, _) = run_quickstart(cwd.path(), &[]);
    for expected in [
        "401 Unauthorized — WWW-Authenticate: Bearer resource_metadata=",
        "get_customer_info        needs customer:read",
        "create_support_ticket    needs ticket:create",
        "calculate_account_value  needs account:calculate",
        // Key order depends on serde_json's features in the build; check each.
        "\"total\":539.0",
        "\"tier\":\"bronze\"",
        "Invalid input: customer_id must be",
        "signs in as alice / alice-dev-password",
        "a token for sub=alice client_id=claude-desktop-client",
        "scope customer:read ticket:create (what was asked",
        "get_customer_info as alice → ",
        "refresh: a new access token and a new refresh token",
        "Set OPENAI_API_KEY or ANTHROPIC_API_KEY",
        "Both servers stopped cleanly.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Nothing was written where it ran.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_provider_key_the_demo_queries_run_through_the_model() {
    use serde_json::json;
    use testkit::llm::{FakeLlm, Reply};

    let fake = FakeLlm::openai(
        "sk-quickstart",
        vec![
            Reply::tool("get_customer_info", json!({"customer_id": "12345"})),
            Reply::text("Customer: {results}"),
            Reply::tool(
                "create_support_ticket",
                json!({"customer_id": "67890", "subject": "Billing issues",
                       "description": "Billing issues.", "priority": "high"}),
            ),
            Reply::text("Ticket: {results}"),
            Reply::tool(
                "calculate_account_value",
                json!({"customer_id": "12345", "amounts": [150, 300, 89]}),
            ),
            Reply::text("Value: {results}"),
        ],
    )
    .await;
    let cwd = tempfile::tempdir().unwrap();
    let base = fake.base_url();
    let dir = cwd.path().to_owned();
    let (stdout, _) = tokio::task::spawn_blocking(move || {
        run_quickstart(
            &dir,
            &[
                ("OPENAI_API_KEY", "sk-quickstart"),
                ("OPENAI_BASE_URL", &base),
            ],
        )
    })
    .await
    .unwrap();
    fake.assert_valid();
    assert_eq!(fake.remaining(), 0, "{stdout}");
    assert!(stdout.contains("OPENAI_API_KEY is set"), "{stdout}");
    assert!(stdout.contains("Alice Johnson"), "{stdout}");
    assert!(stdout.contains("Both servers stopped cleanly."), "{stdout}");
}
