//! Both clients complete their demo conversation (fake LLM) over HTTPS
//! through nginx, trusting only the CA that scripts/generate-local-certs.sh
//! made (openssl path).
//!
//! The clients run in-process through their libraries — the same code the
//! binaries run (`client_core::cli` does exactly these steps), with the
//! variables handed over as a map instead of the process environment.

use std::path::Path;
use std::process::Command;

use client_core::agent::{Agent, Conversation};
use client_core::cli::DEMO_QUERIES;
use client_core::llm::LlmHttp;
use client_core::tls::TrustStore;
use client_core::transcript::Transcript;
use client_core::{ChatModel, ClientConfig, McpClient, RetryPolicy};
use serde_json::json;
use testkit::llm::{Api, FakeLlm, Reply};
use testkit::pki::PkiFiles;

use crate::helpers::{Opts, ReplicaExt as _, Stack, repo_root};

/// The model's script for the three demo queries: one tool call each, then
/// an answer quoting the results.
fn demo_script() -> Vec<Reply> {
    vec![
        Reply::tool("get_customer_info", json!({"customer_id": "12345"})),
        Reply::text("Customer: {results}"),
        Reply::tool(
            "create_support_ticket",
            json!({"customer_id": "67890", "subject": "Billing issues",
                   "description": "Customer reports billing issues.", "priority": "high"}),
        ),
        Reply::text("Ticket: {results}"),
        Reply::tool(
            "calculate_account_value",
            json!({"customer_id": "12345", "amounts": [150, 300, 89]}),
        ),
        Reply::text("Value: {results}"),
    ]
}

fn script_certs(dir: &Path) -> PkiFiles {
    let out = Command::new(repo_root().join("scripts/generate-local-certs.sh"))
        .env("CERTS_DIR", dir)
        .env("SECURE_MCP_CERTS_NO_MKCERT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate-local-certs.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PkiFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    }
}

async fn demo_through_nginx(api: Api) {
    if crate::tools::openssl().is_none() {
        return;
    }
    let certs_dir = tempfile::tempdir().unwrap();
    let Some(stack) = Stack::start_with(Opts {
        certs: Some(script_certs(certs_dir.path())),
        ..Opts::default()
    })
    .await
    else {
        return;
    };
    let key = "sk-e2e-test";
    let fake = FakeLlm::start(api, key, demo_script()).await;
    let (client_id, secret, key_var, base_var) = match api {
        Api::OpenAi => (
            "openai-mcp-client",
            "openai-client-secret",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
        ),
        Api::Anthropic => (
            "anthropic-mcp-client",
            "anthropic-client-secret",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
        ),
    };
    let ca = stack.ca_pem().display().to_string();
    let base_url = fake.base_url();
    let resource = stack.resource.clone();
    let issuer = stack.issuer.clone();
    let vars = move |name: &str| -> Option<String> {
        Some(match name {
            "MCP_SERVER_URL" => resource.clone(),
            "OAUTH_ISSUER" => issuer.clone(),
            "OAUTH_CLIENT_ID" => client_id.to_owned(),
            "OAUTH_CLIENT_SECRET" => secret.to_owned(),
            "SSL_CERT_FILE" => ca.clone(),
            n if n == key_var => key.to_owned(),
            n if n == base_var => base_url.clone(),
            _ => return None,
        })
    };

    // What `openai-client` / `anthropic-client` (no subcommand) do.
    let trust = TrustStore::load(&client_core::config::ca_files(&vars)).unwrap();
    assert_eq!(trust.extra_count(), 1, "the script's CA is the extra root");
    let http = trust.http_client().unwrap();
    let llm = LlmHttp::new(http.clone(), RetryPolicy::default());
    let model: Box<dyn ChatModel> = match api {
        Api::OpenAi => Box::new(openai_client::OpenAiModel::new(
            openai_client::OpenAiConfig::from_vars(&vars).unwrap(),
            llm,
        )),
        Api::Anthropic => Box::new(anthropic_client::AnthropicModel::new(
            anthropic_client::AnthropicConfig::from_vars(&vars).unwrap(),
            llm,
        )),
    };
    let config = ClientConfig::from_vars(&vars).unwrap();
    let mcp = McpClient::connect_using(http, &config).await.unwrap();
    let tools = mcp.list_tools().await.unwrap();
    assert_eq!(tools.len(), 4);
    let out = Transcript::new(Box::new(std::io::sink()), false);
    let mut answers = Vec::new();
    for question in DEMO_QUERIES {
        let agent = Agent::new(model.as_ref(), &mcp, tools.clone(), 8, &out);
        answers.push(
            agent
                .ask(&mut Conversation::new(), question)
                .await
                .unwrap_or_else(|e| panic!("{api:?} demo query {question:?}: {e}")),
        );
    }
    mcp.close(std::time::Duration::from_secs(2)).await;

    fake.assert_valid();
    assert_eq!(fake.remaining(), 0, "the model's script was not used up");
    assert!(answers[0].contains("Alice Johnson"), "{}", answers[0]);
    assert!(answers[1].contains("TKT-"), "{}", answers[1]);
    assert!(answers[2].contains("539"), "{}", answers[2]);
    // The tool calls went through nginx to the replicas.
    let calls: usize = stack.replicas().iter().map(|r| r.tool_calls()).sum();
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn openai_client_demo_over_https_through_nginx() {
    demo_through_nginx(Api::OpenAi).await;
}

#[tokio::test]
async fn anthropic_client_demo_over_https_through_nginx() {
    demo_through_nginx(Api::Anthropic).await;
}
