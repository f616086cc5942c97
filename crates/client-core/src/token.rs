//! Access tokens: the client_credentials grant (OAuth 2.1 §4.2, RFC 6749
//! §4.4) for machine clients, the authorization_code and refresh_token
//! grants (OAuth 2.1 §4.1, §4.3) for a person's login.
//!
//! [`TokenSource`] is the only place that talks to the token endpoint:
//! - client authentication: client_secret_basic (default), client_secret_post
//!   (when forced or the only method the server lists), private_key_jwt
//!   (RFC 7523 assertion signed with `OAUTH_CLIENT_KEY_FILE`), or none (a
//!   public client sends only its `client_id`);
//! - a login's refresh token rotates on every use; each new one is handed to
//!   the [`RefreshSink`] (the token store) before the access token is used;
//! - `resource` (RFC 8707) is sent on every request;
//! - the token is cached and renewed when a quarter of its life (at most
//!   30 s) remains, so callers never send an expired token;
//! - [`TokenSource::renew`] replaces a token the resource server rejected,
//!   once: concurrent callers that saw the same rejected token share one
//!   renewal;
//! - [`TokenSource::step_up`] asks once per scope for a token with one more
//!   scope after a 403 `insufficient_scope` (a login asks the person again,
//!   through its [`StepUp`] hook: a refresh token cannot widen a grant);
//! - 429/5xx/connection failures are retried through [`crate::retry`].
//!
//! The lock is held while a token is fetched, so parallel tool calls never
//! stampede the authorization server.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth::ScopeSet;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::config::{ClientAuth, Credentials, SecretMethod};
use crate::retry::{self, RetryPolicy};
use crate::tls;

/// RFC 7523 client assertion type.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest time before expiry at which a token is renewed.
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(30);

/// Where and how to ask for tokens.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub url: Url,
    /// The issuer (the `aud` of private_key_jwt assertions); the endpoint URL when unknown.
    pub issuer: Option<String>,
    /// `token_endpoint_auth_methods_supported` from the server's metadata.
    pub auth_methods: Vec<String>,
}

/// An access token; `Debug` does not show it.
pub struct AccessToken {
    value: SecretString,
    scopes: Option<ScopeSet>,
    renew_at: Option<Instant>,
    expires_in: Option<Duration>,
    serial: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("serial", &self.serial)
            .field("scopes", &self.scopes)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The bearer value (to put in an `Authorization` header, nowhere else).
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// The scopes granted, when the server said (or we asked for them).
    pub fn scopes(&self) -> Option<&ScopeSet> {
        self.scopes.as_ref()
    }

    /// Which fetch produced this token (1 = the first).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Lifetime the server announced.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|at| now < at)
    }
}

/// Why no token could be had. Every message names what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("the authorization server refused client `{client_id}`: {code}{} — {}", describe(.description), hint(.code))]
    OAuth {
        client_id: String,
        code: String,
        description: Option<String>,
    },
    #[error("token endpoint {url} answered HTTP {status} {summary}")]
    Status {
        url: String,
        status: u16,
        summary: String,
    },
    #[error("cannot reach the token endpoint {url} ({summary}): {detail}")]
    Unreachable {
        url: String,
        summary: String,
        detail: String,
    },
    #[error("token endpoint {url} sent an unusable response: {detail}")]
    BadResponse { url: String, detail: String },
    #[error("cannot sign the private_key_jwt client assertion: {0}")]
    Assertion(String),
    /// The server answered a scope request with fewer scopes (it grants the
    /// intersection of what is asked and what is allowed).
    #[error("the authorization server granted only `{granted}`")]
    ScopeNotGranted { granted: String },
    /// The refresh token was refused (expired, revoked or rotated elsewhere).
    #[error(
        "the login at {issuer} has expired or was revoked ({code}) — run `{program} login` again"
    )]
    LoginExpired {
        issuer: String,
        code: String,
        program: String,
    },
    /// The rotated refresh token could not be saved: the login would be lost.
    #[error("cannot save the renewed login: {0}")]
    Store(String),
    /// Asking the person for more scopes failed.
    #[error("{0}")]
    StepUp(String),
}

