//! The TLS deployment in miniature: Redis, one oauth-server and two
//! mcp-server replicas in-process on port 0, and a real nginx rendered from
//! `nginx/secure-mcp.conf.template` in front of them with a test CA.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::nginx::Upstreams;
use testkit::pki::PkiFiles;
use testkit::{Nginx, RedisServer, TestPki};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const V2025: &str = "2025-11-25";
pub const V2026: &str = "2026-07-28";
/// A fast (sha256) all-scopes client registered for the test's https resource.
pub const CLIENT: (&str, &str) = ("e2e-client", "e2e-client-secret-0123456789abcdef");
/// A second client, to show budgets are per client.
pub const OTHER_CLIENT: (&str, &str) = ("e2e-other", "e2e-other-secret-0123456789abcdef");
/// nginx connects to the servers from here; only it may set X-Forwarded-For.
pub const NGINX_ADDR: &str = "127.0.0.1/32";

/// What a test can change about the stack.
#[derive(Clone, Default)]
pub struct Opts {
    /// (per minute, burst) of the oauth-server's per-IP/per-client budget.
    pub oauth_policy: Option<(u32, u32)>,
    /// (per minute, burst) of the mcp-server's per-client budget
    /// (default: high enough never to matter).
    pub mcp_policy: Option<(u32, u32)>,
    /// nginx's certificate and the CA clients trust (default: a fresh TestPki).
    pub certs: Option<PkiFiles>,
}

/// One mcp-server replica.
pub struct Replica {
    pub addr: SocketAddr,
    pub state: mcp_server::state::AppState,
    stop: CancellationToken,
    handle: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

impl Replica {
    /// `mcp.tool_called` events this replica recorded.
    pub fn tool_calls(&self) -> usize {
        self.state
            .audit()
            .recent(100_000)
            .iter()
            .filter(|e| e.event == "mcp.tool_called")
            .count()
    }

    /// Stops the replica (as SIGTERM would) and waits until it is gone.
    pub async fn stop(&self) {
        self.stop.cancel();
        let handle = self.handle.lock().unwrap().take();
        if let Some(h) = handle {
            let done = tokio::time::timeout(Duration::from_secs(10), h).await;
            assert!(
                done.is_ok(),
                "replica {} did not finish its graceful shutdown within 10 s",
                self.addr
            );
        }
    }
}

pub struct Stack {
    pub nginx: Nginx,
    pub replicas: Vec<Replica>,
    /// The oauth-server itself (behind nginx), for tests that bypass nginx.
    pub oauth_addr: SocketAddr,
    /// Kept alive for the stack's lifetime (shared by every server).
    _redis: RedisServer,
    pub pki: PkiFiles,
    pub issuer: String,
    pub resource: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    _dir: TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
        for r in &self.replicas {
            r.stop.cancel();
        }
    }
}

fn registry(resource: &str) -> String {
    let hash = |s: &str| oauth_server::clients::hash_sha256(s.as_bytes());
    let all = r#"["customer:read", "ticket:create", "account:calculate", "security:read"]"#;
    let mut out = String::new();
    for (id, secret) in [
        CLIENT,
        OTHER_CLIENT,
        // The dev clients of config/clients.toml, with fast hashes and the test's resource.
        ("openai-mcp-client", "openai-client-secret"),
        ("anthropic-mcp-client", "anthropic-client-secret"),
    ] {
        out.push_str(&format!(
            "[[client]]\nclient_id = \"{id}\"\nsecret_hash = \"{h}\"\nallowed_scopes = {all}\n\
             default_scopes = [\"customer:read\", \"ticket:create\", \"account:calculate\"]\n\
             allowed_resources = [\"{resource}\"]\n\n",
            h = hash(secret)
        ));
    }
    out
}

