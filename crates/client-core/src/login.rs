//! A person signs in: the authorization-code flow with PKCE (OAuth 2.1
//! §4.1, RFC 7636 S256) as the MCP authorization spec asks of a client.
//!
//! 1. Discovery (`discovery.rs`) finds the authorization server; with a
//!    configured `OAUTH_ISSUER` the MCP server may only confirm it.
//! 2. The client's identity: `OAUTH_CLIENT_ID` (pre-registered, public unless
//!    `OAUTH_CLIENT_SECRET` is set; an https URL is a client ID metadata
//!    document), else the client this store registered before at this
//!    issuer, else dynamic registration (RFC 7591) when the server offers it.
//! 3. The browser (a [`UserAgent`]) visits the authorization URL — `state`,
//!    the S256 challenge, `resource` (RFC 8707) and the scope (the
//!    challenge's, else `scopes_supported`, plus `offline_access` when the
//!    server lists it) — and comes back to a loopback redirect on a free port
//!    (RFC 8252 §7.3).
//! 4. The redirect is checked: `state` must match, `iss` (RFC 9207) must
//!    name the issuer when present and must be present when the server
//!    advertises it; an `error` is reported as the server said it.
//! 5. The code and verifier are exchanged for tokens; the refresh token goes
//!    to the token store (`store.rs`).

use std::sync::Arc;
use std::time::Duration;

use auth::ScopeSet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::Url;

use crate::config::{self, ClientAuth, ConfigError, Credentials, LoginConfig, SecretMethod, Vars};
use crate::discovery::{self, Discovered, DiscoveryError};
use crate::retry::RetryPolicy;
use crate::store::{LoginSink, StoredLogin, TokenStore};
use crate::tls;
use crate::token::{LoginParts, StepUp, TokenEndpoint, TokenError, TokenSource};

/// How long the loopback listener waits for the browser by default.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Name the client registers under (RFC 7591 `client_name`).
const CLIENT_NAME: &str = "secure-mcp command-line client";

/// Why a login failed. Each message is one line that names the fix.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot discover the authorization server: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the authorization server {issuer} {problem}")]
    Server { issuer: String, problem: String },
    #[error(
        "the authorization server offers no dynamic registration — set OAUTH_CLIENT_ID to a client registered there for this redirect (http://127.0.0.1/callback)"
    )]
    NoClient,
    #[error("dynamic registration at {url} failed: {detail}")]
    Registration { url: String, detail: String },
    #[error("the sign-in was refused: {error}{}", describe(.description))]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("the browser came back with {0} — start the login again")]
    BadRedirect(String),
    #[error(
        "nobody signed in within {0} s — run login again, or pass --no-browser and open the URL yourself"
    )]
    TimedOut(u64),
    #[error("the loopback redirect listener failed: {0}")]
    Listener(String),
    #[error(
        "not logged in at {issuer} for {resource} — run `{program} login`, or give a machine client's OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (the dev clients are in config/clients.toml)"
    )]
    NotLoggedIn {
        issuer: String,
        resource: String,
        program: String,
    },
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl LoginError {
    /// 2 for configuration mistakes, 1 otherwise.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::NoClient | Self::NotLoggedIn { .. }
        )
    }
}

/// The client a login uses, before or after registration.
#[derive(Debug, Clone)]
pub struct Client {
    pub credentials: Credentials,
    /// It came from dynamic registration.
    pub registered: bool,
}

/// Who visits the authorization URL and brings the redirect back.
#[async_trait::async_trait]
pub trait UserAgent: Send + Sync {
    /// Where the authorization server sends the browser back.
    fn redirect_uri(&self) -> &Url;
    /// Visits `url` and returns the redirect URL with its query.
    async fn authorize(&self, url: &Url) -> Result<Url, LoginError>;
}

/// The person's own browser and a loopback listener on a free port.
pub struct Browser {
    listener: tokio::sync::Mutex<tokio::net::TcpListener>,
    redirect: Url,
    open: bool,
    timeout: Duration,
}

