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
//! 3. signs a person in as an MCP host does: the authorization URL, the dev
//!    user `alice` at the login and consent pages (driven headlessly by
//!    `stack::signin`), the code exchanged with PKCE for a user token, a
//!    tool call as alice, a refresh-token rotation;
//! 4. stops both servers gracefully and exits 0.
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
use stack::signin::{AuthorizeRequest, Decision, Person};

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
    let issuer = stack.issuer().to_owned();
    let vars = move |name: &str| -> Option<String> {
        match name {
            "MCP_SERVER_URL" => Some(resource.clone()),
            "OAUTH_ISSUER" => Some(issuer.clone()),
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
        result = person_signs_in(stack, &http).await;
    }
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
        println!("\n6. {key_var} is set: the demo queries through {name}'s tool-calling loop:");
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
            "\n6. Set OPENAI_API_KEY or ANTHROPIC_API_KEY to run the model's tool-calling loop too."
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

/// The public dev client an MCP host signs people in with (config/clients.toml).
pub const HOST_CLIENT: &str = "claude-desktop-client";
/// The dev user (config/users.toml; local use only).
pub const DEV_USER: (&str, &str) = ("alice", "alice-dev-password");
/// Where the host listens for the redirect (loopback, any port: RFC 8252).
const HOST_REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// What an MCP host (Claude Code, VS Code, Inspector) does for a person:
/// authorization code + PKCE through the login and consent pages, the code
/// exchanged for a user token, a tool call as that user, a refresh.
async fn person_signs_in(stack: &Stack, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n5. A person signs in (authorization code + PKCE), as an MCP host does:");
    let request = AuthorizeRequest::new(HOST_CLIENT, HOST_REDIRECT)?
        .scope("customer:read ticket:create")
        .resource(stack.mcp_url());
    let url = request.url(stack.issuer())?;
    println!("   the host opens {url}");
    println!(
        "   and the person signs in as {} / {} (dev user) and approves",
        DEV_USER.0, DEV_USER.1
    );
    let mut person = Person::new(DEV_USER.0, DEV_USER.1)?;
    let back = person.authorize(&url, Decision::Approve).await?;
    let code = back.code.clone().with_context(|| {
        format!(
            "no code in the redirect {} (error {:?})",
            back.location, back.error
        )
    })?;
    anyhow::ensure!(
        back.state.as_deref() == Some(request.state.as_str()),
        "the redirect's state does not match the request's"
    );
    anyhow::ensure!(
        back.iss.as_deref() == Some(stack.issuer()),
        "the redirect's iss is not the issuer (RFC 9207)"
    );
    println!("   → {HOST_REDIRECT}?code=…&state=…&iss={}", stack.issuer());

    let token = token_request(
        http,
        stack,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", HOST_CLIENT),
            ("code", &code),
            ("redirect_uri", HOST_REDIRECT),
            ("code_verifier", &request.pkce.verifier),
            ("resource", stack.mcp_url()),
        ],
    )
    .await
    .context("exchanging the code")?;
    let access = token["access_token"].as_str().context("access_token")?;
    let refresh = token["refresh_token"].as_str().context("refresh_token")?;
    let claims = jwt_claims(access)?;
    println!(
        "   the host exchanges the code (no secret: PKCE proves it): a token for sub={} client_id={}",
        claims["sub"].as_str().unwrap_or("?"),
        claims["client_id"].as_str().unwrap_or("?")
    );
    println!(
        "   scope {} (what was asked ∩ what the client and the user may have), and a refresh token",
        token["scope"].as_str().unwrap_or("?")
    );

    let text = call_as(
        http,
        stack.mcp_url(),
        access,
        "get_customer_info",
        json!({"customer_id": "12345"}),
    )
    .await?;
    println!(
        "   get_customer_info as {} → {}",
        DEV_USER.0,
        summary(&text)
    );

    let renewed = token_request(
        http,
        stack,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", HOST_CLIENT),
            ("refresh_token", refresh),
        ],
    )
    .await
    .context("refreshing")?;
    anyhow::ensure!(
        renewed["refresh_token"]
            .as_str()
            .is_some_and(|r| r != refresh),
        "the refresh token was not rotated"
    );
    println!("   refresh: a new access token and a new refresh token (the old one is now spent)");
    Ok(())
}

/// POST /token; the JSON body of a 200, or an error with the OAuth error.
async fn token_request(
    http: &reqwest::Client,
    stack: &Stack,
    pairs: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let resp = http
        .post(stack.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let json: Value = resp.json().await.context("token response")?;
    anyhow::ensure!(
        status.is_success(),
        "token endpoint answered {status}: {} ({})",
        json["error"],
        json["error_description"]
    );
    Ok(json)
}

/// The claims of a JWT (display only: the MCP server verifies it).
fn jwt_claims(jwt: &str) -> anyhow::Result<Value> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// One `tools/call` on the 2026-07-28 stateless wire with a bearer token.
async fn call_as(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tool: &str,
    args: Value,
) -> anyhow::Result<String> {
    const V: &str = "2026-07-28";
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": tool, "arguments": args, "_meta": {
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "quickstart", "version": "1.0.0"},
    }}});
    let resp = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "MCP server answered {status}: {text}");
    // JSON, or one SSE `data:` event.
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text);
    let v: Value = serde_json::from_str(json.trim()).context("tools/call answer")?;
    anyhow::ensure!(v["result"]["isError"] != json!(true), "{tool} failed: {v}");
    Ok(v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
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
