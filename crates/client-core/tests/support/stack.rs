//! The real oauth-server and mcp-server, in-process on port 0 (started by
//! `stack`), optionally behind a fault-injecting proxy or a TLS-terminating
//! proxy.
//!
//! Shared by the integration tests of client-core, openai-client and
//! anthropic-client (`#[path]`-included), so all three exercise the same
//! stack.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::proxy::{self, Faults};

/// A dev client (config/clients.toml).
pub const OPENAI_CLIENT: (&str, &str) = ("openai-mcp-client", "openai-client-secret");
pub const ANTHROPIC_CLIENT: (&str, &str) = ("anthropic-mcp-client", "anthropic-client-secret");
/// Test clients with fast (sha256) secrets.
pub const READER_CLIENT: (&str, &str) = ("reader-client", "reader-secret-0123456789abcdefghij");
/// Allowed customer:read + ticket:create, default customer:read only.
pub const NARROW_CLIENT: (&str, &str) = ("narrow-client", "narrow-secret-0123456789abcdefghij");
/// A resource server's client that may introspect any token.
pub const INTROSPECTOR: (&str, &str) = ("introspector", "introspector-secret-0123456789abcd");
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
    /// The mcp-server names this authorization server instead (a hostile
    /// or misconfigured MCP server); it still verifies with the real keys.
    pub mcp_names_issuer: Option<String>,
    /// The mcp-server's per-client rate limit `(per minute, burst)`;
    /// default: high enough never to matter.
    pub rate_limit: Option<(u32, u32)>,
    /// Put the authorization server behind a proxy too (its issuer is the
    /// proxy's URL), so tests can count token requests.
    pub oauth_proxy: bool,
}

/// A running stack (`::stack::Stack`, which stops on drop) and what the
/// client tests read from it.
pub struct Stack {
    pub issuer: String,
    pub token_url: String,
    /// The URL clients use (also the resource they request tokens for).
    pub mcp_url: String,
    pub mcp: mcp_server::state::AppState,
    pub faults: Arc<Faults>,
    /// What the authorization server's proxy saw (with `oauth_proxy`).
    pub oauth_faults: Arc<Faults>,
    pub jwt_key_pem: String,
    pub dir: PathBuf,
    pub inner: ::stack::Stack,
}

fn clients(jwt_public_pem: &str) -> Vec<::stack::Client> {
    vec![
        ::stack::Client::with_secret(READER_CLIENT.0, READER_CLIENT.1)
            .allowed_scopes(&["customer:read"])
            .default_scopes(&["customer:read"]),
        ::stack::Client::with_secret(NARROW_CLIENT.0, NARROW_CLIENT.1)
            .allowed_scopes(&["customer:read", "ticket:create"])
            .default_scopes(&["customer:read"]),
        ::stack::Client::with_secret(INTROSPECTOR.0, INTROSPECTOR.1)
            .allowed_scopes(&["customer:read"])
            .line("can_introspect = true"),
        ::stack::Client::with_public_key_pem(JWT_CLIENT, jwt_public_pem)
            .allowed_scopes(&["customer:read", "ticket:create", "account:calculate"])
            .default_scopes(&["customer:read", "ticket:create", "account:calculate"]),
    ]
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Stack {
        let faults = Arc::new(Faults::default());
        let oauth_faults = Arc::new(Faults::default());
        let jwt_key = auth::keys::SigningKey::generate(auth::keys::Algorithm::ES256).unwrap();
        let mut builder =
            ::stack::Stack::builder().clients(clients(&jwt_key.public_key_pem().unwrap()));
        if let Some(url) = opts.redis_url.clone() {
            builder = builder.redis(::stack::Redis::Url(url));
        }
        if let Some(resource) = &opts.mcp_resource {
            builder = builder.resource(resource);
        }
        if opts.oauth_proxy {
            let seen = oauth_faults.clone();
            builder = builder.oauth_front(::stack::Front::http(move |f| {
                proxy::spawn_plain(f.listener, f.upstream, seen, f.stop);
            }));
        }
        let seen = faults.clone();
        builder = match opts.front {
            Front::Direct => builder,
            Front::Proxy => builder.mcp_front(::stack::Front::http(move |f| {
                proxy::spawn_plain(f.listener, f.upstream, seen, f.stop);
            })),
            Front::Tls { cert_pem, key_pem } => {
                builder.mcp_front(::stack::Front::https(move |f| {
                    proxy::spawn_tls(f.listener, f.upstream, seen, &cert_pem, &key_pem, f.stop);
                }))
            }
        };
        let token_ttl = opts.token_ttl;
        let alias = opts.mcp_issuer_alias;
        let named = opts.mcp_names_issuer.clone();
        let (per_minute, burst) = opts.rate_limit.unwrap_or((60_000, 10_000));
        let inner = builder
            .oauth_config(move |c| {
                if let Some(ttl) = token_ttl {
                    c.token_ttl = ttl;
                }
            })
            .mcp_config(move |c| {
                if alias {
                    c.issuer = c.issuer.replace("127.0.0.1", "localhost");
                }
                if let Some(named) = &named {
                    c.issuer = named.clone();
                }
                c.rate_limit.policy = ratelimit::Policy::new(per_minute, burst).unwrap();
            })
            .start()
            .await
            .unwrap();
        Stack {
            issuer: inner.issuer().to_owned(),
            token_url: inner.token_url(),
            mcp_url: inner.mcp_url().to_owned(),
            mcp: inner.mcp_state().unwrap().clone(),
            faults,
            oauth_faults,
            jwt_key_pem: jwt_key.to_pkcs8_pem().unwrap(),
            dir: inner.dir().to_owned(),
            inner,
        }
    }

    /// Variables for a client process or `ClientConfig::from_vars`.
    pub fn client_vars(&self, client: (&str, &str)) -> Vec<(String, String)> {
        vec![
            ("MCP_SERVER_URL".into(), self.mcp_url.clone()),
            ("OAUTH_ISSUER".into(), self.issuer.clone()),
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

    /// RFC 7662 introspection of `token` by a resource server's client:
    /// the `active` member.
    pub async fn is_active(&self, token: &str) -> bool {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/introspect",
                self.token_url.trim_end_matches("/token")
            ))
            .basic_auth(INTROSPECTOR.0, Some(INTROSPECTOR.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={}",
                url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["active"].as_bool().unwrap()
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