impl Browser {
    /// Binds `127.0.0.1:0`; `open` starts the system browser, else the URL
    /// is only printed.
    pub async fn bind(open: bool, timeout: Duration) -> Result<Self, LoginError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| LoginError::Listener(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| LoginError::Listener(e.to_string()))?
            .port();
        let redirect = Url::parse(&format!("http://127.0.0.1:{port}/callback"))
            .map_err(|e| LoginError::Listener(e.to_string()))?;
        Ok(Self {
            listener: tokio::sync::Mutex::new(listener),
            redirect,
            open,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl UserAgent for Browser {
    fn redirect_uri(&self) -> &Url {
        &self.redirect
    }

    async fn authorize(&self, url: &Url) -> Result<Url, LoginError> {
        eprintln!("Sign in at:\n\n  {url}\n");
        if self.open && !open_browser(url) {
            eprintln!("(could not start a browser; open the URL above yourself)");
        }
        eprintln!("Waiting for the browser to return to {} …", self.redirect);
        let listener = self.listener.lock().await;
        tokio::time::timeout(self.timeout, accept_redirect(&listener, &self.redirect))
            .await
            .map_err(|_| LoginError::TimedOut(self.timeout.as_secs()))?
    }
}

/// Starts the platform's URL opener; `false` when there is none.
fn open_browser(url: &Url) -> bool {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Serves the loopback listener until a request for the redirect path
/// arrives; anything else (a favicon, a probe) gets 404 and is ignored.
async fn accept_redirect(
    listener: &tokio::net::TcpListener,
    redirect: &Url,
) -> Result<Url, LoginError> {
    loop {
        let (mut conn, _) = listener
            .accept()
            .await
            .map_err(|e| LoginError::Listener(e.to_string()))?;
        let Some(target) = read_request_target(&mut conn).await else {
            continue;
        };
        let Ok(url) = redirect.join(&target) else {
            let _ = respond(&mut conn, 400, "Bad request.").await;
            continue;
        };
        if url.path() != redirect.path() {
            let _ = respond(&mut conn, 404, "Not found.").await;
            continue;
        }
        let failed = url.query_pairs().any(|(k, _)| k == "error");
        let page = if failed {
            "Sign-in did not complete. You can close this tab; the terminal says why."
        } else {
            "Signed in. You can close this tab and return to the terminal."
        };
        let _ = respond(&mut conn, 200, page).await;
        return Ok(url);
    }
}

/// The request target of a `GET` (first line only, at most 8 KiB read).
async fn read_request_target(conn: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 8 * 1024 {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = std::str::from_utf8(&buf).ok()?;
    let mut parts = head.lines().next()?.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Some(target.to_owned()),
        _ => None,
    }
}

async fn respond(conn: &mut tokio::net::TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!("<!doctype html><meta charset=utf-8><title>secure-mcp</title><p>{text}</p>");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// A user agent without a person: follows the authorization URL with plain
/// HTTP and takes the redirect (servers that approve without a page, such as
/// the conformance suite's).
pub struct Unattended {
    http: reqwest::Client,
    redirect: Url,
}

impl Unattended {
    /// `http` must come from [`tls::TrustStore::http_client`] (it follows
    /// no redirects: the redirect is the answer).
    pub fn new(http: reqwest::Client, redirect: Url) -> Self {
        Self { http, redirect }
    }
}

#[async_trait::async_trait]
impl UserAgent for Unattended {
    fn redirect_uri(&self) -> &Url {
        &self.redirect
    }

    async fn authorize(&self, url: &Url) -> Result<Url, LoginError> {
        let resp = self
            .http
            .get(url.clone())
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| LoginError::BadRedirect(tls::describe(&e)))?;
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                LoginError::BadRedirect(format!(
                    "HTTP {} from the authorization endpoint and no redirect",
                    resp.status()
                ))
            })?;
        url.join(location)
            .map_err(|e| LoginError::BadRedirect(format!("an unusable Location ({e})")))
    }
}

/// What a login needs besides the person.
pub struct Login {
    pub http: reqwest::Client,
    pub found: Discovered,
    pub client: Client,
    pub retry: RetryPolicy,
}

impl Login {
    /// Picks the client (2. above), registering one when needed.
    pub async fn prepare(
        http: reqwest::Client,
        found: Discovered,
        configured: Option<Credentials>,
        previous: Option<&StoredLogin>,
        redirect: &Url,
        retry: RetryPolicy,
    ) -> Result<Self, LoginError> {
        let client = match (configured, previous) {
            (Some(credentials), _) => Client {
                credentials,
                registered: false,
            },
            (None, Some(prev)) if prev.registered && prev.issuer == found.issuer => Client {
                credentials: stored_credentials(prev),
                registered: true,
            },
            (None, _) => register(&http, &found, redirect).await?,
        };
        Ok(Self {
            http,
            found,
            client,
            retry,
        })
    }

    /// A token source for this login (not yet holding tokens).
    pub fn tokens(
        &self,
        refresh: Option<SecretString>,
        sink: Option<Arc<LoginSink>>,
        step_up: Option<Arc<dyn StepUp>>,
    ) -> TokenSource {
        TokenSource::for_login(
            self.http.clone(),
            TokenEndpoint {
                url: self.found.token_endpoint.clone(),
                issuer: Some(self.found.issuer.clone()),
                auth_methods: self.found.auth_methods.clone(),
            },
            self.client.credentials.clone(),
            self.found.resource.clone(),
            LoginParts {
                refresh,
                sink: sink.map(|s| s as Arc<dyn crate::token::RefreshSink>),
                step_up,
            },
            self.retry.clone(),
        )
    }

    /// The scope to ask for: `wanted`, else what discovery suggests, plus
    /// `offline_access` when the server lists it (a refresh token).
    pub fn scope(&self, wanted: Option<&ScopeSet>) -> Option<String> {
        let mut scope = wanted
            .map(ToString::to_string)
            .or_else(|| self.found.scope_to_request())
            .unwrap_or_default();
        let offline = "offline_access";
        if self
            .found
            .server
            .scopes_supported
            .iter()
            .any(|s| s == offline)
            && !scope.split(' ').any(|s| s == offline)
        {
            if !scope.is_empty() {
                scope.push(' ');
            }
            scope.push_str(offline);
        }
        (!scope.is_empty()).then_some(scope)
    }

    /// Runs steps 3–5 with `agent`; `tokens` receives the code's tokens.
    pub async fn authorize(
        &self,
        agent: &dyn UserAgent,
        tokens: &TokenSource,
        scope: Option<&str>,
    ) -> Result<Option<String>, LoginError> {
        let server = &self.found.server;
        let issuer = &self.found.issuer;
        let endpoint = server
            .authorization_endpoint
            .clone()
            .ok_or_else(|| LoginError::Server {
                issuer: issuer.clone(),
                problem: "publishes no authorization_endpoint — it does not offer sign-in".into(),
            })?;
        if server.published && !server.code_challenge_methods.iter().any(|m| m == "S256") {
            return Err(LoginError::Server {
                issuer: issuer.clone(),
                problem: "does not list S256 in code_challenge_methods_supported — refusing to sign in without PKCE".into(),
            });
        }
        let verifier = random_token(32)?;
        let state = random_token(16)?;
        let mut url = endpoint;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &self.client.credentials.client_id);
            q.append_pair("redirect_uri", agent.redirect_uri().as_str());
            q.append_pair("code_challenge", &auth::pkce::s256_challenge(&verifier));
            q.append_pair("code_challenge_method", "S256");
            q.append_pair("state", &state);
            q.append_pair("resource", &self.found.resource);
            if let Some(scope) = scope {
                q.append_pair("scope", scope);
            }
        }
        let back = agent.authorize(&url).await?;
        let published = if server.published {
            server.issuer.as_str()
        } else {
            issuer.as_str()
        };
        let code = check_redirect(&back, &state, published, server.iss_parameter_supported)?;
        let asked = scope.and_then(|s| ScopeSet::parse(s).ok());
        Ok(tokens
            .exchange_code(&code, &verifier, agent.redirect_uri().as_str(), asked)
            .await?)
    }

