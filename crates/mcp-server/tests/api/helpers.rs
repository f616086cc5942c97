//! Spawns a real oauth-server and a real mcp-server on port 0 (through
//! `stack`) and talks HTTP to them. Tokens come from the oauth-server's `/token` endpoint; tokens
//! with hand-picked claims are signed with the oauth-server's own key (taken
//! from its key folder) or with a foreign key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::keys::SigningKey;
use auth::{AccessTokenClaims, Audience, ScopeSet};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The resource URI the test mcp-server serves (a dev client may get tokens for it).
pub const RESOURCE: &str = "http://localhost:8000/mcp";
/// The other resource every dev client may get tokens for.
pub const OTHER_RESOURCE: &str = "https://localhost:8001/mcp";
pub const PRM_URL: &str = "http://localhost:8000/.well-known/oauth-protected-resource/mcp";
pub const ALL_SCOPES: &str = "customer:read ticket:create account:calculate security:read";
pub const CHALLENGE_MISSING: &str = r#"Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="customer:read ticket:create account:calculate security:read""#;
pub const CHALLENGE_INVALID: &str = r#"Bearer error="invalid_token", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="customer:read ticket:create account:calculate security:read""#;

pub const SECURE_CLIENT: (&str, &str) = (
    "mcp-secure-client",
    "secure-client-secret-change-in-production",
);
pub const OPENAI_CLIENT: (&str, &str) = ("openai-mcp-client", "openai-client-secret");
/// The public dev client (PKCE, no secret) an MCP host signs people in with.
pub const PUBLIC_CLIENT: &str = "claude-desktop-client";
/// The dev users (config/users.toml; local use only).
pub const ALICE: (&str, &str) = ("alice", "alice-dev-password");
pub const BOB: (&str, &str) = ("bob", "bob-dev-password");

pub const V2026: &str = "2026-07-28";
pub const V2025: &str = "2025-11-25";

/// Options for [`spawn_with`].
#[derive(Default, Clone)]
pub struct Options {
    pub redis_url: Option<String>,
    /// Per-client (per minute, burst); default: far above what tests send.
    pub policy: Option<(u32, u32)>,
    /// Failed authentications per IP (per minute, burst); default: generous.
    pub auth_failures: Option<(u32, u32)>,
    pub failure_mode: Option<ratelimit::FailureMode>,
    pub revocation_fail_open: bool,
    /// mcp-server replicas (default 1), all configured alike.
    pub replicas: Option<usize>,
    /// `MCP_ALLOWED_ORIGINS` (default: the loopback pages of the config default).
    pub origins: Option<Vec<String>>,
    /// `REVOCATION_MAX_STALENESS_SECS` (default: the config default, 900 s).
    pub revocation_max_staleness: Option<Duration>,
    /// `MCP_MAX_RESULT_BYTES` (default 512 KiB).
    pub max_result_bytes: Option<usize>,
    /// `HTTP_REQUEST_TIMEOUT_SECS` (default 30 s).
    pub request_timeout: Option<std::time::Duration>,
    /// `MCP_METRICS_BIND` empty (default: port 0).
    pub metrics_off: bool,
}

/// Adjusts a replica's configuration as these options describe.
fn apply(c: &mut mcp_server::Config, opts: &Options) {
    // Keys are discovered from the issuer's metadata, as in production.
    c.jwks_url = None;
    // Tests that are not about rate limiting must not trip over it.
    let (rate, burst) = opts.policy.unwrap_or((600_000, 10_000));
    c.rate_limit.policy = ratelimit::Policy::new(rate, burst).unwrap();
    let (rate, burst) = opts.auth_failures.unwrap_or((600_000, 10_000));
    c.auth_failure_policy = ratelimit::Policy::new(rate, burst).unwrap();
    if let Some(m) = opts.failure_mode {
        c.rate_limit.failure_mode = m;
    }
    c.revocation_fail_open = opts.revocation_fail_open;
    if let Some(o) = &opts.origins {
        c.allowed_origins.clone_from(o);
    }
    if let Some(s) = opts.revocation_max_staleness {
        c.revocation_max_staleness = s;
    }
    if let Some(n) = opts.max_result_bytes {
        c.max_result_bytes = n;
    }
    if let Some(t) = opts.request_timeout {
        c.connections.request_timeout = t;
    }
    if opts.metrics_off {
        c.metrics_bind = None;
    }
}

