//! The real `mcp-server` binary: configuration errors, `healthcheck`,
//! `LOG_FORMAT=json` (one JSON object per line, audit events included) and
//! graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-server");

fn command(dir: &std::path::Path, vars: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    // Empty environment (plus PATH/HOME) and a folder without .env: only what
    // the test sets, so a developer's settings cannot leak in.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .current_dir(dir);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("MCP_RESOURCE_URL", "ftp://x/mcp"),
        ("MCP_BIND", "nope"),
        ("MCP_ALLOWED_ORIGINS", "localhost"),
        ("LOG_FORMAT", "xml"),
    ] {
        let out = command(dir.path(), &[(var, value.to_owned())])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!("mcp-server: {var}: ")),
            "{stderr}"
        );
    }
}

/// Issue 13 item 8: a list that parses to nothing, or has a hole, would
/// switch off or weaken what it configures; each exits 2 with one line.
#[test]
fn lists_that_would_weaken_a_protection_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, line) in [
        (
            "MCP_ALLOWED_HOSTS",
            ",",
            "mcp-server: MCP_ALLOWED_HOSTS: entry 1 is empty in \",\": remove the extra comma, or unset the variable for its default",
        ),
        (
            "MCP_ALLOWED_HOSTS",
            "mcp.example.com,",
            "mcp-server: MCP_ALLOWED_HOSTS: entry 2 is empty in \"mcp.example.com,\": remove the extra comma, or unset the variable for its default",
        ),
        (
            "MCP_ALLOWED_ORIGINS",
            " , ",
            "mcp-server: MCP_ALLOWED_ORIGINS: entry 1 is empty in \" , \": remove the extra comma, or unset the variable for its default",
        ),
        (
            "TRUSTED_PROXIES",
            "10.0.0.0/8,,127.0.0.1",
            "mcp-server: TRUSTED_PROXIES: entry 2 is empty in \"10.0.0.0/8,,127.0.0.1\": remove the extra comma, or unset the variable to trust no proxy",
        ),
        (
            "REDIS_CLUSTER_NODES",
            "redis://127.0.0.1:7000,",
            "mcp-server: REDIS_CLUSTER_NODES: entry 2: is empty: remove the extra comma (expected redis://host:port, comma-separated)",
        ),
        (
            "REDIS_CLUSTER_NODES",
            "redis://:secret@127.0.0.1:7000,redis+unix:///tmp/r.sock",
            "mcp-server: REDIS_CLUSTER_NODES: entry 2: a cluster node must be a redis://host:port address",
        ),
        (
            "TRUSTED_PROXIES",
            "::/0",
            "mcp-server: TRUSTED_PROXIES: \"::/0\" trusts every address, so any client could choose its rate-limit key with X-Forwarded-For: name the proxies' own networks",
        ),
    ] {
        let out = command(dir.path(), &[(var, value.to_owned())])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value:?}: {stderr}");
        assert_eq!(stderr, format!("{line}\n"), "{var}={value:?}");
    }
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    // A bad environment does not stop `--help`: arguments are parsed first.
    let out = command(dir.path(), &[("MCP_RESOURCE_URL", "notaurl".to_owned())])
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    for line in [
        "MCP_BIND [default: 127.0.0.1:8000]",
        "MCP_RESOURCE_URL [default: http://localhost:8000/mcp]",
        "OAUTH_ISSUER [default: http://localhost:8080]",
        "RATE_LIMIT_PER_MINUTE [default: 60]",
        "RATE_LIMIT_BURST [default: 10]",
        "REVOCATION_FAILURE_MODE [default: closed]",
        "REDIS_URL [default: unset]",
        "LOG_FORMAT [default: text]",
    ] {
        assert!(lines.contains(&line), "{line:?} not in:\n{help}");
    }
    assert!(lines.iter().any(|l| l.starts_with("healthcheck")), "{help}");
    assert!(
        help.contains("Exit status: 0 ok, 1 runtime failure, 2 configuration error"),
        "{help}"
    );
}

