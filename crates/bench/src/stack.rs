//! Starts the real stack for a scenario through the `stack` crate (child
//! processes of the release binaries): oauth-server (+ Redis) + mcp-server
//! on free ports, and a token for the bench client; or the TLS deployment
//! shape ([`start_behind_nginx`]): nginx from the deployment's own template
//! in front of one oauth-server and two mcp-server replicas. Also the
//! requests the scenarios send.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use auth::keys::Algorithm;

use crate::load;

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

/// Whether the servers run with their Prometheus metrics on (the default,
/// as the servers ship) or off (`OAUTH_METRICS_BIND=` / `MCP_METRICS_BIND=`
/// empty: no registry, nothing counted). Set once by `--metrics`.
static METRICS: OnceLock<bool> = OnceLock::new();

/// Records `--metrics` for every stack this run starts.
pub fn set_metrics(on: bool) {
    let _ = METRICS.set(on);
}

fn metrics_on() -> bool {
    METRICS.get().copied().unwrap_or(true)
}

/// A free loopback port for a metrics listener (bound, read, released: the
/// server binds it a moment later), so the bench can scrape it after the load.
fn free_loopback() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("a free loopback port")?;
    Ok(l.local_addr()?)
}

/// Where a stack's metrics listeners are (none when `--metrics off`).
#[derive(Clone, Copy, Default)]
pub struct MetricsAddrs {
    pub oauth: Option<SocketAddr>,
    pub mcp: Option<SocketAddr>,
}

/// Turns the servers' metrics on (free loopback ports, scraped after the
/// load) or leaves them off, as `--metrics` says. The `stack` crate starts
/// child servers with both listeners off; with `mcp_fixed` false (several
/// replicas) the replicas bind port 0 and are not scraped.
fn with_metrics(
    b: ::stack::StackBuilder,
    mcp_fixed: bool,
) -> anyhow::Result<(::stack::StackBuilder, MetricsAddrs)> {
    if !metrics_on() {
        return Ok((b, MetricsAddrs::default()));
    }
    let oauth = free_loopback()?;
    let mcp = if mcp_fixed {
        Some(free_loopback()?)
    } else {
        None
    };
    let mcp_bind = mcp.map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
    let b = b
        .oauth_env("OAUTH_METRICS_BIND", &oauth.to_string())
        .mcp_env("MCP_METRICS_BIND", &mcp_bind);
    Ok((
        b,
        MetricsAddrs {
            oauth: Some(oauth),
            mcp,
        },
    ))
}

/// The sum of `securemcp_http_requests_total` over every label set in the
/// `/metrics` scrape of `addr`: proves the metrics really counted the load.
pub async fn scrape_http_requests(addr: SocketAddr) -> anyhow::Result<u64> {
    let req = Request::get("/metrics")
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let (status, body) = one_request(addr, req).await?;
    if status != StatusCode::OK {
        bail!("GET http://{addr}/metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let mut total = 0u64;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("securemcp_http_requests_total{")
            && let Some(v) = rest.rsplit(' ').next()
        {
            total += v.parse::<f64>().map_or(0, |f| f as u64);
        }
    }
    Ok(total)
}

/// After a scenario's load with metrics on: the server's own count of HTTP
/// requests must cover at least the requests the generator completed, or
/// the "on" figures did not measure counting.
pub async fn check_counted(
    name: &str,
    server: &str,
    addr: Option<SocketAddr>,
    completed: u64,
) -> anyhow::Result<()> {
    let Some(addr) = addr else { return Ok(()) };
    let counted = scrape_http_requests(addr).await?;
    eprintln!(
        "{name}: metrics on: {server} counted {counted} HTTP requests (load completed {completed})"
    );
    if counted < completed {
        bail!("{name}: {server} counted {counted} requests, fewer than the {completed} completed");
    }
    Ok(())
}

/// A scenario's stack (the real binaries as child processes, started by
/// the `stack` crate) and a token for the bench client.
pub struct Stack {
    pub inner: ::stack::Stack,
    pub token: Option<String>,
    /// The metrics listeners to scrape after the load (`--metrics on`).
    pub metrics: MetricsAddrs,
    /// The Redis Cluster of the `cluster` scenario (stopped after the servers).
    pub cluster: Option<testkit::RedisCluster>,
}

/// Where the servers keep their shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// In memory (no Redis).
    Memory,
    /// One `redis-server` (`REDIS_URL`).
    Redis,
    /// A 3-master Redis Cluster (`REDIS_CLUSTER_NODES`), no replicas: the
    /// shape that spreads the limiter's keys over three shards.
    Cluster,
}

impl Stack {
    pub fn oauth(&self) -> &::stack::OauthServer {
        self.inner.oauth()
    }

    pub fn mcp(&self) -> Option<&::stack::Replica> {
        self.inner.replica(0)
    }

    /// The Redis servers the stack keeps its state in (`redis://host:port`):
    /// the one Redis, the cluster's nodes, or none.
    pub fn redis_urls(&self) -> Vec<String> {
        match (&self.cluster, self.inner.redis_url()) {
            (Some(cluster), _) => cluster.urls(),
            (None, Some(url)) => vec![url.to_owned()],
            (None, None) => Vec::new(),
        }
    }
}

/// The only client the bench uses (no dev clients: their argon2 hashes
/// would only cost start-up time).
fn bench_client() -> ::stack::Client {
    let scopes = ["customer:read", "ticket:create"];
    ::stack::Client::with_secret(BENCH_ID, BENCH_SECRET)
        .allowed_scopes(&scopes)
        .default_scopes(&scopes)
}

/// Child processes of the release binaries (siblings of this executable),
/// with every rate limit lifted and the servers' log level.
pub fn builder() -> ::stack::StackBuilder {
    // The servers' default; BENCH_SERVER_LOG=warn measures them without
    // their per-request audit lines (to price logging, not to publish).
    let log = std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into());
    let mut b = ::stack::Stack::builder()
        .child_processes()
        .without_dev_clients()
        .oauth_env("RUST_LOG", &log)
        .mcp_env("RUST_LOG", &log);
    for (k, v) in UNLIMITED {
        b = b.oauth_env(k, v).mcp_env(k, v);
    }
    b
}