    /// What the store keeps for this login once `tokens` holds a refresh token.
    pub async fn stored(&self, tokens: &TokenSource, scope: Option<String>) -> Option<StoredLogin> {
        let refresh = tokens.refresh_token().await?;
        let (client_secret, client_auth_method) = match &self.client.credentials.auth {
            ClientAuth::Secret { secret, method } if self.client.registered => (
                Some(secret.expose_secret().to_owned()),
                method.map(|m| m.as_str().to_owned()),
            ),
            _ => (None, None),
        };
        Some(StoredLogin {
            issuer: self.found.issuer.clone(),
            resource: self.found.resource.clone(),
            client_id: self.client.credentials.client_id.clone(),
            client_secret,
            client_auth_method,
            registered: self.client.registered,
            token_endpoint: self.found.token_endpoint.to_string(),
            revocation_endpoint: self
                .found
                .server
                .revocation_endpoint
                .as_ref()
                .map(Url::to_string),
            refresh_token: refresh.expose_secret().to_owned(),
            scope,
            saved_at: u64::try_from(auth::now_unix()).unwrap_or(0),
        })
    }
}

/// The client credentials a stored login was made with.
pub fn stored_credentials(login: &StoredLogin) -> Credentials {
    let auth = match &login.client_secret {
        Some(secret) => ClientAuth::Secret {
            secret: SecretString::from(secret.clone()),
            method: login
                .client_auth_method
                .as_deref()
                .and_then(SecretMethod::parse),
        },
        None => ClientAuth::None,
    };
    Credentials {
        client_id: login.client_id.clone(),
        auth,
    }
}

