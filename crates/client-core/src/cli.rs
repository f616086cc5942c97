//! The command line both client binaries share (DESIGN.md §7):
//!
//! ```text
//! openai-client                 the three demo queries
//! openai-client ask "…"         one question
//! openai-client chat            a conversation (REPL)
//! openai-client tools           tools and their scopes (no LLM key needed)
//! openai-client call NAME JSON  one direct tool call (no LLM key needed)
//! openai-client login           a person signs in (browser, authorization code + PKCE)
//! openai-client logout          revoke and forget that login
//! ```
//!
//! Credentials: a machine client's `OAUTH_CLIENT_SECRET` / `OAUTH_CLIENT_KEY_FILE`
//! when set (client_credentials), else the person's stored login.
//!
//! `--json` prints a machine-readable transcript (JSON lines). Failures are
//! one line on stderr naming the fix; exit code 2 for configuration, 1 for
//! everything else.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::agent::{Agent, AgentError, ChatModel, Conversation};
use crate::config::{self, ClientConfig, ConfigError, Env, LoginConfig};
use crate::llm::LlmHttp;
use crate::login::{self, LoginError};
use crate::mcp::{McpClient, McpError};
use crate::retry::RetryPolicy;
use crate::tls::{TlsError, TrustStore};
use crate::transcript::{Transcript, one_line};

/// The demo queries of the original clients (IDs valid for the seeded store).
pub const DEMO_QUERIES: [&str; 3] = [
    "Look up customer 12345 and tell me their account status and any open tickets.",
    "Create a high-priority support ticket for customer 67890 about billing issues.",
    "Calculate the total account value for customer 12345 with purchases: $150, $300, $89.",
];

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print a machine-readable transcript: one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Most model turns for one question.
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_turns: u16,
}

/// What to do (no subcommand: the three demo queries).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask one question and print the tool calls and the answer.
    Ask {
        /// The question.
        question: String,
    },
    /// Talk to the model; the conversation is kept between questions.
    Chat,
    /// List the MCP tools and the scopes each needs (no LLM key needed).
    Tools,
    /// Call one MCP tool directly (no LLM key needed).
    Call {
        /// Tool name, e.g. get_customer_info.
        name: String,
        /// Arguments as a JSON object, e.g. '{"customer_id":"12345"}'.
        #[arg(default_value = "{}")]
        arguments: String,
    },
    /// Sign in as a person (opens the browser; authorization code + PKCE).
    /// The login is kept in the OS keyring (or a 0600 file) until `logout`.
    Login {
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Scopes to ask for, space separated (default: what the MCP server
        /// says it needs, else OAUTH_SCOPES).
        #[arg(long)]
        scope: Option<String>,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=3600))]
        timeout: u64,
    },
    /// Revoke the stored login at the authorization server and delete it.
    Logout,
    /// Client runner for the MCP conformance suite (server URL last).
    #[command(hide = true)]
    Conformance {
        /// The MCP server URL the suite started.
        server_url: String,
    },
}

/// One provider's model, built from its environment variables.
pub trait ModelFactory: Send + Sync {
    /// Reads the provider's variables (API key, base URL, model) and builds
    /// the model on the shared HTTP layer.
    fn build(&self, http: LlmHttp) -> Result<Box<dyn ChatModel>, ConfigError>;
}

/// A failure of one CLI run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Mcp(#[from] McpError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("{0}")]
    Usage(String),
    #[error("the tool reported an error: {0}")]
    ToolFailed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// 2 for configuration and usage mistakes, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Tls(_) | Self::Usage(_) | Self::Mcp(McpError::Config(_)) => 2,
            Self::Login(e) if e.is_config() => 2,
            _ => 1,
        }
    }
}

/// Entry point of both binaries.
pub fn main(factory: &dyn ModelFactory) -> ExitCode {
    let cli = Cli::parse();
    // `.env` first, so OTEL_* there count too (a bad file is reported by `run`).
    let _ = config::load_dotenv();
    let _trace = init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One span per command: with traces on, every request it makes (token,
    // discovery, MCP) belongs to this trace.
    let span = tracing::info_span!("command", command = command_name(cli.command.as_ref()));
    let result = runtime.block_on(tracing::Instrument::instrument(run(cli, factory), span));
    // Open SSE streams and idle connections must not hold the process.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// This binary's name (`openai-client`, `anthropic-client`), for messages
/// that name a command to run.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| s.ends_with("-client"))
        .unwrap_or_else(|| "openai-client".to_owned())
}

/// The span name of a command (bounded: never its arguments).
fn command_name(command: Option<&Command>) -> &'static str {
    match command {
        None => "demo",
        Some(Command::Ask { .. }) => "ask",
        Some(Command::Chat) => "chat",
        Some(Command::Tools) => "tools",
        Some(Command::Call { .. }) => "call",
        Some(Command::Login { .. }) => "login",
        Some(Command::Logout) => "logout",
        Some(Command::Conformance { .. }) => "conformance",
    }
}