/// `POST /token` (client_credentials, client_secret_basic) with `host` as
/// Host header, and the check of its answer (a 200 carrying a token).
pub fn token_requests(host: &str) -> (load::MakeRequest, load::Check) {
    let headers = headers(&[
        ("host", host),
        ("authorization", &basic_auth()),
        ("content-type", "application/x-www-form-urlencoded"),
    ]);
    let body = Bytes::from_static(b"grant_type=client_credentials");
    let make: load::MakeRequest = Arc::new(move |_| post_prepared("/token", &headers, &body));
    let check: load::Check = Arc::new(token_ok);
    (make, check)
}

/// A successful token response: 200, and a body that opens with
/// `{"access_token":"` followed by a compact JWS (three non-empty base64url
/// parts) and `","token_type":"Bearer"` — the oauth-server writes its
/// fields in that order (`routes/token.rs`). One pass over the ~700-byte
/// token, one table lookup per byte. (The previous check, a search for
/// `"access_token"`, matched at the body's second byte and so cost nothing,
/// but accepted any body that merely named the field.)
pub fn token_ok(status: StatusCode, body: &[u8]) -> bool {
    const HEAD: &[u8] = b"{\"access_token\":\"";
    const TAIL: &[u8] = b"\",\"token_type\":\"Bearer\"";
    if status != StatusCode::OK {
        return false;
    }
    let Some(rest) = body.strip_prefix(HEAD) else {
        return false;
    };
    let (mut parts, mut part_len) = (1, 0usize);
    for (i, &b) in rest.iter().enumerate() {
        match JWS_CLASS[usize::from(b)] {
            BASE64URL => part_len += 1,
            DOT if part_len > 0 => (parts, part_len) = (parts + 1, 0),
            QUOTE => {
                return parts == 3
                    && part_len > 0
                    && rest.get(i..).is_some_and(|r| r.starts_with(TAIL));
            }
            _ => return false,
        }
    }
    false
}

const INVALID: u8 = 0;
const BASE64URL: u8 = 1;
const DOT: u8 = 2;
const QUOTE: u8 = 3;

/// The class of every byte in a compact JWS inside a JSON string.
const JWS_CLASS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            BASE64URL
        } else if b == b'.' {
            DOT
        } else if b == b'"' {
            QUOTE
        } else {
            INVALID
        };
        i += 1;
    }
    t
};

/// The dev clients of `config/clients.toml`, all with argon2id secrets
/// (DESIGN.md §2), in the order [`dev_token_requests`] rotates through them.
pub const DEV_CLIENTS: [(&str, &str); 3] = [
    ::stack::OPENAI_CLIENT,
    ::stack::ANTHROPIC_CLIENT,
    ::stack::SECURE_CLIENT,
];