/// Step 4: the code, if the redirect is the answer to our request.
/// `issuer` is the metadata's `issuer` as published: RFC 9207 §2.4 compares
/// `iss` to it by simple string comparison, with no normalisation (a
/// trailing-slash variant is another issuer).
pub fn check_redirect(
    back: &Url,
    state: &str,
    issuer: &str,
    iss_advertised: bool,
) -> Result<String, LoginError> {
    let get = |k: &str| {
        back.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    // RFC 9207 §2.4: a present `iss` is compared first, also on errors, so a
    // mix-up attacker's error page cannot speak for our server.
    match get("iss") {
        Some(iss) if iss != issuer => {
            return Err(LoginError::BadRedirect(format!(
                "iss {iss:?}, but the sign-in was at {issuer} (RFC 9207 mix-up defence)"
            )));
        }
        None if iss_advertised => {
            return Err(LoginError::BadRedirect(format!(
                "no iss, although {issuer} says it sends one (RFC 9207)"
            )));
        }
        _ => {}
    }
    if get("state").as_deref() != Some(state) {
        return Err(LoginError::BadRedirect(
            "a state that is not this login's".into(),
        ));
    }
    if let Some(error) = get("error") {
        return Err(LoginError::Denied {
            error,
            description: get("error_description"),
        });
    }
    get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| LoginError::BadRedirect("no code".into()))
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    client_secret: Option<String>,
    token_endpoint_auth_method: Option<String>,
}

