//! The README's first command, `cargo run -p quickstart`: the whole job on a
//! fresh machine with only the Rust toolchain — no Docker, no API keys, no
//! files written outside a temporary directory.
//!
//! 1. starts the oauth-server and the mcp-server in this process on free
//!    loopback ports through `stack`, on embedded defaults: in-memory
//!    stores, a freshly generated signing key, the dev clients of
//!    `config/clients.toml` (compiled in);
//! 2. runs a client session with `client-core` exactly as the client
//!    binaries do: discovery from the MCP server's metadata, a
//!    client_credentials token, the tool list with each tool's scopes, real
//!    tool calls (and what a bad argument and a missing token look like);
//! 3. stops both servers gracefully and exits 0.
//!
//! With `OPENAI_API_KEY` and/or `ANTHROPIC_API_KEY` set (environment or
//! `.env`), step 2 continues with the clients' three demo queries through
//! that provider's tool-calling loop (`OPENAI_BASE_URL`/`OPENAI_MODEL` etc.
//! are honoured, as by the client binaries).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use client_core::agent::{Agent, Conversation};
use client_core::cli::{DEMO_QUERIES, ModelFactory};
use client_core::config::Env;
use client_core::config::Vars as _;
use client_core::llm::LlmHttp;
use client_core::tls::TrustStore;
use client_core::transcript::Transcript;
use client_core::{ClientConfig, McpClient, RetryPolicy};
use serde_json::{Value, json};
use stack::Stack;

/// The dev client the session uses (config/clients.toml, public dev secret).
pub const CLIENT_ID: &str = stack::OPENAI_CLIENT.0;
const CLIENT_SECRET: &str = stack::OPENAI_CLIENT.1;

/// Runs the quickstart, printing as it goes.
pub async fn run() -> anyhow::Result<()> {
    client_core::config::load_dotenv().context(".env")?;
    println!(
        "secure-mcp quickstart — a local stack on embedded defaults (no Docker, no API keys)\n"
    );
    let mut stack = start().await?;
    println!("  authorization server  {}", stack.issuer());
    println!("  MCP server            {}", stack.mcp_url());
    let outcome = session(&stack).await;
    if let Err(e) = stack.stop().await {
        eprintln!("quickstart: {e:#}");
    }
    outcome?;
    println!("\nBoth servers stopped cleanly.");
    println!("Next: `task up` runs them on :8080/:8000 for the clients (`openai-client tools`,");
    println!(
        "`openai-client` with OPENAI_API_KEY set); `task up-tls` or `docker compose up` puts nginx/TLS in front."
    );
    Ok(())
}

/// Both servers, in this process, on free loopback ports (`stack`'s
/// defaults: in-memory stores, a fresh signing key, the dev clients of
/// `config/clients.toml`, compiled in so the command works from any
/// directory).
async fn start() -> anyhow::Result<Stack> {
    // The documented default (60/min, burst 10, a tool call costs 2) would
    // make this scripted burst of calls wait for its budget.
    let policy = ratelimit::Policy::new(600, 100)?;
    Stack::builder()
        .mcp_config(move |c| c.rate_limit.policy = policy)
        .start()
        .await
        .context("starting the authorization server and the MCP server")
}