/// `POST /token` (client_credentials, client_secret_basic) as the dev
/// clients, request `i` from `DEV_CLIENTS[i % 3]`, and the check of its answer.
pub fn dev_token_requests(host: &str) -> (load::MakeRequest, load::Check) {
    let prepared: Vec<http::HeaderMap> = DEV_CLIENTS
        .iter()
        .map(|(id, secret)| {
            let auth = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            );
            headers(&[
                ("host", host),
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ])
        })
        .collect();
    let body = Bytes::from_static(b"grant_type=client_credentials");
    let make: load::MakeRequest = Arc::new(move |i| {
        let h = &prepared[i % prepared.len()];
        post_prepared("/token", h, &body)
    });
    let check: load::Check = Arc::new(token_ok);
    (make, check)
}

/// oauth-server (RS256, the default) with the dev registry as shipped: the
/// three argon2id dev clients (plus the bench client).
pub async fn start_with_dev_clients() -> anyhow::Result<Stack> {
    let log = std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into());
    let mut b = ::stack::Stack::builder()
        .child_processes()
        .oauth_env("RUST_LOG", &log)
        .mcp_env("RUST_LOG", &log);
    for (k, v) in UNLIMITED {
        b = b.oauth_env(k, v).mcp_env(k, v);
    }
    let (b, metrics) = with_metrics(b, true)?;
    let inner = b
        .signing_alg(Algorithm::RS256)
        .redis(::stack::Redis::None)
        .resource(RESOURCE)
        .mcp_replicas(0)
        .start()
        .await
        .context("starting the stack (release binaries)")?;
    Ok(Stack {
        inner,
        token: None,
        metrics,
        cluster: None,
    })
}

pub fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BENCH_ID}:{BENCH_SECRET}"))
    )
}

/// oauth-server with `alg`; with `mcp`, also an mcp-server and a token;
/// their shared state in `store`.
pub async fn start(alg: Algorithm, mcp: bool, store: Store) -> anyhow::Result<Stack> {
    let mut cluster = None;
    let redis = match store {
        Store::Memory => ::stack::Redis::None,
        Store::Redis => ::stack::Redis::Start,
        Store::Cluster => {
            let c = testkit::RedisCluster::start_with(3, 0)
                .context("redis-server and redis-cli are needed for the cluster scenario")?;
            let nodes = c.urls();
            cluster = Some(c);
            ::stack::Redis::Cluster(nodes)
        }
    };
    let (b, metrics) = with_metrics(builder(), true)?;
    let inner = b
        .signing_alg(alg)
        .redis(redis)
        .resource(RESOURCE)
        // RESOURCE only: a token request without `resource` gets it.
        .client(bench_client().resources(&[RESOURCE]))
        .mcp_replicas(usize::from(mcp))
        .start()
        .await
        .context("starting the stack (release binaries; redis-server for tools-call-redis)")?;
    let token = if mcp {
        Some(inner.token((BENCH_ID, BENCH_SECRET), None, None).await?)
    } else {
        None
    };
    Ok(Stack {
        inner,
        token,
        metrics,
        cluster,
    })
}

/// The TLS deployment in miniature, as the end-to-end tests
/// (`crates/stack/tests/e2e`) start it and docker-compose runs it: nginx
/// rendered from `nginx/secure-mcp.conf.template` with a test CA, in front
/// of one oauth-server and two mcp-server replicas (the template's two MCP
/// upstreams), all real release binaries.
///
/// The servers know only their public https URLs (issuer, resource), believe
/// `X-Forwarded-For` only from nginx (`TRUSTED_PROXIES=127.0.0.1/32`, so
/// limits key on the real client); the replicas fetch keys over the
/// internal network (`OAUTH_JWKS_URL=http://OAUTH_ADDR/jwks`), since the
/// public issuer's certificate is signed by a CA they do not trust.
///
/// No Redis, unlike the e2e stack: the scenarios are stateless 2026-07-28
/// calls and token requests, which need nothing shared between the
/// replicas (the template pins 2025-11-25 sessions to their replica itself);
/// Redis would only add the limiter's round trip, and the limits are lifted
/// anyway ([`UNLIMITED`]). `tools-call-redis` measures that round trip.
pub struct NginxStack {
    pub inner: ::stack::Stack,
    /// nginx's OAuth front (127.0.0.1:PORT) and its Host header.
    pub oauth_front: SocketAddr,
    pub oauth_host: String,
    /// nginx's MCP front (127.0.0.1:PORT) and its Host header.
    pub mcp_front: SocketAddr,
    pub mcp_host: String,
    /// Trusts only the stack's test CA; SNI `localhost`.
    pub tls: load::Tls,
    /// Obtained through nginx: `iss` and `aud` are the public https URLs.
    pub token: String,
}