/// RFC 7591 registration of a native client with this redirect URI.
async fn register(
    http: &reqwest::Client,
    found: &Discovered,
    redirect: &Url,
) -> Result<Client, LoginError> {
    let url = found
        .server
        .registration_endpoint
        .clone()
        .ok_or(LoginError::NoClient)?;
    let fail = |detail: String| LoginError::Registration {
        url: url.to_string(),
        detail,
    };
    let offline = found
        .server
        .scopes_supported
        .iter()
        .any(|s| s == "offline_access");
    let mut body = serde_json::json!({
        "client_name": CLIENT_NAME,
        "redirect_uris": [redirect.as_str()],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    });
    if let Some(scope) = found.scope_to_request() {
        let scope = if offline && !scope.split(' ').any(|s| s == "offline_access") {
            format!("{scope} offline_access")
        } else {
            scope
        };
        body["scope"] = serde_json::Value::String(scope);
    }
    let resp = http
        .post(url.clone())
        .header("accept", "application/json")
        .json(&body)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| fail(tls::describe(&e)))?;
    let status = resp.status();
    let bytes = crate::read::read_capped(resp, crate::read::METADATA_MAX)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                let code = v["error"].as_str()?.to_owned();
                Some(match v["error_description"].as_str() {
                    Some(d) => format!("{code} ({d})"),
                    None => code,
                })
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(fail(format!(
            "{detail} — ask the server's operator for a client id and set OAUTH_CLIENT_ID"
        )));
    }
    let reg: Registered =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("unusable answer: {e}")))?;
    let auth = match reg.client_secret.filter(|s| !s.is_empty()) {
        None => ClientAuth::None,
        Some(secret) => ClientAuth::Secret {
            secret: SecretString::from(secret),
            method: reg
                .token_endpoint_auth_method
                .as_deref()
                .and_then(SecretMethod::parse),
        },
    };
    tracing::info!(client_id = %reg.client_id, "registered this client at the authorization server");
    Ok(Client {
        credentials: Credentials {
            client_id: reg.client_id,
            auth,
        },
        registered: true,
    })
}