impl TokenError {
    /// The OAuth error code, for refusals.
    pub fn oauth_code(&self) -> Option<&str> {
        match self {
            Self::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

fn hint(code: &str) -> &'static str {
    match code {
        "invalid_client" => {
            "check OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (or OAUTH_CLIENT_KEY_FILE) against the server's client registry"
        }
        "invalid_scope" => {
            "request only scopes this client is allowed (OAUTH_SCOPES), or add them to its allowed_scopes on the authorization server"
        }
        "invalid_target" => {
            "MCP_SERVER_URL must be a resource this client may get tokens for (allowed_resources) and that the authorization server serves (OAUTH_RESOURCES)"
        }
        "unauthorized_client" => {
            "this client is not allowed the client_credentials grant (grant_types in the client registry)"
        }
        "unsupported_grant_type" => "the authorization server does not offer client_credentials",
        _ => "see the authorization server's log for details",
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
    scope: Option<String>,
    refresh_token: Option<String>,
}

/// Where a login's rotated refresh tokens go (the token store).
pub trait RefreshSink: Send + Sync {
    /// Saves `refresh` (and the scope it carries) before it is relied on.
    fn save(&self, refresh: &SecretString, scope: Option<&str>) -> Result<(), String>;
}

/// Asks the person to authorize `scopes` again (a login's step-up).
#[async_trait::async_trait]
pub trait StepUp: Send + Sync {
    /// Runs the authorization-code flow for `scopes` and exchanges the code
    /// with `tokens` ([`TokenSource::exchange_code`]).
    async fn authorize(&self, tokens: &TokenSource, scopes: &ScopeSet) -> Result<(), TokenError>;
}

/// One token request's grant.
enum GrantRequest<'a> {
    ClientCredentials,
    Refresh(&'a SecretString),
    Code {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
}

impl GrantRequest<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Refresh(_) => "refresh_token",
            Self::Code { .. } => "authorization_code",
        }
    }
}

/// What the token endpoint answered.
struct Issued {
    token: Arc<AccessToken>,
    refresh: Option<SecretString>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

struct State {
    current: Option<Arc<AccessToken>>,
    /// A login's current refresh token (`None` for client_credentials).
    refresh: Option<SecretString>,
    /// Scopes to request; `None` = the client's default scopes.
    requested: Option<ScopeSet>,
    /// Scopes a step-up was already attempted for (bounds step-ups).
    stepped_up: HashSet<String>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: TokenEndpoint,
    credentials: Credentials,
    resource: String,
    retry: RetryPolicy,
    state: Mutex<State>,
    fetches: AtomicU64,
    login: Option<Login>,
}

/// What a person's login brings to a [`TokenSource`].
#[derive(Default)]
pub struct LoginParts {
    /// The refresh token to start from (`None`: an authorization code comes next).
    pub refresh: Option<SecretString>,
    /// Where rotated refresh tokens are saved.
    pub sink: Option<Arc<dyn RefreshSink>>,
    /// How to ask the person for more scopes.
    pub step_up: Option<Arc<dyn StepUp>>,
}

/// What makes a source a person's login rather than a machine client.
struct Login {
    sink: Option<Arc<dyn RefreshSink>>,
    step_up: Option<Arc<dyn StepUp>>,
}

/// Cached, self-renewing client_credentials tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &self.inner.endpoint.url.as_str())
            .field("client_id", &self.inner.credentials.client_id)
            .field("resource", &self.inner.resource)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `credentials` at `endpoint`, for tokens whose audience is `resource`.
    pub fn new(
        http: reqwest::Client,
        endpoint: TokenEndpoint,
        credentials: Credentials,
        resource: String,
        scopes: Option<ScopeSet>,
        retry: RetryPolicy,
    ) -> Self {
        Self::build(http, endpoint, credentials, resource, scopes, None, retry)
    }

