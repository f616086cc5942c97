//! The client binaries link no server code: no Redis client, no axum, no
//! rmcp server side (issue 10). Checked on the resolved graph of each
//! binary's normal dependencies (`cargo tree -e normal`), the graph that is
//! actually compiled into it.

#![allow(clippy::expect_used)]

use std::process::Command;

fn normal_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            package,
            "-e",
            "normal,features",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn assert_client_only(package: &str) {
    let tree = normal_tree(package);
    assert!(
        tree.contains("client-core v"),
        "{package}: unexpected tree:\n{tree}"
    );
    assert!(
        tree.contains("rmcp feature \"client\""),
        "{package}: the MCP client is expected"
    );
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(
            !matches!(
                name,
                "redis" | "axum" | "server-kit" | "oauth-server" | "mcp-server"
            ),
            "{package} links {line}"
        );
        assert!(
            !(name == "rmcp"
                && (line.contains("feature \"server\"") || line.contains("http-server"))),
            "{package} enables an rmcp server feature: {line}"
        );
    }
}

#[test]
fn openai_client_links_no_server_code() {
    assert_client_only("openai-client");
}

#[test]
fn anthropic_client_links_no_server_code() {
    assert_client_only("anthropic-client");
}
