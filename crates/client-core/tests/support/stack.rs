//! The real oauth-server and mcp-server, in-process on port 0, optionally
//! behind a fault-injecting proxy or a TLS-terminating proxy.
//!
//! Shared by the integration tests of client-core, openai-client and
//! anthropic-client (`#[path]`-included), so all three exercise the same
//! stack.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::proxy::{self, Faults};

/// A dev client (config/clients.toml).
pub const OPENAI_CLIENT: (&str, &str) = ("openai-mcp-client", "openai-client-secret");
pub const ANTHROPIC_CLIENT: (&str, &str) = ("anthropic-mcp-client", "anthropic-client-secret");
/// Test clients with fast (sha256) secrets.
pub const READER_CLIENT: (&str, &str) = ("reader-client", "reader-secret-0123456789abcdefghij");
/// Allowed customer:read + ticket:create, default customer:read only.
pub const NARROW_CLIENT: (&str, &str) = ("narrow-client", "narrow-secret-0123456789abcdefghij");
/// private_key_jwt client (key in [`Stack::jwt_key_pem`]).
pub const JWT_CLIENT: &str = "jwt-client";

/// How the MCP server is exposed to the client.
#[derive(Clone, Default)]
pub enum Front {
    /// The client talks to the mcp-server directly.
    #[default]
    Direct,
    /// Through a plain-HTTP proxy that can inject faults.
    Proxy,
    /// Through a TLS proxy presenting `cert_pem`/`key_pem` at `https://localhost:PORT`.
    Tls { cert_pem: String, key_pem: String },
}

/// Stack options.
#[derive(Clone, Default)]
pub struct Options {
    pub front: Front,
    pub token_ttl: Option<Duration>,
    pub redis_url: Option<String>,
    /// The mcp-server's own resource URI (default: the URL clients use).
    pub mcp_resource: Option<String>,
    /// The mcp-server names the authorization server `http://localhost:PORT`
    /// while the server calls itself `http://127.0.0.1:PORT` (issuer mismatch).
    pub mcp_issuer_alias: bool,
    /// The mcp-server's per-client rate limit `(per minute, burst)`;
    /// default: high enough never to matter.
    pub rate_limit: Option<(u32, u32)>,
    /// Put the authorization server behind a proxy too (its issuer is the
    /// proxy's URL), so tests can count token requests.
    pub oauth_proxy: bool,
}

/// A running stack; stops on drop.
pub struct Stack {
    pub issuer: String,
    pub token_url: String,
    /// The URL clients use (also the resource they request tokens for).
    pub mcp_url: String,
    pub mcp_addr: SocketAddr,
    pub oauth: oauth_server::state::AppState,
    pub mcp: mcp_server::state::AppState,
    pub faults: Arc<Faults>,
    /// What the authorization server's proxy saw (with `oauth_proxy`).
    pub oauth_faults: Arc<Faults>,
    pub jwt_key_pem: String,
    pub dir: PathBuf,
    stop: CancellationToken,
    _dir: TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn dev_registry() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/clients.toml"
    ))
    .unwrap()
}