impl Stack {
    /// `None` when nginx or redis-server is missing (skipped loudly) and
    /// services are not required.
    pub async fn start() -> Option<Stack> {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Option<Stack> {
        let redis = RedisServer::start()?;
        let dir = tempfile::tempdir().unwrap();
        let pki = match opts.certs.clone() {
            Some(files) => files,
            None => TestPki::generate().write_to(dir.path()),
        };

        // Bind first: nginx needs the upstream addresses, the servers need
        // nginx's (public) ports for their URLs.
        let oauth_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mcp_listeners = [
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let oauth_addr = oauth_listener.local_addr().unwrap();
        let upstreams = Upstreams {
            oauth: oauth_addr,
            mcp: [
                mcp_listeners[0].local_addr().unwrap(),
                mcp_listeners[1].local_addr().unwrap(),
            ],
        };
        let nginx = Nginx::start(&upstreams, &pki)?;
        let issuer = nginx.oauth_url();
        let resource = nginx.mcp_url();
        let stop = CancellationToken::new();

        let clients_file = dir.path().join("clients.toml");
        std::fs::write(&clients_file, registry(&resource)).unwrap();
        let mut oauth =
            oauth_server::Config::with_paths(&issuer, dir.path().join("keys"), clients_file)
                .unwrap();
        oauth.resources = vec![resource.clone()];
        oauth.redis_url = Some(redis.url().into());
        oauth.rate_limit.trusted_proxies = ratelimit::TrustedProxies::parse(NGINX_ADDR).unwrap();
        let (per_minute, burst) = opts.oauth_policy.unwrap_or((60_000, 1_000));
        oauth.oauth_policy = ratelimit::Policy::new(per_minute, burst).unwrap();
        let oauth_app = oauth_server::App::build_with_listener(oauth, oauth_listener)
            .await
            .unwrap();
        let oauth_stop = stop.clone();
        tokio::spawn(oauth_app.run_until(async move { oauth_stop.cancelled().await }));

        let mut replicas = Vec::new();
        for listener in mcp_listeners {
            let mut config = mcp_server::Config::new(&resource, &issuer).unwrap();
            // Keys over the internal network, as in docker-compose: the public
            // issuer URL is nginx's and needs the CA.
            config.jwks_url = Some(format!("http://{oauth_addr}/jwks"));
            config.redis_url = Some(redis.url().into());
            config.rate_limit.trusted_proxies =
                ratelimit::TrustedProxies::parse(NGINX_ADDR).unwrap();
            let (per_minute, burst) = opts.mcp_policy.unwrap_or((600_000, 10_000));
            config.rate_limit.policy = ratelimit::Policy::new(per_minute, burst).unwrap();
            let app = mcp_server::App::build_with_listener(config, listener)
                .await
                .unwrap();
            let addr = app.local_addr().unwrap();
            let state = app.state().clone();
            let token = app.shutdown_token();
            let handle = tokio::spawn(app.run_until_stopped());
            replicas.push(Replica {
                addr,
                state,
                stop: token,
                handle: std::sync::Mutex::new(Some(handle)),
            });
        }

        let http = client_builder(&pki).build().unwrap();
        Some(Stack {
            nginx,
            replicas,
            oauth_addr,
            _redis: redis,
            pki,
            issuer,
            resource,
            http,
            stop,
            _dir: dir,
        })
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.pki.ca.clone()
    }

    /// A client that trusts only the test CA, from `local` (a 127.0.0.x).
    pub fn http_from(&self, local: IpAddr) -> reqwest::Client {
        client_builder(&self.pki)
            .local_address(local)
            .build()
            .unwrap()
    }

    /// A token for `client` through nginx (the public token endpoint).
    pub async fn token(&self, client: (&str, &str)) -> String {
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("resource", self.resource.as_str()),
                (
                    "scope",
                    "customer:read ticket:create account:calculate security:read",
                ),
            ]))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "token through nginx: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn post_mcp(&self, token: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
        let mut req = self
            .http
            .post(&self.resource)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.body(body.to_string()).send().await.unwrap()).await
    }

    /// One 2026-07-28 stateless `tools/call`.
    pub async fn call_stateless(&self, token: &str, tool: &str, args: Value) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": V2026,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1.0.0"},
        }}});
        self.post_mcp(
            token,
            &[
                ("mcp-protocol-version", V2026),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ],
            &body,
        )
        .await
    }

    /// Opens a 2025-11-25 session (initialize + notifications/initialized).
    pub async fn session(&self, token: &str) -> Session<'_> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": V2025, "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1.0.0"}}});
        let r = self.post_mcp(token, &[], &body).await;
        assert_eq!(r.status, 200, "initialize through nginx: {}", r.text);
        assert_eq!(r.json()["result"]["protocolVersion"], V2025);
        let id = r
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("no Mcp-Session-Id on initialize: {:?}", r.headers))
            .to_owned();
        let s = Session {
            stack: self,
            token: token.to_owned(),
            id,
        };
        let r = s
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(r.status, 202, "notifications/initialized: {}", r.text);
        s
    }
}

fn client_builder(pki: &PkiFiles) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        // nginx listens on 127.0.0.1 only; skip the [::1] attempt.
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(20))
}

pub struct Session<'a> {
    pub stack: &'a Stack,
    pub token: String,
    /// As the client sees it (nginx's replica tag included).
    pub id: String,
}

impl Session<'_> {
    pub async fn post(&self, body: &Value) -> Reply {
        self.stack
            .post_mcp(
                &self.token,
                &[
                    ("mcp-session-id", &self.id),
                    ("mcp-protocol-version", V2025),
                ],
                body,
            )
            .await
    }

    pub async fn call(&self, id: u64, tool: &str, args: Value) -> Reply {
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}))
            .await
    }

    pub async fn delete(&self) -> Reply {
        let resp = self
            .stack
            .http
            .delete(&self.stack.resource)
            .bearer_auth(&self.token)
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", V2025)
            .send()
            .await
            .unwrap();
        reply(resp).await
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON body, or the JSON-RPC response inside an SSE body.
    pub fn json(&self) -> Value {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            self.text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .rfind(|v| v.get("result").is_some() || v.get("error").is_some())
                .unwrap_or_else(|| panic!("no JSON-RPC response in SSE body: {}", self.text))
        } else {
            serde_json::from_str(&self.text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
        }
    }

    /// Asserts a successful, non-error tool result.
    pub fn assert_tool_ok(&self) -> Value {
        assert_eq!(self.status, 200, "tool call: {}", self.text);
        let v = self.json();
        assert!(
            v["result"].is_object() && v["result"]["isError"] != true,
            "tool call failed: {v}"
        );
        v
    }
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
