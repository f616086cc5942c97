//! The TLS deployment in miniature, started by `stack`: Redis, one
//! oauth-server and two mcp-server replicas in-process on port 0, and a real
//! nginx rendered from `nginx/secure-mcp.conf.template` in front of them with
//! a test CA; plus the requests the tests send through it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_json::{Value, json};
use testkit::Nginx;
use testkit::pki::PkiFiles;

pub const V2025: &str = "2025-11-25";
pub const V2026: &str = "2026-07-28";
/// A fast (sha256) all-scopes client registered for the test's https resource.
pub const CLIENT: (&str, &str) = ("e2e-client", "e2e-client-secret-0123456789abcdef");
/// A second client, to show budgets are per client.
pub const OTHER_CLIENT: (&str, &str) = ("e2e-other", "e2e-other-secret-0123456789abcdef");

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
    /// The Redis the servers share (default: a fresh `redis-server`).
    pub redis: Option<stack::Redis>,
}

/// What e2e tests read from a replica.
pub trait ReplicaExt {
    /// `mcp.tool_called` events this replica recorded.
    fn tool_calls(&self) -> usize;
}

impl ReplicaExt for stack::Replica {
    fn tool_calls(&self) -> usize {
        self.state()
            .unwrap()
            .audit()
            .recent(100_000)
            .iter()
            .filter(|e| e.event == "mcp.tool_called")
            .count()
    }
}

/// The stack (`stack::Stack`, reachable through `Deref`) with the URLs
/// the tests read as fields.
pub struct Stack {
    pub inner: stack::Stack,
    pub issuer: String,
    pub resource: String,
    pub http: reqwest::Client,
    /// The oauth-server itself (behind nginx), for tests that bypass nginx.
    pub oauth_addr: SocketAddr,
}

impl std::ops::Deref for Stack {
    type Target = stack::Stack;
    fn deref(&self) -> &stack::Stack {
        &self.inner
    }
}

/// The dev clients get fast sha256 secrets here too, and all four scopes.
fn clients() -> Vec<stack::Client> {
    let all = [
        "customer:read",
        "ticket:create",
        "account:calculate",
        "security:read",
    ];
    [CLIENT, OTHER_CLIENT]
        .into_iter()
        .map(|(id, secret)| {
            stack::Client::with_secret(id, secret)
                .allowed_scopes(&all)
                .default_scopes(&all[..3])
        })
        .collect()
}

impl Stack {
    /// `None` when nginx or redis-server is missing (skipped loudly) and
    /// services are not required.
    pub async fn start() -> Option<Stack> {
        Self::start_with(Opts::default()).await
    }

    pub async fn start_with(opts: Opts) -> Option<Stack> {
        let (oauth_rate, oauth_burst) = opts.oauth_policy.unwrap_or((60_000, 1_000));
        let (mcp_rate, mcp_burst) = opts.mcp_policy.unwrap_or((600_000, 10_000));
        let mut builder = stack::Stack::builder()
            .redis(opts.redis.unwrap_or(stack::Redis::Start))
            .nginx()
            .clients(clients())
            .oauth_config(move |c| {
                c.oauth_policy = ratelimit::Policy::new(oauth_rate, oauth_burst).unwrap();
            })
            .mcp_config(move |c| {
                c.rate_limit.policy = ratelimit::Policy::new(mcp_rate, mcp_burst).unwrap();
            });
        if let Some(certs) = opts.certs {
            builder = builder.certs(certs);
        }
        let inner = builder.start_or_skip().await?;
        Some(Stack {
            issuer: inner.issuer().to_owned(),
            resource: inner.resource().to_owned(),
            http: inner.http().clone(),
            oauth_addr: inner.oauth().addr(),
            inner,
        })
    }

    /// nginx in front of the servers.
    pub fn nginx(&self) -> &Nginx {
        self.inner.nginx().unwrap()
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.inner.ca_pem().unwrap().to_owned()
    }

    /// A client that trusts only the test CA, from `local` (a 127.0.0.x).
    pub fn http_from(&self, local: IpAddr) -> reqwest::Client {
        self.inner
            .http_builder()
            .unwrap()
            .local_address(local)
            .build()
            .unwrap()
    }

    /// A token for `client` through nginx (the public token endpoint).
    pub async fn token(&self, client: (&str, &str)) -> String {
        self.inner
            .token(
                client,
                Some("customer:read ticket:create account:calculate security:read"),
                Some(&self.resource),
            )
            .await
            .unwrap()
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
        call_tool_2026(&self.http, &self.resource, token, tool, args).await
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

/// A stateless (2026-07-28) `tools/list` with `token` to `url`, as a client
/// sends it (per-request `_meta`, `Mcp-Method`).
pub async fn list_tools_2026(http: &reqwest::Client, url: &str, token: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1.0.0"},
    }}});
    let resp = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", "tools/list")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    reply(resp).await
}

/// A stateless (2026-07-28) `tools/call` of `tool` with `args`, as a client
/// sends it (per-request `_meta`, `Mcp-Method`, `Mcp-Name`).
pub async fn call_tool_2026(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tool: &str,
    args: Value,
) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": tool, "arguments": args,
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1.0.0"},
    }}});
    let resp = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", V2026)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    reply(resp).await
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