fn registry(resources: &[&str], jwt_public_pem: &str) -> String {
    let list = resources
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let dev = dev_registry();
    let dev_line =
        r#"allowed_resources = ["http://localhost:8000/mcp", "https://localhost:8001/mcp"]"#;
    assert!(dev.contains(dev_line), "config/clients.toml changed shape");
    let dev = dev.replace(dev_line, &format!("allowed_resources = [{list}]"));
    let reader = oauth_server::clients::hash_sha256(READER_CLIENT.1.as_bytes());
    let narrow = oauth_server::clients::hash_sha256(NARROW_CLIENT.1.as_bytes());
    format!(
        r#"{dev}
[[client]]
client_id = "{reader_id}"
secret_hash = "{reader}"
allowed_scopes = ["customer:read"]
default_scopes = ["customer:read"]
allowed_resources = [{list}]

[[client]]
client_id = "{narrow_id}"
secret_hash = "{narrow}"
allowed_scopes = ["customer:read", "ticket:create"]
default_scopes = ["customer:read"]
allowed_resources = [{list}]

[[client]]
client_id = "{JWT_CLIENT}"
public_key_pem = """{jwt_public_pem}"""
allowed_scopes = ["customer:read", "ticket:create", "account:calculate"]
default_scopes = ["customer:read", "ticket:create", "account:calculate"]
allowed_resources = [{list}]
"#,
        reader_id = READER_CLIENT.0,
        narrow_id = NARROW_CLIENT.0,
    )
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let faults = Arc::new(Faults::default());

        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_port = public.local_addr().unwrap().port();
        let mcp_url = match &opts.front {
            Front::Tls { .. } => format!("https://localhost:{public_port}/mcp"),
            _ => format!("http://127.0.0.1:{public_port}/mcp"),
        };
        let mcp_resource = opts.mcp_resource.clone().unwrap_or_else(|| mcp_url.clone());

        let oauth_public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!(
            "http://127.0.0.1:{}",
            oauth_public.local_addr().unwrap().port()
        );
        let (oauth_listener, oauth_public) = if opts.oauth_proxy {
            (
                TcpListener::bind("127.0.0.1:0").await.unwrap(),
                Some(oauth_public),
            )
        } else {
            (oauth_public, None)
        };
        let real_issuer = format!(
            "http://127.0.0.1:{}",
            oauth_listener.local_addr().unwrap().port()
        );
        let oauth_faults = Arc::new(Faults::default());
        if let Some(listener) = oauth_public {
            proxy::spawn_plain(
                listener,
                real_issuer.clone(),
                oauth_faults.clone(),
                stop.clone(),
            );
        }

        let jwt_key = auth::keys::SigningKey::generate(auth::keys::Algorithm::ES256).unwrap();
        let clients_file = dir.path().join("clients.toml");
        std::fs::write(
            &clients_file,
            registry(
                &[mcp_url.as_str(), mcp_resource.as_str()],
                &jwt_key.public_key_pem().unwrap(),
            ),
        )
        .unwrap();
        let mut oauth_config =
            oauth_server::Config::with_paths(&issuer, dir.path().join("keys"), clients_file)
                .unwrap();
        oauth_config.resources = vec![mcp_url.clone(), mcp_resource.clone()];
        oauth_config.resources.dedup();
        if let Some(ttl) = opts.token_ttl {
            oauth_config.token_ttl = ttl;
        }
        oauth_config.redis_url = opts.redis_url.clone().map(Into::into);
        let oauth_app = oauth_server::App::build_with_listener(oauth_config, oauth_listener)
            .await
            .unwrap();
        let oauth = oauth_app.state().clone();
        let oauth_stop = stop.clone();
        tokio::spawn(oauth_app.run_until(async move { oauth_stop.cancelled().await }));

        let (mcp_listener, public) = match opts.front {
            Front::Direct => (public, None),
            _ => (
                TcpListener::bind("127.0.0.1:0").await.unwrap(),
                Some(public),
            ),
        };
        let mcp_addr = mcp_listener.local_addr().unwrap();
        let mcp_issuer = if opts.mcp_issuer_alias {
            issuer.replace("127.0.0.1", "localhost")
        } else {
            issuer.clone()
        };
        let mut mcp_config = mcp_server::Config::new(&mcp_resource, &mcp_issuer).unwrap();
        mcp_config.jwks_url = Some(format!("{real_issuer}/jwks"));
        mcp_config.redis_url = opts.redis_url.clone().map(Into::into);
        let (per_minute, burst) = opts.rate_limit.unwrap_or((60_000, 10_000));
        mcp_config.rate_limit.policy = ratelimit::Policy::new(per_minute, burst).unwrap();
        let mcp_app = mcp_server::App::build_with_listener(mcp_config, mcp_listener)
            .await
            .unwrap();
        let mcp = mcp_app.state().clone();
        let mcp_stop = mcp_app.shutdown_token();
        let outer = stop.clone();
        tokio::spawn(async move {
            outer.cancelled().await;
            mcp_stop.cancel();
        });
        tokio::spawn(mcp_app.run_until_stopped());

        let upstream = format!("http://{mcp_addr}");
        match opts.front {
            Front::Direct => {}
            Front::Proxy => {
                proxy::spawn_plain(public.unwrap(), upstream, faults.clone(), stop.clone());
            }
            Front::Tls { cert_pem, key_pem } => {
                proxy::spawn_tls(
                    public.unwrap(),
                    upstream,
                    faults.clone(),
                    &cert_pem,
                    &key_pem,
                    stop.clone(),
                );
            }
        }

        Stack {
            token_url: format!("{issuer}/token"),
            issuer,
            mcp_url,
            mcp_addr,
            oauth,
            mcp,
            faults,
            oauth_faults,
            jwt_key_pem: jwt_key.to_pkcs8_pem().unwrap(),
            dir: dir.path().to_owned(),
            stop,
            _dir: dir,
        }
    }

    /// Variables for a client process or `ClientConfig::from_vars`.
    pub fn client_vars(&self, client: (&str, &str)) -> Vec<(String, String)> {
        vec![
            ("MCP_SERVER_URL".into(), self.mcp_url.clone()),
            ("OAUTH_CLIENT_ID".into(), client.0.into()),
            ("OAUTH_CLIENT_SECRET".into(), client.1.into()),
        ]
    }

    /// A `ClientConfig` for `client`, plus `extra` variables.
    pub fn config(
        &self,
        client: (&str, &str),
        extra: &[(&str, &str)],
    ) -> client_core::ClientConfig {
        let mut vars = self.client_vars(client);
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        let lookup = move |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let mut config = client_core::ClientConfig::from_vars(&lookup).unwrap();
        config.retry = fast_retry();
        config
    }

    /// Revokes `token` at the authorization server (RFC 7009).
    pub async fn revoke(&self, client: (&str, &str), token: &str) {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/revoke",
                self.token_url.trim_end_matches("/token")
            ))
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("token_type_hint", "access_token")
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "revoke: {}", resp.text().await.unwrap());
    }
}

/// Retries fast enough for tests, bounded like production.
pub fn fast_retry() -> client_core::RetryPolicy {
    client_core::RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_elapsed: Duration::from_secs(20),
    }
}

/// The claims of a JWT, unverified (to check what the server issued).
pub fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// An HTTP client with the production trust store (webpki roots only).
pub fn http() -> reqwest::Client {
    client_core::tls::TrustStore::webpki_only()
        .http_client()
        .unwrap()
}