/// The client's side: what `openai-client tools` / `call` do, in one go.
async fn session(stack: &Stack) -> anyhow::Result<()> {
    let resource = stack.mcp_url().to_owned();
    let vars = move |name: &str| -> Option<String> {
        match name {
            "MCP_SERVER_URL" => Some(resource.clone()),
            "OAUTH_CLIENT_ID" => Some(CLIENT_ID.to_owned()),
            "OAUTH_CLIENT_SECRET" => Some(CLIENT_SECRET.to_owned()),
            _ => None,
        }
    };
    let config = ClientConfig::from_vars(&vars).context("client configuration")?;
    // Public roots plus SSL_CERT_FILE/MCP_CA_CERT: the LLM APIs may sit
    // behind a TLS-inspecting proxy.
    let http = TrustStore::load(&client_core::config::ca_files(&Env))
        .context("SSL_CERT_FILE / MCP_CA_CERT")?
        .http_client()
        .context("HTTP client")?;

    println!("\n1. An unauthenticated request is refused with a challenge:");
    let resp = http
        .post(stack.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .context("unauthenticated probe")?;
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    println!("   {} — WWW-Authenticate: {challenge}", resp.status());

    println!(
        "\n2. {CLIENT_ID} discovers the authorization server, gets a token (client_credentials)"
    );
    println!("   and opens an MCP session:");
    let mcp = McpClient::connect_using(http.clone(), &config)
        .await
        .context("MCP session")?;
    let mut result = calls(&mcp).await;
    if result.is_ok() {
        result = llm_demo(&mcp, http).await;
    }
    mcp.close(Duration::from_secs(2)).await;
    result
}

/// The clients' demo queries through each provider whose key is set.
async fn llm_demo(mcp: &McpClient, http: reqwest::Client) -> anyhow::Result<()> {
    let providers: [(&str, &str, &dyn ModelFactory); 2] = [
        ("OPENAI_API_KEY", "OpenAI", &openai_client::Factory),
        ("ANTHROPIC_API_KEY", "Anthropic", &anthropic_client::Factory),
    ];
    let mut ran = false;
    for (key_var, name, factory) in providers {
        if Env.get(key_var).is_none() {
            continue;
        }
        ran = true;
        println!("\n5. {key_var} is set: the demo queries through {name}'s tool-calling loop:");
        let model = factory
            .build(LlmHttp::new(http.clone(), RetryPolicy::default()))
            .with_context(|| format!("{name} configuration"))?;
        let tools = mcp.list_tools().await.context("tools/list")?;
        let out = Transcript::stdout(false);
        for question in DEMO_QUERIES {
            let agent = Agent::new(model.as_ref(), mcp, tools.clone(), 8, &out);
            agent
                .ask(&mut Conversation::new(), question)
                .await
                .with_context(|| format!("{name}: {question:?}"))?;
        }
    }
    if !ran {
        println!(
            "\n5. Set OPENAI_API_KEY or ANTHROPIC_API_KEY to run the model's tool-calling loop too."
        );
    }
    Ok(())
}

async fn calls(mcp: &McpClient) -> anyhow::Result<()> {
    let tools = mcp.list_tools().await.context("tools/list")?;
    let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &tools {
        println!("   {:width$}  needs {}", t.name, t.scopes.join(" "));
    }

    println!("\n3. Tool calls:");
    let calls: [(&str, Value); 4] = [
        ("get_customer_info", json!({"customer_id": "12345"})),
        (
            "create_support_ticket",
            json!({"customer_id": "67890", "subject": "Billing question",
                   "description": "Charged twice in November.", "priority": "high"}),
        ),
        (
            "calculate_account_value",
            json!({"customer_id": "12345", "amounts": [150.0, 300.0, 89.0]}),
        ),
        ("get_recent_customers", json!({"limit": 3})),
    ];
    for (name, args) in calls {
        let out = mcp
            .call_tool(name, args.clone())
            .await
            .with_context(|| format!("calling {name}"))?;
        if out.is_error {
            anyhow::bail!("{name} reported an error: {}", out.text);
        }
        println!("   {name}({args})\n     → {}", summary(&out.text));
    }

    println!("\n4. Arguments are validated; the error tells the model what to fix:");
    let bad = mcp
        .call_tool("get_customer_info", json!({"customer_id": "not valid!"}))
        .await
        .context("calling get_customer_info with a bad id")?;
    anyhow::ensure!(bad.is_error, "a malformed customer id was accepted");
    println!(
        "   get_customer_info({{\"customer_id\":\"not valid!\"}})\n     → {}",
        summary(&bad.text)
    );
    Ok(())
}

/// The first ~160 characters of a result, on one line.
fn summary(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (i, c) in one_line.chars().enumerate() {
        if i == 160 {
            let _ = write!(out, "…");
            break;
        }
        out.push(c);
    }
    out
}