/// Logs on stderr (`RUST_LOG`, default warnings) and, with
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, traces ([`crate::trace`]); the guard
/// flushes the last spans when `main` returns.
fn init_tracing() -> crate::trace::TraceGuard {
    // rmcp logs its own view of failures we already report in one line.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=off"));
    let service = crate::trace::service_name(|n| std::env::var(n).ok(), &program_name());
    crate::trace::init(filter, service.as_deref())
}

/// Runs one CLI invocation.
pub async fn run(cli: Cli, factory: &dyn ModelFactory) -> Result<(), CliError> {
    config::load_dotenv()?;
    let out = Transcript::stdout(cli.json);
    let max_turns = usize::from(cli.max_turns);
    match cli.command {
        Some(Command::Login {
            no_browser,
            scope,
            timeout,
        }) => {
            let mut config = LoginConfig::from_vars(&Env)?;
            if let Some(scope) = scope {
                config.scopes = Some(config::parse_scopes("--scope", &scope)?);
            }
            let http = TrustStore::load(&config::ca_files(&Env))?.http_client()?;
            let store = crate::store::open(&Env)?;
            let browser = login::Browser::bind(!no_browser, Duration::from_secs(timeout)).await?;
            let configured = login::configured_client(&Env)?;
            let stored = login::login(http, &config, configured, store.clone(), &browser).await?;
            out.line(
                &format!(
                    "Logged in at {} for {} (scope: {}). The login is kept in {}; `logout` revokes it.",
                    stored.issuer,
                    config.mcp_url,
                    stored.scope.as_deref().unwrap_or("the server's default"),
                    store.describe()
                ),
                json!({"event": "login", "issuer": stored.issuer, "resource": stored.resource,
                       "client_id": stored.client_id, "scope": stored.scope, "store": store.describe()}),
            );
            Ok(())
        }
        Some(Command::Logout) => {
            let config = LoginConfig::from_vars(&Env)?;
            let http = TrustStore::load(&config::ca_files(&Env))?.http_client()?;
            let store = crate::store::open(&Env)?;
            match login::logout(http, &config, store.clone()).await? {
                Some(stored) => out.line(
                    &format!(
                        "Logged out of {}: the refresh token is revoked and deleted from {}.",
                        stored.issuer,
                        store.describe()
                    ),
                    json!({"event": "logout", "issuer": stored.issuer, "revoked": true}),
                ),
                None => out.line(
                    &format!(
                        "Not logged in at {} for {}; nothing to do.",
                        config.issuer, config.mcp_url
                    ),
                    json!({"event": "logout", "issuer": config.issuer, "revoked": false}),
                ),
            }
            Ok(())
        }
        Some(Command::Tools) => {
            let http = TrustStore::load(&config::ca_files(&Env))?.http_client()?;
            let mcp = connect(http).await?;
            let result = print_tools(&mcp, &out).await;
            mcp.close(Duration::from_secs(2)).await;
            result
        }
        Some(Command::Call { name, arguments }) => {
            let arguments: Value = serde_json::from_str(&arguments).map_err(|e| {
                CliError::Usage(format!(
                    "the arguments are not valid JSON ({e}) — pass an object, e.g. '{{\"customer_id\":\"12345\"}}'"
                ))
            })?;
            if !arguments.is_object() {
                return Err(CliError::Usage(
                    "the arguments must be a JSON object, e.g. '{\"customer_id\":\"12345\"}'"
                        .into(),
                ));
            }
            let http = TrustStore::load(&config::ca_files(&Env))?.http_client()?;
            let mcp = connect(http).await?;
            let result = direct_call(&mcp, &name, arguments, &out).await;
            mcp.close(Duration::from_secs(2)).await;
            result
        }
        Some(Command::Conformance { server_url }) => crate::conformance::run(&server_url).await,
        Some(Command::Ask { question }) => {
            let session = LlmSession::start(factory).await?;
            let mut conversation = Conversation::new();
            let result = session
                .ask(&mut conversation, &question, max_turns, &out)
                .await;
            session.mcp.close(Duration::from_secs(2)).await;
            result
        }
        Some(Command::Chat) => {
            let session = LlmSession::start(factory).await?;
            let result = session.chat(max_turns, &out).await;
            session.mcp.close(Duration::from_secs(2)).await;
            result
        }
        None => {
            let session = LlmSession::start(factory).await?;
            let mut result = Ok(());
            for (i, q) in DEMO_QUERIES.iter().enumerate() {
                out.line(
                    &format!("\n=== Demo query {}/{}", i + 1, DEMO_QUERIES.len()),
                    json!({"event": "demo", "index": i + 1}),
                );
                let mut conversation = Conversation::new();
                if let Err(e) = session.ask(&mut conversation, q, max_turns, &out).await {
                    result = Err(e);
                    break;
                }
            }
            session.mcp.close(Duration::from_secs(2)).await;
            result
        }
    }
}