/// Starts [`NginxStack`] with `alg` as the signing algorithm.
pub async fn start_behind_nginx(alg: Algorithm) -> anyhow::Result<NginxStack> {
    let (b, _) = with_metrics(builder(), false)?;
    let inner = b
        .signing_alg(alg)
        .nginx()
        .client(bench_client())
        .start()
        .await
        .context(
            "the tls scenarios need nginx: install it (Debian/Ubuntu: `apt-get install -y nginx`) \
             or set NGINX_BIN to its path",
        )?;
    let nginx = inner.nginx().context("nginx not started")?;
    let pki = inner.pki().context("no test CA")?;
    let oauth_front = SocketAddr::from(([127, 0, 0, 1], nginx.oauth_port()));
    let mcp_front = SocketAddr::from(([127, 0, 0, 1], nginx.mcp_port()));
    let oauth_host = format!("localhost:{}", nginx.oauth_port());
    let mcp_host = format!("localhost:{}", nginx.mcp_port());
    let tls = load::Tls::trusting(&pki.ca, "localhost")?;
    let token = inner
        .token((BENCH_ID, BENCH_SECRET), None, None)
        .await
        .context("token through nginx")?;
    Ok(NginxStack {
        inner,
        oauth_front,
        oauth_host,
        mcp_front,
        mcp_host,
        tls,
        token,
    })
}

/// One request on a fresh connection.
pub async fn one_request(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let (status, _, body) = one_request_with_headers(addr, None, req).await?;
    Ok((status, body))
}

/// One request on a fresh connection (TLS when `tls` is set).
pub async fn one_request_with_headers(
    addr: SocketAddr,
    tls: Option<&load::Tls>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    use http_body_util::BodyExt as _;
    let mut sender = load::connect(addr, tls).await?;
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

/// 2026-07-28 stateless `tools/call` requests sent directly to `addr`.
pub fn stateless_call(addr: SocketAddr, token: &str) -> load::MakeRequest {
    stateless_call_to(&addr.to_string(), token)
}

/// 2026-07-28 stateless `tools/call` requests with `host` as Host header.
pub fn stateless_call_to(host: &str, token: &str) -> load::MakeRequest {
    let body = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{{CALL_PARAMS},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    ));
    let headers = headers(&[
        ("host", host),
        ("authorization", &format!("Bearer {token}")),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_customer_info"),
    ]);
    Arc::new(move |_| post_prepared("/mcp", &headers, &body))
}

/// A header map built (names parsed, values validated) once; cloning it per
/// request only bumps reference counts, so the generator spends its CPU on
/// the exchange rather than on re-validating a 700-byte bearer header — the
/// generator shares the machine with what it measures.
fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(pairs.len() + 1);
    for (name, value) in pairs {
        let value = http::HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        map.append(http::HeaderName::from_static(name), value);
    }
    map
}

/// `POST path` with prepared headers and body.
fn post_prepared(
    path: &'static str,
    headers: &http::HeaderMap,
    body: &Bytes,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = http::Uri::from_static(path);
    *req.headers_mut() = headers.clone();
    req
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
            one_request_with_headers(addr, None, post(init.into(), None)?).await?;
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
    let per_session: Vec<http::HeaderMap> = sessions
        .iter()
        .map(|sid| {
            let mut h = headers(&[
                ("host", &host),
                ("authorization", &bearer),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
                ("mcp-protocol-version", "2025-11-25"),
            ]);
            h.append("mcp-session-id", sid.clone());
            h
        })
        .collect();
    Ok(Arc::new(move |conn| {
        post_prepared("/mcp", &per_session[conn % per_session.len()], &body)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check_wants_a_compact_jws_in_the_first_field() {
        let ok = br#"{"access_token":"eyJh.eyJz.c2ln","token_type":"Bearer","expires_in":900,"scope":"a"}"#;
        assert!(token_ok(StatusCode::OK, ok));
        assert!(!token_ok(StatusCode::BAD_REQUEST, ok));
        for bad in [
            &br#"{"error":"invalid_client","error_description":"access_token"}"#[..],
            br#"{"access_token":"eyJh.eyJz","token_type":"Bearer"}"#,
            br#"{"access_token":"eyJh..c2ln","token_type":"Bearer"}"#,
            br#"{"access_token":"eyJh.eyJz.","token_type":"Bearer"}"#,
            br#"{"access_token":"eyJh.eyJz.c2ln.x","token_type":"Bearer"}"#,
            br#"{"access_token":"eyJh.ey z.c2ln","token_type":"Bearer"}"#,
            br#"{"access_token":"eyJh.eyJz.c2ln","token_type":"bearer"}"#,
            br#"{"access_token":"eyJh.eyJz.c2ln"#,
            b"",
        ] {
            assert!(
                !token_ok(StatusCode::OK, bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