/// Both servers (started by `stack`), running until drop.
pub struct TestApp {
    pub issuer: String,
    pub mcp_addr: SocketAddr,
    pub mcp_url: String,
    pub http: reqwest::Client,
    pub oauth: oauth_server::state::AppState,
    pub mcp: mcp_server::state::AppState,
    pub keys_dir: PathBuf,
    pub stack: stack::Stack,
}

pub async fn spawn() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let mut builder = stack::Stack::builder()
        .resource(RESOURCE)
        .mcp_replicas(opts.replicas.unwrap_or(1))
        .oauth_config(|c| c.resources = vec![RESOURCE.to_owned(), OTHER_RESOURCE.to_owned()]);
    if let Some(url) = &opts.redis_url {
        builder = builder.redis(stack::Redis::Url(url.clone()));
    }
    let stack = builder
        .mcp_config(move |c| apply(c, &opts))
        .start()
        .await
        .unwrap();
    let mcp_addr = stack.replicas()[0].addr();
    TestApp {
        issuer: stack.issuer().to_owned(),
        mcp_addr,
        mcp_url: format!("http://{mcp_addr}/mcp"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        oauth: stack.oauth_state().unwrap().clone(),
        mcp: stack.mcp_state().unwrap().clone(),
        keys_dir: stack.keys_dir().to_owned(),
        stack,
    }
}

/// A parsed HTTP answer.
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

    /// The body as JSON; for SSE, the last `data:` line that is a JSON-RPC
    /// response or error.
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