/// The MCP session of a CLI command: a machine client when its secret or
/// key is configured, else the person's stored login.
async fn connect(http: reqwest::Client) -> Result<McpClient, CliError> {
    if config::has_machine_credentials(&Env) {
        let config = ClientConfig::from_vars(&Env)?;
        return Ok(McpClient::connect_using(http, &config).await?);
    }
    let config = LoginConfig::from_vars(&Env)?;
    let store = crate::store::open(&Env)?;
    let tokens = login::session_tokens(http.clone(), &config, store).await?;
    Ok(McpClient::connect_with(http, tokens, &config.mcp_url, config.retry.clone()).await?)
}

struct LlmSession {
    model: Box<dyn ChatModel>,
    mcp: McpClient,
    tools: Vec<crate::mcp::ToolInfo>,
}

impl LlmSession {
    /// Provider config first (a missing API key is reported before any
    /// network traffic), then the MCP session and its tools.
    async fn start(factory: &dyn ModelFactory) -> Result<Self, CliError> {
        let trust = TrustStore::load(&config::ca_files(&Env))?;
        let http = trust.http_client()?;
        let model = factory.build(LlmHttp::new(http.clone(), RetryPolicy::default()))?;
        let mcp = connect(http).await?;
        let tools = mcp.list_tools().await?;
        tracing::debug!(model = %model.describe(), tools = tools.len(), "session ready");
        Ok(Self { model, mcp, tools })
    }

    async fn ask(
        &self,
        conversation: &mut Conversation,
        question: &str,
        max_turns: usize,
        out: &Transcript,
    ) -> Result<(), CliError> {
        out.question(question);
        let agent = Agent::new(
            self.model.as_ref(),
            &self.mcp,
            self.tools.clone(),
            max_turns,
            out,
        );
        agent.ask(conversation, question).await?;
        Ok(())
    }

    async fn chat(&self, max_turns: usize, out: &Transcript) -> Result<(), CliError> {
        eprintln!(
            "Chatting with {} ({} tools). Type a question; an empty line, 'exit' or Ctrl-D ends.",
            self.model.describe(),
            self.tools.len()
        );
        let mut conversation = Conversation::new();
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            eprint!("you> ");
            let _ = std::io::stderr().flush();
            let Some(line) = lines.next_line().await? else {
                break;
            };
            let line = line.trim();
            if line.is_empty() || line == "exit" || line == "quit" {
                break;
            }
            let agent = Agent::new(
                self.model.as_ref(),
                &self.mcp,
                self.tools.clone(),
                max_turns,
                out,
            );
            // A failed question ends that question, not the conversation.
            if let Err(e) = agent.ask(&mut conversation, line).await {
                out.error(&e.to_string());
            }
        }
        Ok(())
    }
}

async fn print_tools(mcp: &McpClient, out: &Transcript) -> Result<(), CliError> {
    let tools = mcp.list_tools().await?;
    let server = config::mcp_url(&Env)?;
    let client_id = mcp
        .tokens()
        .map_or("(anonymous)", crate::token::TokenSource::client_id);
    if out.is_json() {
        let list: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name, "title": t.title, "description": t.description,
                    "scopes": t.scopes, "read_only": t.read_only, "input_schema": t.input_schema,
                })
            })
            .collect();
        out.line(
            "",
            json!({"event": "tools", "server": server.as_str(),
                   "protocol": mcp.protocol_version(),
                   "client_id": client_id, "tools": list}),
        );
        return Ok(());
    }
    out.line(
        &format!(
            "{} tool{} on {} for client {}:",
            tools.len(),
            if tools.len() == 1 { "" } else { "s" },
            server,
            client_id
        ),
        Value::Null,
    );
    let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &tools {
        let scopes = if t.scopes.is_empty() {
            "(none listed)".to_owned()
        } else {
            t.scopes.join(" ")
        };
        out.line(
            &format!(
                "  {:width$}  scopes: {:18}  {}",
                t.name,
                scopes,
                one_line(&t.description, 80)
            ),
            Value::Null,
        );
    }
    Ok(())
}

async fn direct_call(
    mcp: &McpClient,
    name: &str,
    arguments: Value,
    out: &Transcript,
) -> Result<(), CliError> {
    out.line(
        &format!("[tool] {name} {arguments}"),
        json!({"event": "tool_call", "name": name, "arguments": arguments}),
    );
    let started = Instant::now();
    let outcome = mcp.call_tool(name, arguments).await?;
    let latency = started.elapsed().as_millis() as u64;
    let verdict = if outcome.is_error { "error" } else { "ok" };
    out.line(
        &format!("[tool] {name} -> {verdict} in {latency} ms:\n{}", outcome.text),
        json!({"event": "tool_result", "name": name, "outcome": verdict, "is_error": outcome.is_error,
               "latency_ms": latency, "content": outcome.text, "structured": outcome.structured}),
    );
    if outcome.is_error {
        return Err(CliError::ToolFailed(one_line(&outcome.text, 200)));
    }
    Ok(())
}
