//! Spawning the real oauth-server and talking to it.

use std::path::PathBuf;
use std::time::Duration;

use auth::jwk::JwkSet;
use auth::keys::{Algorithm, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oauth_server::{App, Config};
use serde_json::{Value, json};

pub const LOCAL_MCP: &str = "http://localhost:8000/mcp";
pub const TLS_MCP: &str = "https://localhost:8001/mcp";
/// A fast (sha256) secret client used by most tests.
pub const FAST_ID: &str = "fast-client";
pub const FAST_SECRET: &str = "fast-client-secret-0123456789abcdef-generated";

/// Test clients: the dev registry plus private_key_jwt and fast clients.
pub struct TestKeys {
    pub es256: SigningKey,
    pub rs256: SigningKey,
    pub eddsa: SigningKey,
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys_dir: PathBuf,
    pub client_keys: &'static TestKeys,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

fn test_keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| TestKeys {
        es256: SigningKey::generate(Algorithm::ES256).unwrap(),
        rs256: SigningKey::generate(Algorithm::RS256).unwrap(),
        eddsa: SigningKey::generate(Algorithm::EdDSA).unwrap(),
    })
}

fn jwk_inline(key: &SigningKey) -> String {
    let jwk = key.public_jwk();
    let mut parts = vec![format!("kty = {:?}", jwk.kty)];
    for (name, v) in [
        ("n", &jwk.n),
        ("e", &jwk.e),
        ("crv", &jwk.crv),
        ("x", &jwk.x),
        ("y", &jwk.y),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name} = {v:?}"));
        }
    }
    format!("{{ {} }}", parts.join(", "))
}

fn registry(keys: &TestKeys) -> String {
    let dev = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/clients.toml"
    ))
    .unwrap();
    let fast_hash = oauth_server::clients::hash_sha256(FAST_SECRET.as_bytes());
    format!(
        r#"{dev}
[[client]]
client_id = "{FAST_ID}"
secret_hash = "{fast_hash}"
allowed_scopes = ["customer:read", "ticket:create", "security:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}", "{TLS_MCP}"]

[[client]]
client_id = "post-only"
secret_hash = "{fast_hash}"
auth_methods = ["client_secret_post"]
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]

[[client]]
client_id = "no-default-scope"
secret_hash = "{fast_hash}"
allowed_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]

[[client]]
client_id = "introspector"
secret_hash = "{fast_hash}"
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]
can_introspect = true

[[client]]
client_id = "jwt-es256"
jwk = {es}
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]

[[client]]
client_id = "jwt-rs256"
jwk = {rs}
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]

[[client]]
client_id = "jwt-eddsa-pem"
public_key_pem = """{ed_pem}"""
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = ["{LOCAL_MCP}"]
"#,
        es = jwk_inline(&keys.es256),
        rs = jwk_inline(&keys.rs256),
        ed_pem = keys.eddsa.public_key_pem().unwrap(),
    )
}

/// Options for [`spawn_with`].
#[derive(Default, Clone)]
pub struct Opts {
    pub alg: Option<Algorithm>,
    pub resources: Option<Vec<&'static str>>,
    pub redis_url: Option<String>,
    pub keys_dir: Option<PathBuf>,
    pub reload: Option<Duration>,
    /// Fixed port (to restart "the same" server with the same issuer).
    pub port: Option<u16>,
    /// (per minute, burst) for the oauth budget.
    pub policy: Option<(u32, u32)>,
    pub trusted_proxies: Option<&'static str>,
}

pub async fn spawn() -> TestApp {
    spawn_with(Opts::default()).await
}

pub async fn spawn_with(opts: Opts) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = opts
        .keys_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("keys"));
    let clients_file = dir.path().join("clients.toml");
    let client_keys = test_keys();
    std::fs::write(&clients_file, registry(client_keys)).unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port.unwrap_or(0)))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut config = Config::with_paths(&base, keys_dir.clone(), clients_file.clone()).unwrap();
    if let Some(alg) = opts.alg {
        config.signing_alg = alg;
    }
    if let Some(r) = opts.resources {
        config.resources = r.into_iter().map(str::to_owned).collect();
    }
    config.redis_url = opts.redis_url.map(Into::into);
    // Tests that are not about rate limiting must not trip over it.
    let (rate, burst) = opts.policy.unwrap_or((60_000, 1_000));
    config.oauth_policy = ratelimit::Policy::new(rate, burst).unwrap();
    if let Some(t) = opts.trusted_proxies {
        config.rate_limit.trusted_proxies = ratelimit::TrustedProxies::parse(t).unwrap();
    }
    if let Some(r) = opts.reload {
        config.keys_reload_interval = r;
    }
    let app = App::build_with_listener(config, listener).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        keys_dir,
        client_keys,
        stop: Some(tx),
        handle: Some(handle),
        _dir: Some(dir),
    }
}

impl TestApp {
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap()
    }

    /// Stops the server and waits for it to finish (keeps the temp folder).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a form body (pairs are url-encoded) with optional Basic auth.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        pairs: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = form(pairs);
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            req = req.header("authorization", basic_header(id, secret));
        }
        req.send().await.unwrap()
    }

    /// A token for the fast client (client_secret_basic).
    pub async fn token(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![("grant_type", "client_credentials")];
        pairs.extend_from_slice(extra);
        let resp = self
            .post_form("/token", Some((FAST_ID, FAST_SECRET)), &pairs)
            .await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn jwks(&self) -> JwkSet {
        self.http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let resp = self
            .post_form(
                "/introspect",
                Some((FAST_ID, FAST_SECRET)),
                &[("token", token)],
            )
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Signs a client assertion with `key` for `client_id`.
    pub fn assertion(&self, key: &SigningKey, client_id: &str, overrides: Value) -> String {
        let now = auth::now_unix();
        let mut claims = json!({
            "iss": client_id, "sub": client_id, "aud": self.url("/token"),
            "iat": now, "exp": now + 120, "jti": uuid(),
        });
        if let (Some(obj), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                obj.insert(k.clone(), v.clone());
            }
        }
        auth::jwt::sign(key, "JWT", &claims).unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

pub fn uuid() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Asserts an RFC 6749 §5.2 error: status, `error` code, no-store headers.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

/// Splits a JWT into (header, claims) JSON without verifying.
pub fn decode_parts(token: &str) -> (Value, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let c = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&c).unwrap(),
    )
}