impl TestApp {
    /// A token from POST /token (client_secret_basic).
    pub async fn token(
        &self,
        client: (&str, &str),
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&form))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A user token from the real interactive flow: `user` signs in at
    /// `/authorize` for the public `claude-desktop-client` (login and consent
    /// pages, PKCE), and the code is exchanged at `/token`.
    pub async fn user_token(&self, user: (&str, &str), scope: &str) -> String {
        use stack::signin::{AuthorizeRequest, Decision, Person};
        const REDIRECT: &str = "http://127.0.0.1:53682/callback";
        let request = AuthorizeRequest::new(PUBLIC_CLIENT, REDIRECT)
            .unwrap()
            .scope(scope)
            .resource(RESOURCE);
        let url = request.url(&self.issuer).unwrap();
        let back = Person::new(user.0, user.1)
            .unwrap()
            .authorize(&url, Decision::Approve)
            .await
            .unwrap();
        let code = back
            .code
            .unwrap_or_else(|| panic!("no code: {}", back.location));
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&[
                ("grant_type", "authorization_code"),
                ("client_id", PUBLIC_CLIENT),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &request.pkce.verifier),
                ("resource", RESOURCE),
            ]))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "code exchange failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// All four scopes, for our resource.
    pub async fn secure_token(&self) -> String {
        self.token(SECURE_CLIENT, None, Some(RESOURCE)).await
    }

    /// The oauth-server's current signing key.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.oauth.keys.ring().signing.clone()
    }

    /// Claims like the oauth-server would issue for `mcp-secure-client`.
    pub fn claims(&self) -> AccessTokenClaims {
        let now = auth::now_unix();
        AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: SECURE_CLIENT.0.into(),
            aud: Audience::One(RESOURCE.into()),
            client_id: SECURE_CLIENT.0.into(),
            scope: ScopeSet::parse(ALL_SCOPES).unwrap(),
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: format!("test-{now}-{}", rand_suffix()),
        }
    }

    /// Claims like the oauth-server issues a user (authorization code grant):
    /// `sub` is the user, `client_id` the host that asked.
    pub fn user_claims(&self, client_id: &str, user: &str, scope: &str) -> AccessTokenClaims {
        AccessTokenClaims {
            sub: user.into(),
            client_id: client_id.into(),
            scope: ScopeSet::parse(scope).unwrap(),
            ..self.claims()
        }
    }

    /// `claims` signed with the oauth-server's real key.
    pub fn sign(&self, claims: &AccessTokenClaims) -> String {
        auth::jwt::sign(&self.signing_key(), "at+jwt", claims).unwrap()
    }

    /// POST /mcp with the given headers and raw body (Accept and
    /// Content-Type default to what MCP requires).
    pub async fn post_raw(
        &self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self
            .http
            .post(&self.mcp_url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.body(body).send().await.unwrap()).await
    }

    /// A 2026-07-28 stateless request (per-request `_meta`, SEP-2243 headers).
    pub async fn call_2026(&self, token: Option<&str>, method: &str, mut params: Value) -> Reply {
        let name = match method {
            "tools/call" | "prompts/get" => params["name"].as_str().map(str::to_owned),
            "resources/read" => params["uri"].as_str().map(str::to_owned),
            _ => None,
        };
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": V2026,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "api-tests", "version": "1.0.0"},
        });
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let mut headers = vec![("mcp-protocol-version", V2026), ("mcp-method", method)];
        if let Some(n) = name.as_deref() {
            headers.push(("mcp-name", n));
        }
        self.post_raw(token, &headers, body.to_string()).await
    }

    /// A 2025-11-25 session (initialize + initialized).
    pub async fn session(&self, token: &str) -> Session<'_> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": V2025, "capabilities": {}, "clientInfo": {"name": "api-tests", "version": "1.0.0"}}});
        let r = self.post_raw(Some(token), &[], body.to_string()).await;
        assert_eq!(r.status, 200, "initialize: {}", r.text);
        assert_eq!(r.json()["result"]["protocolVersion"], V2025);
        let id = r.header("mcp-session-id").expect("session id").to_owned();
        let s = Session {
            app: self,
            token: token.to_owned(),
            id,
        };
        let r = s
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await;
        assert_eq!(r.status, 202, "initialized: {}", r.text);
        s
    }

    /// The first replica's `GET /metrics` text (asserts 200 and the
    /// OpenMetrics content type).
    pub async fn scrape(&self) -> String {
        let addr = self.stack.replicas()[0]
            .metrics_addr()
            .expect("metrics are on");
        let r = reply(
            self.http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.header("content-type"),
            Some(server_kit::metrics::CONTENT_TYPE)
        );
        r.text
    }

    /// Audit events of the mcp-server with this name.
    pub fn events(&self, name: &str) -> Vec<mcp_server::audit::AuditEvent<'static>> {
        self.mcp
            .audit()
            .recent(10_000)
            .into_iter()
            .filter(|e| e.event == name)
            .collect()
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(
            self.http
                .get(format!("http://{}{path}", self.mcp_addr))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A `tools/list` (2026-07-28) to the replica at `addr`.
    pub async fn list_at(&self, addr: SocketAddr, token: &str) -> Reply {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {
            "_meta": {"io.modelcontextprotocol/protocolVersion": V2026,
                      "io.modelcontextprotocol/clientCapabilities": {}}}});
        let resp = self
            .http
            .post(format!("http://{addr}/mcp"))
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

    /// Revokes `token` at the oauth-server (its owner authenticates).
    pub async fn revoke(&self, client: (&str, &str), token: &str) -> Reply {
        let resp = self
            .http
            .post(format!("{}/revoke", self.issuer))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&[("token", token)]))
            .send()
            .await
            .unwrap();
        reply(resp).await
    }

    /// Polls `GET {base}/ready` until it answers `status` (10 s deadline);
    /// returns the body.
    pub async fn wait_ready(&self, base: &str, status: u16) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = reply(self.http.get(format!("{base}/ready")).send().await.unwrap()).await;
            if r.status == status {
                assert_eq!(r.header("cache-control"), Some("no-store"));
                return r.json();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{base}/ready never answered {status}; last: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `tools/list` with `token` at `addr` until it answers `status`
    /// (10 s deadline).
    pub async fn wait_status_at(&self, addr: SocketAddr, token: &str, status: u16) -> Reply {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.list_at(addr, token).await;
            if r.status == status {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{addr} never answered {status}; last: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The server still answers (no request may take the process down).
    pub async fn assert_alive(&self) {
        let r = self.get("/health").await;
        assert_eq!(r.status, 200);
    }
}

/// A legacy (2025-11-25) session.
pub struct Session<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub id: String,
}

impl Session<'_> {
    pub async fn post(&self, body: &str) -> Reply {
        self.app
            .post_raw(
                Some(&self.token),
                &[
                    ("mcp-session-id", &self.id),
                    ("mcp-protocol-version", V2025),
                ],
                body.to_owned(),
            )
            .await
    }

    pub async fn request(&self, method: &str, params: Value) -> Reply {
        self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
        )
        .await
    }

    pub async fn delete(&self) -> Reply {
        let resp = self
            .app
            .http
            .delete(&self.app.mcp_url)
            .bearer_auth(&self.token)
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", V2025)
            .send()
            .await
            .unwrap();
        reply(resp).await
    }
}

/// The value of the sample `series` (name and labels exactly as encoded) in
/// a scrape; `None` when absent.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == series).then(|| value.parse().ok())?
        })
}

/// `header.payload.signature` from raw parts (for forged tokens).
pub fn compact(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Tool names in a tools/list result.
pub fn tool_names(result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `application/x-www-form-urlencoded` body.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
