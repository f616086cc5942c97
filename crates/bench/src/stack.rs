//! Starts the real stack for a scenario: oauth-server (+ Redis) + mcp-server
//! binaries on free ports, and a token for the bench client.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::load;
use crate::servers::{self, Server};

pub const BENCH_ID: &str = "bench-client";
pub const BENCH_SECRET: &str = "bench-secret-generated-0123456789abcdefghij";
pub const RESOURCE: &str = "http://localhost:8000/mcp";

/// Env that lifts every rate limit far above what one machine can send.
pub const UNLIMITED: [(&str, &str); 4] = [
    ("OAUTH_RATE_LIMIT_PER_MINUTE", "60000000"),
    ("OAUTH_RATE_LIMIT_BURST", "1000000"),
    ("RATE_LIMIT_PER_MINUTE", "60000000"),
    ("RATE_LIMIT_BURST", "1000000"),
];

pub struct Stack {
    pub oauth: Server,
    pub mcp: Option<Server>,
    /// Kept alive for the scenario (killed on drop).
    _redis: Option<testkit::RedisServer>,
    pub token: Option<String>,
    _dir: tempfile::TempDir,
}

fn registry() -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(BENCH_SECRET.as_bytes());
    let hash: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "[[client]]\nclient_id = \"{BENCH_ID}\"\nsecret_hash = \"sha256:{hash}\"\n\
         allowed_scopes = [\"customer:read\", \"ticket:create\"]\ndefault_scopes = [\"customer:read\", \"ticket:create\"]\n\
         allowed_resources = [\"{RESOURCE}\"]\n"
    )
}

pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BENCH_ID}:{BENCH_SECRET}"))
    )
}

/// oauth-server with `alg`; with `mcp`, also an mcp-server and a token.
pub async fn start(alg: &str, mcp: bool, redis: bool) -> anyhow::Result<Stack> {
    let dir = tempfile::tempdir()?;
    let clients = dir.path().join("clients.toml");
    std::fs::write(&clients, registry())?;
    let redis = if redis {
        Some(testkit::RedisServer::start().context("redis-server is needed for this scenario")?)
    } else {
        None
    };
    let mut shared: Vec<(&str, String)> = UNLIMITED
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    if let Some(r) = &redis {
        shared.push(("REDIS_URL", r.url()));
    }
    let oport = testkit::free_port();
    let oaddr = SocketAddr::from(([127, 0, 0, 1], oport));
    let issuer = format!("http://127.0.0.1:{oport}");
    let mut env = shared.clone();
    env.extend([
        ("OAUTH_BIND", oaddr.to_string()),
        ("OAUTH_ISSUER", issuer.clone()),
        (
            "OAUTH_KEYS_DIR",
            dir.path().join("keys").display().to_string(),
        ),
        ("OAUTH_CLIENTS_FILE", clients.display().to_string()),
        ("OAUTH_SIGNING_ALG", alg.to_owned()),
        ("OAUTH_RESOURCES", RESOURCE.to_owned()),
    ]);
    let oauth = servers::spawn(
        "oauth-server",
        &servers::binary("oauth-server")?,
        &env,
        oaddr,
    )
    .await?;
    let mut stack = Stack {
        oauth,
        mcp: None,
        _redis: redis,
        token: None,
        _dir: dir,
    };
    if !mcp {
        return Ok(stack);
    }
    stack.token = Some(fetch_token(oaddr).await?);
    let mport = testkit::free_port();
    let maddr = SocketAddr::from(([127, 0, 0, 1], mport));
    let mut env = shared;
    env.extend([
        ("MCP_BIND", maddr.to_string()),
        ("OAUTH_ISSUER", issuer),
        ("MCP_RESOURCE_URL", RESOURCE.to_owned()),
    ]);
    stack.mcp =
        Some(servers::spawn("mcp-server", &servers::binary("mcp-server")?, &env, maddr).await?);
    Ok(stack)
}

async fn fetch_token(addr: SocketAddr) -> anyhow::Result<String> {
    let (status, body) = one_request(
        addr,
        Request::post("/token")
            .header(http::header::HOST, addr.to_string())
            .header(http::header::AUTHORIZATION, basic_auth())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials",
            )))?,
    )
    .await?;
    if status != StatusCode::OK {
        bail!(
            "token request failed: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

/// One request on a fresh connection.
pub async fn one_request(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let (status, _, body) = one_request_with_headers(addr, req).await?;
    Ok((status, body))
}

pub async fn one_request_with_headers(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    Ok((
        parts.status,
        parts.headers,
        body.collect().await?.to_bytes(),
    ))
}

/// Whether `needle` occurs in `hay` (response bodies are small).
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A successful tool result: a JSON-RPC `result` that is not an error.
pub fn tool_ok(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::OK
        && contains(body, b"\"result\"")
        && !contains(body, b"\"isError\":true")
        && !contains(body, b"\"error\"")
}

const CALL_PARAMS: &str = r#""name":"get_customer_info","arguments":{"customer_id":"12345"}"#;

/// 2026-07-28 stateless `tools/call` requests.
pub fn stateless_call(addr: SocketAddr, token: &str) -> load::MakeRequest {
    let body = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{CALL_PARAMS},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    ));
    let (host, bearer) = (addr.to_string(), format!("Bearer {token}"));
    Arc::new(move |_| {
        Request::post("/mcp")
            .header(http::header::HOST, &host)
            .header(http::header::AUTHORIZATION, &bearer)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_customer_info")
            .body(Full::new(body.clone()))
            .unwrap_or_default()
    })
}

/// Opens `n` 2025-11-25 sessions (initialize + initialized) and returns a
/// request maker that gives connection `i` session `i` (one client, one
/// session, requests in sequence — how MCP clients use a session).
pub async fn session_calls(
    addr: SocketAddr,
    token: &str,
    n: usize,
) -> anyhow::Result<load::MakeRequest> {
    let (host, bearer) = (addr.to_string(), format!("Bearer {token}"));
    let post = |body: String, session: Option<&str>| {
        let mut b = Request::post("/mcp")
            .header(http::header::HOST, &host)
            .header(http::header::AUTHORIZATION, &bearer)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if let Some(s) = session {
            b = b
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        b.body(Full::new(Bytes::from(body)))
    };
    let mut sessions = Vec::new();
    for _ in 0..n {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
        let (status, headers, body) =
            one_request_with_headers(addr, post(init.into(), None)?).await?;
        if status != StatusCode::OK {
            bail!(
                "initialize failed: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("no Mcp-Session-Id")?
            .to_owned();
        let (status, _) = one_request(
            addr,
            post(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
                Some(&id),
            )?,
        )
        .await?;
        if status != StatusCode::ACCEPTED {
            bail!("notifications/initialized answered {status}");
        }
        sessions.push(http::HeaderValue::from_str(&id)?);
    }
    let body = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{CALL_PARAMS}}}}}"#
    ));
    Ok(Arc::new(move |conn| {
        let i = conn % sessions.len();
        Request::post("/mcp")
            .header(http::header::HOST, &host)
            .header(http::header::AUTHORIZATION, &bearer)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", sessions[i].clone())
            .body(Full::new(body.clone()))
            .unwrap_or_default()
    }))
}
