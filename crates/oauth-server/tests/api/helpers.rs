//! Spawning the real oauth-server (through `stack`) and talking to it.

use std::path::PathBuf;
use std::time::Duration;

use auth::jwk::JwkSet;
use auth::keys::{Algorithm, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
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

/// The oauth-server alone (a `stack` without MCP replicas), running until
/// drop.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub keys_dir: PathBuf,
    pub client_keys: &'static TestKeys,
    pub stack: stack::Stack,
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

/// The dev registry plus these (the stack appends them to its copy of
/// config/clients.toml).
fn clients(keys: &TestKeys) -> Vec<stack::Client> {
    let read = ["customer:read"];
    let basic = |id: &str| {
        stack::Client::with_secret(id, FAST_SECRET)
            .allowed_scopes(&read)
            .resources(&[LOCAL_MCP])
    };
    let jwt = |id: &str, key: String| {
        stack::Client::new(id)
            .line(&key)
            .allowed_scopes(&read)
            .default_scopes(&read)
            .resources(&[LOCAL_MCP])
    };
    vec![
        stack::Client::with_secret(FAST_ID, FAST_SECRET)
            .allowed_scopes(&["customer:read", "ticket:create", "security:read"])
            .default_scopes(&read)
            .resources(&[LOCAL_MCP, TLS_MCP]),
        basic("post-only")
            .default_scopes(&read)
            .line(r#"auth_methods = ["client_secret_post"]"#),
        basic("no-default-scope"),
        basic("introspector")
            .default_scopes(&read)
            .line("can_introspect = true"),
        jwt("jwt-es256", format!("jwk = {}", jwk_inline(&keys.es256))),
        jwt("jwt-rs256", format!("jwk = {}", jwk_inline(&keys.rs256))),
        jwt(
            "jwt-eddsa-pem",
            format!(
                "public_key_pem = \"\"\"{}\"\"\"",
                keys.eddsa.public_key_pem().unwrap()
            ),
        ),
    ]
}

/// A change to the oauth-server's config (see [`Opts::configure`]).
pub type Configure = std::sync::Arc<dyn Fn(&mut oauth_server::Config) + Send + Sync>;

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
    /// Any further change to the config, applied last.
    pub configure: Option<Configure>,
}

pub async fn spawn() -> TestApp {
    spawn_with(Opts::default()).await
}

pub async fn spawn_with(opts: Opts) -> TestApp {
    let client_keys = test_keys();
    let mut builder = stack::Stack::builder()
        .mcp_replicas(0)
        .clients(clients(client_keys));
    if let Some(alg) = opts.alg {
        builder = builder.signing_alg(alg);
    }
    if let Some(dir) = &opts.keys_dir {
        builder = builder.keys_dir(dir);
    }
    if let Some(port) = opts.port {
        builder = builder.oauth_port(port);
    }
    if let Some(url) = &opts.redis_url {
        builder = builder.redis(stack::Redis::Url(url.clone()));
    }
    let stack = builder
        .oauth_config(move |config| {
            if let Some(r) = opts.resources {
                config.resources = r.into_iter().map(str::to_owned).collect();
            }
            // Tests that are not about rate limiting must not trip over it.
            let (rate, burst) = opts.policy.unwrap_or((60_000, 1_000));
            config.oauth_policy = ratelimit::Policy::new(rate, burst).unwrap();
            if let Some(t) = opts.trusted_proxies {
                config.rate_limit.trusted_proxies = ratelimit::TrustedProxies::parse(t).unwrap();
            }
            if let Some(r) = opts.reload {
                config.keys_reload_interval = r;
            }
            if let Some(f) = &opts.configure {
                f(config);
            }
        })
        .start()
        .await
        .unwrap();
    TestApp {
        base: stack.issuer().to_owned(),
        http: reqwest::Client::new(),
        keys_dir: stack.keys_dir().to_owned(),
        client_keys,
        stack,
    }
}

impl TestApp {
    pub fn port(&self) -> u16 {
        self.stack.oauth().addr().port()
    }

    /// Stops the server and waits for it to finish (keeps the temp folder).
    pub async fn stop(&mut self) {
        self.stack.oauth().stop().await.unwrap();
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