    /// A source for a person's login: tokens come from the authorization
    /// code ([`TokenSource::exchange_code`]) or from the login's refresh
    /// token, which rotates; every new refresh token goes to its sink first.
    pub fn for_login(
        http: reqwest::Client,
        endpoint: TokenEndpoint,
        credentials: Credentials,
        resource: String,
        login: LoginParts,
        retry: RetryPolicy,
    ) -> Self {
        Self::build(
            http,
            endpoint,
            credentials,
            resource,
            None,
            Some(login),
            retry,
        )
    }

    fn build(
        http: reqwest::Client,
        endpoint: TokenEndpoint,
        credentials: Credentials,
        resource: String,
        requested: Option<ScopeSet>,
        login: Option<LoginParts>,
        retry: RetryPolicy,
    ) -> Self {
        let (refresh, login) = match login {
            Some(parts) => (
                parts.refresh,
                Some(Login {
                    sink: parts.sink,
                    step_up: parts.step_up,
                }),
            ),
            None => (None, None),
        };
        Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                credentials,
                resource,
                retry,
                state: Mutex::new(State {
                    current: None,
                    refresh,
                    requested,
                    stepped_up: HashSet::new(),
                }),
                fetches: AtomicU64::new(0),
                login,
            }),
        }
    }

    /// Exchanges an authorization code (OAuth 2.1 §4.1.3) and keeps the
    /// tokens it brings. `asked` is the scope the authorization request
    /// named: the grant when the response does not say (RFC 6749 §5.1), and
    /// the base of the next step-up. Returns the granted scope.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        asked: Option<ScopeSet>,
    ) -> Result<Option<String>, TokenError> {
        let mut state = self.inner.state.lock().await;
        let issued = self
            .fetch(
                asked.as_ref(),
                GrantRequest::Code {
                    code,
                    verifier,
                    redirect_uri,
                },
            )
            .await?;
        self.keep(&mut state, issued)
    }

    /// The current refresh token of a login (for `logout`).
    pub async fn refresh_token(&self) -> Option<SecretString> {
        self.inner.state.lock().await.refresh.clone()
    }

    /// Stores what the endpoint issued: the refresh token is saved before
    /// the access token is handed out, so a crash cannot lose the login.
    fn keep(&self, state: &mut State, issued: Issued) -> Result<Option<String>, TokenError> {
        if let Some(refresh) = issued.refresh {
            if let Some(sink) = self.inner.login.as_ref().and_then(|l| l.sink.as_ref()) {
                sink.save(&refresh, issued.scope.as_deref())
                    .map_err(TokenError::Store)?;
            }
            state.refresh = Some(refresh);
        }
        state.current = Some(issued.token);
        Ok(issued.scope)
    }

    /// A new token for `state`: the login's refresh token, or client credentials.
    async fn obtain(
        &self,
        state: &mut State,
        scopes: Option<&ScopeSet>,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let issued = match (&self.inner.login, state.refresh.clone()) {
            (Some(_), Some(refresh)) => self.fetch(None, GrantRequest::Refresh(&refresh)).await?,
            (Some(_), None) => {
                return Err(TokenError::LoginExpired {
                    issuer: self.issuer().to_owned(),
                    code: "no refresh token".into(),
                    program: crate::cli::program_name(),
                });
            }
            (None, _) => self.fetch(scopes, GrantRequest::ClientCredentials).await?,
        };
        let token = issued.token.clone();
        self.keep(state, issued)?;
        Ok(token)
    }

    fn issuer(&self) -> &str {
        self.inner
            .endpoint
            .issuer
            .as_deref()
            .unwrap_or(self.inner.endpoint.url.as_str())
    }

    /// Whether this source is a person's login (not client credentials).
    pub fn is_login(&self) -> bool {
        self.inner.login.is_some()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.credentials.client_id
    }

    /// The RFC 8707 resource every token is requested for.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint.url
    }

    /// How many tokens have been fetched so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// A token that is not close to expiry (fetching one if needed).
    pub async fn token(&self) -> Result<Arc<AccessToken>, TokenError> {
        let mut state = self.inner.state.lock().await;
        if let Some(t) = &state.current
            && t.is_fresh(Instant::now())
        {
            return Ok(t.clone());
        }
        let scopes = state.requested.clone();
        self.obtain(&mut state, scopes.as_ref()).await
    }

    /// The resource server rejected the token with serial `rejected`: get a
    /// new one, unless someone already did.
    pub async fn renew(&self, rejected: u64) -> Result<Arc<AccessToken>, TokenError> {
        let mut state = self.inner.state.lock().await;
        if let Some(t) = &state.current
            && t.serial != rejected
            && t.is_fresh(Instant::now())
        {
            return Ok(t.clone());
        }
        tracing::info!(client_id = %self.client_id(), "access token rejected by the MCP server; re-authenticating");
        let scopes = state.requested.clone();
        self.obtain(&mut state, scopes.as_ref()).await
    }

    /// After a 403 `insufficient_scope` for `scope`: one attempt per scope to
    /// get a token that also carries it. `Ok(None)` = already tried (or the
    /// current token has it, so asking again cannot help).
    pub async fn step_up(&self, scope: &str) -> Result<Option<Arc<AccessToken>>, TokenError> {
        let mut state = self.inner.state.lock().await;
        if !state.stepped_up.insert(scope.to_owned()) {
            return Ok(None);
        }
        let mut wanted = state
            .requested
            .clone()
            .or_else(|| state.current.as_ref().and_then(|t| t.scopes.clone()))
            .unwrap_or_default();
        if wanted.contains(scope) {
            return Ok(None);
        }
        if wanted.insert(scope).is_err() {
            return Ok(None);
        }
        tracing::info!(client_id = %self.client_id(), %scope, "MCP server needs another scope; asking for it once");
        let token = match &self.inner.login {
            None => {
                let issued = self
                    .fetch(Some(&wanted), GrantRequest::ClientCredentials)
                    .await?;
                let token = issued.token.clone();
                self.keep(&mut state, issued)?;
                token
            }
            // A refresh token cannot widen the grant: the person is asked.
            Some(Login { step_up: None, .. }) => return Ok(None),
            Some(Login {
                step_up: Some(hook),
                ..
            }) => {
                let hook = hook.clone();
                drop(state);
                hook.authorize(self, &wanted).await?;
                state = self.inner.state.lock().await;
                state
                    .current
                    .clone()
                    .ok_or_else(|| TokenError::StepUp("no token after the step-up".into()))?
            }
        };
        if let Some(granted) = token.scopes.as_ref().filter(|g| !g.contains(scope)) {
            return Err(TokenError::ScopeNotGranted {
                granted: granted.to_string(),
            });
        }
        state.requested = Some(wanted);
        Ok(Some(token))
    }

    async fn fetch(
        &self,
        scopes: Option<&ScopeSet>,
        grant: GrantRequest<'_>,
    ) -> Result<Issued, TokenError> {
        let inner = &*self.inner;
        let url = inner.endpoint.url.as_str();
        let mut attempt = inner.retry.start();
        let started = Instant::now();
        let resp = loop {
            // A fresh assertion per attempt: each carries its own jti.
            let request = self.build_request(scopes, &grant)?;
            let sent = request.send().await;
            let wait = match &sent {
                Ok(r) if retry::is_retryable_status(r.status()) => {
                    Some(retry::retry_after(r.headers()))
                }
                Err(e) if tls::explain(e).is_none() && (e.is_connect() || e.is_timeout()) => {
                    Some(None)
                }
                _ => None,
            };
            match wait.map(|w| attempt.next_delay(w)) {
                Some(Ok(delay)) => {
                    tracing::warn!(
                        "token endpoint {url} unavailable; retrying in {:.1} s (attempt {} of {})",
                        delay.as_secs_f64(),
                        attempt.attempts(),
                        inner.retry.max_attempts
                    );
                    tokio::time::sleep(delay).await;
                }
                _ => break sent,
            }
        };
        let resp = resp.map_err(|e| TokenError::Unreachable {
            url: url.to_owned(),
            summary: attempt.summary(),
            detail: tls::describe(&e),
        })?;
        let status = resp.status();
        let body = crate::read::read_capped(resp, crate::read::TOKEN_MAX)
            .await
            .map_err(|e| match e {
                crate::read::ReadError::TooLarge { .. } => TokenError::BadResponse {
                    url: url.to_owned(),
                    detail: e.to_string(),
                },
                crate::read::ReadError::Io(detail) => TokenError::Unreachable {
                    url: url.to_owned(),
                    summary: attempt.summary(),
                    detail,
                },
            })?;
        if !status.is_success() {
            if let Ok(err) = serde_json::from_slice::<OAuthErrorBody>(&body) {
                if matches!(grant, GrantRequest::Refresh(_)) && err.error == "invalid_grant" {
                    return Err(TokenError::LoginExpired {
                        issuer: self.issuer().to_owned(),
                        code: err.error,
                        program: crate::cli::program_name(),
                    });
                }
                return Err(TokenError::OAuth {
                    client_id: inner.credentials.client_id.clone(),
                    code: err.error,
                    description: err.error_description,
                });
            }
            return Err(TokenError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                summary: attempt.summary(),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| TokenError::BadResponse {
                url: url.to_owned(),
                detail: e.to_string(),
            })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::BadResponse {
                url: url.to_owned(),
                detail: format!("token_type {:?}, expected Bearer", parsed.token_type),
            });
        }
        if parsed.access_token.is_empty() {
            return Err(TokenError::BadResponse {
                url: url.to_owned(),
                detail: "empty access_token".into(),
            });
        }
        let granted = match parsed.scope.as_deref() {
            Some(s) if !s.trim().is_empty() => ScopeSet::parse(s.trim()).ok(),
            _ => scopes.cloned(),
        };
        let expires_in = parsed.expires_in.map(Duration::from_secs);
        let renew_at = expires_in.map(|life| {
            let margin = (life / 4).min(MAX_RENEW_MARGIN);
            started + life.saturating_sub(margin)
        });
        let serial = inner.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(client_id = %inner.credentials.client_id, grant = grant.name(), serial, expires_in = ?expires_in, scope = ?granted, "access token obtained");
        Ok(Issued {
            token: Arc::new(AccessToken {
                value: SecretString::from(parsed.access_token),
                scopes: granted,
                renew_at,
                expires_in,
                serial,
            }),
            refresh: parsed
                .refresh_token
                .filter(|r| !r.is_empty())
                .map(SecretString::from),
            scope: parsed.scope,
        })
    }

    fn build_request(
        &self,
        scopes: Option<&ScopeSet>,
        grant: &GrantRequest<'_>,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        let inner = &*self.inner;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", grant.name());
        match grant {
            GrantRequest::ClientCredentials => {}
            GrantRequest::Refresh(refresh) => {
                form.append_pair("refresh_token", refresh.expose_secret());
            }
            GrantRequest::Code {
                code,
                verifier,
                redirect_uri,
            } => {
                form.append_pair("code", code);
                form.append_pair("redirect_uri", redirect_uri);
                form.append_pair("code_verifier", verifier);
            }
        }
        form.append_pair("resource", &inner.resource);
        // The other grants carry the scope of the authorization they come from.
        if let Some(s) = scopes
            && !s.is_empty()
            && matches!(grant, GrantRequest::ClientCredentials)
        {
            form.append_pair("scope", &s.to_string());
        }
        let request = inner
            .http
            .post(inner.endpoint.url.clone())
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .timeout(Duration::from_secs(15));
        let request = crate::trace::inject(request);
        let request = self.authenticate(request, &mut form)?;
        Ok(request.body(form.finish()))
    }

    /// Adds this client's authentication to a request to the authorization
    /// server (token or revocation endpoint).
    fn authenticate(
        &self,
        mut request: reqwest::RequestBuilder,
        form: &mut url::form_urlencoded::Serializer<'_, String>,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        let inner = &*self.inner;
        let client_id = &inner.credentials.client_id;
        match &inner.credentials.auth {
            ClientAuth::Secret { secret, method } => match self.secret_method(*method) {
                SecretMethod::Basic => {
                    let enc = |s: &str| {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                    };
                    let pair = format!("{}:{}", enc(client_id), enc(secret.expose_secret()));
                    let value = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    );
                    let mut header = http::HeaderValue::from_str(&value).map_err(|_| {
                        TokenError::Assertion("client id or secret is not valid in a header".into())
                    })?;
                    header.set_sensitive(true);
                    request = request.header(http::header::AUTHORIZATION, header);
                }
                SecretMethod::Post => {
                    form.append_pair("client_id", client_id);
                    form.append_pair("client_secret", secret.expose_secret());
                }
            },
            ClientAuth::None => {
                form.append_pair("client_id", client_id);
            }
            ClientAuth::PrivateKeyJwt { key } => {
                let now = auth::now_unix();
                let aud = inner
                    .endpoint
                    .issuer
                    .clone()
                    .unwrap_or_else(|| inner.endpoint.url.to_string());
                let claims = serde_json::json!({
                    "iss": client_id, "sub": client_id, "aud": aud,
                    "iat": now, "exp": now + 60, "jti": random_id(),
                });
                let assertion = auth::jwt::sign(key, "JWT", &claims)
                    .map_err(|e| TokenError::Assertion(e.to_string()))?;
                form.append_pair("client_assertion_type", JWT_BEARER_ASSERTION);
                form.append_pair("client_assertion", &assertion);
            }
        }
        Ok(request)
    }

    /// Revokes `token` at `url` (RFC 7009), authenticated as this client.
    /// The server answers 200 whether or not it knew the token.
    pub async fn revoke(
        &self,
        url: &Url,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), TokenError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.expose_secret());
        form.append_pair("token_type_hint", hint);
        let request = self
            .inner
            .http
            .post(url.clone())
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .timeout(Duration::from_secs(15));
        let request = crate::trace::inject(request);
        let request = self.authenticate(request, &mut form)?;
        let resp =
            request
                .body(form.finish())
                .send()
                .await
                .map_err(|e| TokenError::Unreachable {
                    url: url.to_string(),
                    summary: "1 attempt".into(),
                    detail: tls::describe(&e),
                })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = crate::read::read_capped(resp, crate::read::ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        match serde_json::from_slice::<OAuthErrorBody>(&body) {
            Ok(err) => Err(TokenError::OAuth {
                client_id: self.inner.credentials.client_id.clone(),
                code: err.error,
                description: err.error_description,
            }),
            Err(_) => Err(TokenError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                summary: "1 attempt".into(),
            }),
        }
    }

    fn secret_method(&self, forced: Option<SecretMethod>) -> SecretMethod {
        if let Some(m) = forced {
            return m;
        }
        let methods = &self.inner.endpoint.auth_methods;
        let offers = |m: &str| methods.iter().any(|x| x == m);
        // RFC 6749 §2.3.1: servers MUST support Basic; use post only when it is all they list.
        if !methods.is_empty() && !offers("client_secret_basic") && offers("client_secret_post") {
            SecretMethod::Post
        } else {
            SecretMethod::Basic
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Uniqueness, not secrecy, is what a jti needs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{nanos:032x}");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_one_line_with_a_fix() {
        let e = TokenError::OAuth {
            client_id: "openai-mcp-client".into(),
            code: "invalid_client".into(),
            description: Some("client authentication failed".into()),
        };
        assert_eq!(
            e.to_string(),
            "the authorization server refused client `openai-mcp-client`: invalid_client (client authentication failed) — check OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET (or OAUTH_CLIENT_KEY_FILE) against the server's client registry"
        );
        assert_eq!(e.oauth_code(), Some("invalid_client"));
    }
}
