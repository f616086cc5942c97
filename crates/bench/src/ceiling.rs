//! Physical ceilings measured in the same run: JWT sign/verify throughput
//! with pre-parsed keys (one thread and all cores), a bare axum handler
//! answering a body of the same size as the scenario under test, and rmcp
//! alone in a child process ([`RmcpAlone`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use auth::claims::{AccessTokenClaims, Audience};
use auth::keys::{Algorithm, SigningKey};
use auth::scope::ScopeSet;
use bytes::Bytes;

fn claims() -> AccessTokenClaims {
    let now = auth::now_unix();
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "bench-client".into(),
        aud: Audience::One("http://localhost:8000/mcp".into()),
        client_id: "bench-client".into(),
        scope: ScopeSet::parse("customer:read ticket:create").unwrap_or_default(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
    }
}

/// Runs `op` on `threads` OS threads for `dur`; returns total ops/s.
fn throughput(threads: usize, dur: Duration, op: Arc<dyn Fn() + Send + Sync>) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let op = op.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < dur {
                    for _ in 0..16 {
                        op();
                    }
                    n += 16;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// (sign 1 thread, sign all cores, verify 1 thread, verify all cores) ops/s.
pub fn sign_verify(alg: Algorithm, cores: usize, dur: Duration) -> anyhow::Result<[f64; 4]> {
    let key = Arc::new(SigningKey::generate(alg)?);
    let vk = Arc::new(key.verifying_key()?);
    let c = claims();
    let token = auth::jwt::sign(&key, "at+jwt", &c)?;
    let (k1, c1) = (key.clone(), c.clone());
    let sign: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        let _ = auth::jwt::sign(&k1, "at+jwt", &c1);
    });
    let verify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Ok(u) = auth::jwt::Unverified::parse(&token) {
            let _ = u.verify::<AccessTokenClaims>(&vk);
        }
    });
    Ok([
        throughput(1, dur, sign.clone()),
        throughput(cores, dur, sign),
        throughput(1, dur, verify.clone()),
        throughput(cores, dur, verify),
    ])
}

/// A bare axum server (own runtime, `cores` workers) answering every request
/// with `body`; returns its address. Runs until the process exits.
pub fn bare_axum(body: Bytes, cores: usize) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            let app = axum::Router::new().fallback(move || {
                let body = body.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(addr)
}

/// The hidden first argument that makes the bench binary serve rmcp alone
/// ([`serve_bare_rmcp`]) instead of benchmarking.
pub const SERVE_RMCP_ALONE: &str = "__serve-rmcp-alone";

/// The MCP framework alone, as a child process like every server we
/// measure: the bench binary again, serving [`serve_bare_rmcp`] on
/// `127.0.0.1:0` with the servers' runtime (`#[tokio::main]`, one worker per
/// core). In the bench's own process it shared a process, an allocator and
/// the scheduler's accounting with the generator, and its CPU could not be
/// metered apart, so "% of rmcp alone" compared unlike things. Killed on
/// drop; it also exits when its stdin closes (the bench died).
pub struct RmcpAlone {
    child: std::process::Child,
    addr: SocketAddr,
}

impl RmcpAlone {
    /// Starts the child and waits for the `port N` line it prints once
    /// listening.
    pub fn spawn() -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};

        let exe = std::env::current_exe().context("locating the bench executable")?;
        let mut child = Command::new(exe)
            .arg(SERVE_RMCP_ALONE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the rmcp-alone child")?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse::<u16>().ok());
        match (read, port) {
            (Some(Ok(_)), Some(port)) => Ok(Self {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the rmcp-alone child did not report its port (said {line:?})")
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RmcpAlone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side of [`RmcpAlone`]: rmcp's streamable HTTP service with
/// the same configuration as mcp-server (legacy sessions on, JSON
/// responses) and one tool that returns a fixed record of the same shape as
/// `get_customer_info`, with no middleware, no token, no scope, no limiter,
/// no audit — what a `tools/call` costs before any of our work. Prints
/// `port N` when listening; returns when stdin closes.
pub async fn serve_bare_rmcp() -> anyhow::Result<()> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true);
    let service = StreamableHttpService::new(
        || Ok(BareHandler),
        std::sync::Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().route_service("/mcp", service);
    // As mcp-server does: without it a session's small JSON answers
    // wait for Nagle + delayed ACK (~40 ms each).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "port {port}")?;
        out.flush()?;
    }
    // A plain thread (tokio's stdin needs a feature the workspace does not
    // build): EOF on stdin means the bench is gone.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    tokio::select! {
        served = axum::serve(listener, app) => served?,
        _ = closed_rx => {}
    }
    Ok(())
}

static BARE_TOOL: std::sync::LazyLock<rmcp::model::Tool> = std::sync::LazyLock::new(|| {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"customer_id": {"type": "string"}},
        "required": ["customer_id"],
    });
    let schema = match schema {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    rmcp::model::Tool::new(
        "get_customer_info",
        "Look up one customer by id.",
        Arc::new(schema),
    )
});

#[derive(Clone)]
struct BareHandler;

impl rmcp::ServerHandler for BareHandler {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _ctx: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        Ok(rmcp::model::ListToolsResult::with_all_items(vec![
            BARE_TOOL.clone(),
        ]))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        (name == BARE_TOOL.name).then(|| BARE_TOOL.clone())
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        _ctx: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let id = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("customer_id"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let record = serde_json::json!({
            "customer": {
                "id": id,
                "name": "Acme Corporation",
                "email": "contact@acme.example",
                "tier": "enterprise",
                "status": "active",
                "last_activity": 1_790_000_000,
            },
            "tickets": [],
        });
        Ok(rmcp::model::CallToolResult::structured(record).into())
    }
}