/// `n` random bytes, base64url without padding (PKCE verifier, state).
pub fn random_token(n: usize) -> Result<String, LoginError> {
    use base64::Engine as _;
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| LoginError::Listener("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Step-up for a login: the person is asked again for the wider scope.
pub struct AskAgain {
    pub login: Arc<Login>,
    pub open_browser: bool,
    pub timeout: Duration,
    /// Conformance: an [`Unattended`] agent instead of the browser.
    pub unattended: bool,
}

#[async_trait::async_trait]
impl StepUp for AskAgain {
    async fn authorize(&self, tokens: &TokenSource, scopes: &ScopeSet) -> Result<(), TokenError> {
        let step = |e: LoginError| TokenError::StepUp(format!("asking for more scopes: {e}"));
        let scope = self.login.scope(Some(scopes));
        if self.unattended {
            let redirect = Url::parse("http://127.0.0.1:1/callback")
                .map_err(|e| TokenError::StepUp(e.to_string()))?;
            let agent = Unattended::new(self.login.http.clone(), redirect);
            self.login
                .authorize(&agent, tokens, scope.as_deref())
                .await
                .map_err(step)?;
        } else {
            eprintln!("The MCP server needs more access ({scopes}); asking you to approve it.");
            let agent = Browser::bind(self.open_browser, self.timeout)
                .await
                .map_err(step)?;
            self.login
                .authorize(&agent, tokens, scope.as_deref())
                .await
                .map_err(step)?;
        }
        Ok(())
    }
}

/// The client the CLI configured for a login: `OAUTH_CLIENT_ID` (and its
/// secret), or none (registration or the stored client).
pub fn configured_client(vars: &impl Vars) -> Result<Option<Credentials>, ConfigError> {
    let Some(client_id) = vars.get("OAUTH_CLIENT_ID") else {
        return Ok(None);
    };
    if client_id.starts_with("http://") || client_id.starts_with("https://") {
        config::parse_url("OAUTH_CLIENT_ID", &client_id)?;
    }
    let auth = match vars.get("OAUTH_CLIENT_SECRET") {
        Some(secret) => ClientAuth::Secret {
            secret: SecretString::from(secret),
            method: None,
        },
        None => ClientAuth::None,
    };
    Ok(Some(Credentials {
        client_id: client_id.trim().to_owned(),
        auth,
    }))
}

/// Discovery for a login: with the configured issuer pinned.
pub async fn discover(
    http: &reqwest::Client,
    mcp_url: &Url,
    issuer: &str,
    retry: &RetryPolicy,
) -> Result<Discovered, LoginError> {
    discovery::discover_for(http, mcp_url, issuer, retry)
        .await
        .map_err(|e| match e {
            e @ DiscoveryError::ForeignIssuer { .. } => {
                LoginError::Config(ConfigError::new("OAUTH_ISSUER", e.to_string()))
            }
            e => LoginError::Discovery(e),
        })
}

/// `login`: signs the person in and keeps the login in `store`.
pub async fn login(
    http: reqwest::Client,
    config: &LoginConfig,
    configured: Option<Credentials>,
    store: Arc<dyn TokenStore>,
    agent: &dyn UserAgent,
) -> Result<StoredLogin, LoginError> {
    let key = config.store_key();
    let previous = store.load(&key)?;
    let found = discover(&http, &config.mcp_url, &config.issuer, &config.retry).await?;
    let login = Login::prepare(
        http,
        found,
        configured,
        previous.as_ref(),
        agent.redirect_uri(),
        config.retry.clone(),
    )
    .await?;
    let tokens = login.tokens(None, None, None);
    let scope = login.scope(config.scopes.as_ref());
    let granted = login.authorize(agent, &tokens, scope.as_deref()).await?;
    let stored = login
        .stored(&tokens, granted.or(scope))
        .await
        .ok_or_else(|| LoginError::Server {
            issuer: login.found.issuer.clone(),
            problem: "issued no refresh token, so the login cannot be kept — the client needs the refresh_token grant".into(),
        })?;
    store.save(&key, &stored)?;
    // The login it replaces is of no use to anyone any more.
    if let Some(old) = previous.filter(|p| p.refresh_token != stored.refresh_token)
        && let Err(e) = revoke(&login.http, &old, &config.retry).await
    {
        tracing::debug!(error = %e, "revoking the replaced login");
    }
    Ok(stored)
}

/// `logout`: revokes the stored refresh token (RFC 7009) and deletes the
/// login. `Ok(None)` when nobody was logged in.
pub async fn logout(
    http: reqwest::Client,
    config: &LoginConfig,
    store: Arc<dyn TokenStore>,
) -> Result<Option<StoredLogin>, LoginError> {
    let key = config.store_key();
    let Some(stored) = store.load(&key)? else {
        return Ok(None);
    };
    // Deleted first: a failed revocation must not leave a login behind
    // that the person believes is gone.
    store.delete(&key)?;
    revoke(&http, &stored, &config.retry).await?;
    Ok(Some(stored))
}

async fn revoke(
    http: &reqwest::Client,
    stored: &StoredLogin,
    retry: &RetryPolicy,
) -> Result<(), LoginError> {
    let Some(url) = stored.revocation_endpoint.as_deref() else {
        return Err(LoginError::Server {
            issuer: stored.issuer.clone(),
            problem: "offers no revocation endpoint: the login is deleted here, but its refresh token stays valid until it expires".into(),
        });
    };
    let url = config::parse_url("revocation_endpoint", url)?;
    let tokens = TokenSource::for_login(
        http.clone(),
        TokenEndpoint {
            url: config::parse_url("token_endpoint", &stored.token_endpoint)?,
            issuer: Some(stored.issuer.clone()),
            auth_methods: Vec::new(),
        },
        stored_credentials(stored),
        stored.resource.clone(),
        LoginParts::default(),
        retry.clone(),
    );
    tokens
        .revoke(
            &url,
            &SecretString::from(stored.refresh_token.clone()),
            "refresh_token",
        )
        .await?;
    Ok(())
}

/// Tokens from the person's stored login, renewed by refresh; a step-up
/// asks the person in the browser.
pub async fn session_tokens(
    http: reqwest::Client,
    config: &LoginConfig,
    store: Arc<dyn TokenStore>,
) -> Result<TokenSource, LoginError> {
    let key = config.store_key();
    let Some(stored) = store.load(&key)? else {
        return Err(LoginError::NotLoggedIn {
            issuer: config.issuer.clone(),
            resource: config.mcp_url.to_string(),
            program: crate::cli::program_name(),
        });
    };
    let found = discover(&http, &config.mcp_url, &config.issuer, &config.retry).await?;
    let login = Arc::new(Login {
        http,
        found,
        client: Client {
            credentials: stored_credentials(&stored),
            registered: stored.registered,
        },
        retry: config.retry.clone(),
    });
    let refresh = SecretString::from(stored.refresh_token.clone());
    let sink = Arc::new(LoginSink::new(store, key, stored));
    let step_up = Arc::new(AskAgain {
        login: login.clone(),
        open_browser: true,
        timeout: DEFAULT_LOGIN_TIMEOUT,
        unattended: false,
    });
    Ok(login.tokens(Some(refresh), Some(sink), Some(step_up)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const ISSUER: &str = "https://auth.example.com";

    #[test]
    fn the_redirect_must_answer_our_request() {
        let ok =
            url("http://127.0.0.1:5/callback?code=abc&state=s1&iss=https%3A%2F%2Fauth.example.com");
        assert_eq!(check_redirect(&ok, "s1", ISSUER, true).unwrap(), "abc");
        // RFC 9207: simple string comparison, so a trailing slash differs.
        let slash = url(
            "http://127.0.0.1:5/callback?code=abc&state=s1&iss=https%3A%2F%2Fauth.example.com%2F",
        );
        assert_eq!(
            check_redirect(&slash, "s1", ISSUER, true)
                .unwrap_err()
                .to_string(),
            "the browser came back with iss \"https://auth.example.com/\", but the sign-in was at https://auth.example.com (RFC 9207 mix-up defence) — start the login again"
        );
        let cases = [
            (
                "http://127.0.0.1:5/callback?code=abc&state=s2",
                false,
                "the browser came back with a state that is not this login's — start the login again",
            ),
            (
                "http://127.0.0.1:5/callback?code=abc&state=s1",
                true,
                "the browser came back with no iss, although https://auth.example.com says it sends one (RFC 9207) — start the login again",
            ),
            (
                "http://127.0.0.1:5/callback?code=abc&state=s1&iss=https%3A%2F%2Fevil.example",
                false,
                "the browser came back with iss \"https://evil.example\", but the sign-in was at https://auth.example.com (RFC 9207 mix-up defence) — start the login again",
            ),
            (
                "http://127.0.0.1:5/callback?error=access_denied&error_description=the+user+said+no&state=s1",
                false,
                "the sign-in was refused: access_denied (the user said no)",
            ),
            (
                "http://127.0.0.1:5/callback?state=s1",
                false,
                "the browser came back with no code — start the login again",
            ),
        ];
        for (back, advertised, message) in cases {
            assert_eq!(
                check_redirect(&url(back), "s1", ISSUER, advertised)
                    .unwrap_err()
                    .to_string(),
                message,
                "{back}"
            );
        }
    }

    #[tokio::test]
    async fn the_loopback_listener_answers_only_its_redirect() {
        let browser = Browser::bind(false, Duration::from_secs(10)).await.unwrap();
        let redirect = browser.redirect_uri().clone();
        assert_eq!(redirect.host_str(), Some("127.0.0.1"));
        assert_eq!(redirect.path(), "/callback");
        let listener = browser.listener.lock().await;
        let base = redirect.clone();
        let visitor = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let favicon = http
                .get(base.join("/favicon.ico").unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(favicon.status(), 404);
            let mut back = base.clone();
            back.set_query(Some("code=c1&state=s1"));
            let resp = http.get(back).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["cache-control"], "no-store");
            assert!(resp.text().await.unwrap().contains("Signed in."));
        });
        let got = accept_redirect(&listener, &redirect).await.unwrap();
        assert_eq!(got.query(), Some("code=c1&state=s1"));
        visitor.await.unwrap();
    }

    #[test]
    fn pkce_values_are_long_and_url_safe() {
        let v = random_token(32).unwrap();
        assert_eq!(v.len(), 43);
        assert!(auth::pkce::verifier_is_valid(&v));
        assert_ne!(v, random_token(32).unwrap());
    }
}