#[test]
fn bad_values_exit_2_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, line) in [
        (
            "RATE_LIMIT_PER_MINUTE",
            "abc",
            "mcp-server: RATE_LIMIT_PER_MINUTE: expected a whole number from 1 to 60000000, got \"abc\"",
        ),
        (
            "MCP_RESOURCE_URL",
            "notaurl",
            "mcp-server: MCP_RESOURCE_URL: not a URL (relative URL without a base)",
        ),
        (
            "REVOCATION_FAILURE_MODE",
            "maybe",
            "mcp-server: REVOCATION_FAILURE_MODE: expected open or closed, got \"maybe\"",
        ),
    ] {
        for args in [&[][..], &["serve"], &["healthcheck"]] {
            let out = command(dir.path(), &[(var, value.to_owned())])
                .args(args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{var} {args:?}: {stderr}");
            assert_eq!(stderr, format!("{line}\n"), "{var} {args:?}");
        }
    }
    // The same from ./.env.
    std::fs::write(dir.path().join(".env"), "RATE_LIMIT_BURST=0\n").unwrap();
    let out = command(dir.path(), &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mcp-server: RATE_LIMIT_BURST: "),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["frobnicate"][..],
        &["--no-such-flag"],
        &["serve", "extra"],
    ] {
        let out = command(dir.path(), &[]).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn serves_logs_json_and_stops_gracefully() {
    let app = spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let metrics_port = testkit::free_port();
    let vars = [
        ("MCP_BIND", format!("127.0.0.1:{port}")),
        // Not the default 9102: tests run in parallel.
        ("MCP_METRICS_BIND", format!("127.0.0.1:{metrics_port}")),
        ("MCP_RESOURCE_URL", RESOURCE.to_owned()),
        ("OAUTH_ISSUER", app.issuer.clone()),
        // The explicit JWKS URL (the in-process tests use RFC 8414 discovery).
        ("OAUTH_JWKS_URL", format!("{}/jwks", app.issuer)),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    // Not running yet: healthcheck fails.
    assert_eq!(
        command(dir.path(), &vars)
            .arg("healthcheck")
            .status()
            .unwrap()
            .code(),
        Some(1)
    );

    let mut child = command(dir.path(), &vars)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while command(dir.path(), &vars)
        .arg("healthcheck")
        .status()
        .unwrap()
        .code()
        != Some(0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "mcp-server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The metrics listener answers on its own port.
    let m = reply(
        app.http
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(m.status, 200, "{}", m.text);
    assert!(
        m.text
            .contains("securemcp_jwks_refreshes_total{outcome=\"ok\"} 1\n"),
        "{}",
        m.text
    );

    let url = format!("http://127.0.0.1:{port}/mcp");
    let r = reply(
        app.http
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    let token = app.secure_token().await;
    let r = reply(
        app.http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", V2026)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_customer_info")
            .body(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"12345"},
                    "_meta":{"io.modelcontextprotocol/protocolVersion":V2026,"io.modelcontextprotocol/clientCapabilities":{}}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // SIGTERM → graceful exit 0.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                return (status, stderr);
            }
            assert!(
                Instant::now() < deadline,
                "mcp-server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let (status, stderr) = output;
    assert_eq!(status.code(), Some(0), "{stderr}");

    // One JSON object per line, audit events among them, never the token.
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    assert_eq!(audit.len(), 2, "{stderr}");
    assert_eq!(audit[0]["event"], "mcp.token_rejected");
    assert_eq!(audit[0]["reason"], "missing_token");
    assert_eq!(audit[1]["event"], "mcp.tool_called");
    assert_eq!(audit[1]["client_id"], "mcp-secure-client");
    assert_eq!(audit[1]["tool"], "get_customer_info");
    assert_eq!(audit[1]["outcome"], "ok");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "mcp-server stopped"
                || l["message"] == "mcp-server stopped"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token));
}

/// With its stderr pipe closed (the reader of a pipeline died), the server
/// still logs, serves and stops on SIGTERM: a failed log write must never
/// panic the task that handles the signal.
#[tokio::test]
async fn stops_on_sigterm_with_a_closed_stderr() {
    let app = spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let metrics_port = testkit::free_port();
    let vars = [
        ("MCP_BIND", format!("127.0.0.1:{port}")),
        // Not the default 9102: tests run in parallel.
        ("MCP_METRICS_BIND", format!("127.0.0.1:{metrics_port}")),
        ("MCP_RESOURCE_URL", RESOURCE.to_owned()),
        ("OAUTH_ISSUER", app.issuer.clone()),
        ("RUST_LOG", "debug".to_owned()),
    ];
    let mut child = command(dir.path(), &vars)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    drop(child.stdout.take());
    let started = Instant::now();
    while command(dir.path(), &vars)
        .arg("healthcheck")
        .status()
        .unwrap()
        .code()
        != Some(0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "mcp-server did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Something to log (an audit event) after the pipe is gone.
    let r = app
        .http
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mcp-server did not stop on SIGTERM with a closed stderr");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
}
