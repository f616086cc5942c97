//! Finding the authorization server from the MCP server alone (MCP
//! authorization spec, "Authorization Server Discovery").
//!
//! 1. An unauthenticated POST to the MCP endpoint answers 401 with
//!    `WWW-Authenticate: Bearer resource_metadata="…"` (RFC 9728 §5.1), and
//!    maybe the `scope` to ask for. Without that pointer, the well-known URL
//!    built from the MCP URL is used (path form first, then the root form).
//! 2. The protected-resource metadata names the `resource` and its
//!    `authorization_servers`. The resource must be the MCP URL or a prefix
//!    of it on the same origin (RFC 9728 §3.3 as the MCP spec applies it);
//!    it is what tokens are requested for (RFC 8707).
//! 3. The authorization server's metadata is fetched from RFC 8414's
//!    path-inserted well-known URL, then OpenID Connect discovery (path
//!    inserted, then appended); its `issuer` must name the issuer we asked for
//!    (RFC 8414 §3.3), compared in the one normalised spelling every party
//!    uses (`auth::uri::normalize_issuer`).
//! 4. Servers of the 2025-03-26 revision publish no resource metadata: the
//!    MCP server's origin is then the authorization server, and without its
//!    metadata the default endpoints `/authorize`, `/token` and `/register`
//!    on that origin are used.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use crate::config::check_url_scheme;
use crate::retry::{self, RetryPolicy};
use crate::tls;

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The canonical resource URI: our RFC 8707 `resource` parameter.
    pub resource: String,
    /// The authorization server's issuer identifier.
    pub issuer: String,
    pub token_endpoint: Url,
    /// `token_endpoint_auth_methods_supported` (empty when absent).
    pub auth_methods: Vec<String>,
    /// `scopes_supported` of the protected resource (empty when absent).
    pub scopes_supported: Vec<String>,
    /// The `scope` of the MCP server's 401 challenge, if it named one.
    pub challenge_scope: Option<String>,
    /// Everything the authorization server's metadata said.
    pub server: AuthorizationServer,
}

impl Discovered {
    /// The scope to ask a person for (MCP spec, "Scope Selection Strategy"):
    /// the challenge's, else the resource's `scopes_supported`, else none
    /// (the server's default).
    pub fn scope_to_request(&self) -> Option<String> {
        self.challenge_scope
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                (!self.scopes_supported.is_empty()).then(|| self.scopes_supported.join(" "))
            })
    }
}

/// Why discovery failed; each message says where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} answered HTTP {status}; expected the {what} document")]
    Status {
        url: String,
        status: u16,
        what: &'static str,
    },
    #[error("{url} is not a valid {what} document: {detail}")]
    Malformed {
        url: String,
        what: &'static str,
        detail: String,
    },
    #[error(
        "the MCP server says it is {found}, but MCP_SERVER_URL is {expected} — set MCP_SERVER_URL to the server's public URL"
    )]
    ResourceMismatch { expected: String, found: String },
    #[error("the protected-resource metadata at {url} names no authorization server")]
    NoAuthorizationServer { url: String },
    #[error(
        "authorization server metadata from {url} has issuer {found:?}, expected {expected:?} — refusing to use it (RFC 8414 §3.3)"
    )]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Insecure(String),
    /// The MCP server names an authorization server other than the one the
    /// client's credentials belong to: nothing is sent there.
    #[error(
        "is {configured}, but the MCP server names the authorization server {named} — this client's credentials go only to OAUTH_ISSUER; if {named} is where they belong, set OAUTH_ISSUER={named}"
    )]
    ForeignIssuer { configured: String, named: String },
}

/// Discovery for a client with credentials: the MCP server's metadata must
/// name `issuer` (the configured `OAUTH_ISSUER`) among its authorization
/// servers, and only `issuer`'s metadata is fetched. The MCP server may
/// confirm where the credentials go, never choose it.
pub async fn discover_for(
    http: &reqwest::Client,
    mcp_url: &Url,
    issuer: &str,
    retry: &RetryPolicy,
) -> Result<Discovered, DiscoveryError> {
    discover_inner(http, mcp_url, Some(issuer), retry).await
}

/// Discovery without credentials (nothing secret is sent): follows the
/// first authorization server the MCP server names.
pub async fn discover(
    http: &reqwest::Client,
    mcp_url: &Url,
    retry: &RetryPolicy,
) -> Result<Discovered, DiscoveryError> {
    discover_inner(http, mcp_url, None, retry).await
}

async fn discover_inner(
    http: &reqwest::Client,
    mcp_url: &Url,
    pinned: Option<&str>,
    retry: &RetryPolicy,
) -> Result<Discovered, DiscoveryError> {
    let expected = canonical(mcp_url)?;
    let challenge = challenge(http, mcp_url, retry).await?;
    let mut candidates = Vec::new();
    if let Some(from_challenge) = challenge.resource_metadata.clone() {
        candidates.push(from_challenge);
    }
    candidates.extend(well_known_prm_urls(mcp_url));
    candidates.dedup();

    let mut last_err = None;
    let mut prm = None;
    for url in &candidates {
        match fetch_json::<ProtectedResourceMetadata>(
            http,
            url,
            "protected-resource metadata",
            retry,
        )
        .await
        {
            Ok(doc) => {
                prm = Some((url.clone(), doc));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((prm_url, prm)) = prm else {
        // Nothing published: a 2025-03-26 server is its own authorization
        // server. Anything but "not found" is reported as it is.
        return match last_err {
            Some(DiscoveryError::Status { status: 404, .. }) | None => {
                legacy(http, mcp_url, expected, pinned, challenge.scope, retry).await
            }
            Some(e) => Err(e),
        };
    };
    let found =
        auth::uri::canonical_resource(&prm.resource).map_err(|e| DiscoveryError::Malformed {
            url: prm_url.to_string(),
            what: "protected-resource metadata",
            detail: format!("resource {:?}: {e}", prm.resource),
        })?;
    if !resource_covers(&found, &expected) {
        return Err(DiscoveryError::ResourceMismatch { expected, found });
    }
    let Some(first) = prm.authorization_servers.first().cloned() else {
        return Err(DiscoveryError::NoAuthorizationServer {
            url: prm_url.to_string(),
        });
    };
    let issuer = match pinned {
        None => first,
        Some(configured) => {
            if !prm
                .authorization_servers
                .iter()
                .any(|named| auth::uri::same_issuer(named, configured))
            {
                return Err(DiscoveryError::ForeignIssuer {
                    configured: configured.to_owned(),
                    named: first,
                });
            }
            configured.to_owned()
        }
    };
    let server = authorization_server_metadata(http, &issuer, retry).await?;
    Ok(Discovered {
        resource: found,
        issuer,
        token_endpoint: server.token_endpoint.clone(),
        auth_methods: server.auth_methods.clone(),
        scopes_supported: prm.scopes_supported,
        challenge_scope: challenge.scope,
        server,
    })
}

/// The 2025-03-26 fallback: the MCP server's origin is the authorization
/// server; its metadata if it has some, else the default endpoints.
async fn legacy(
    http: &reqwest::Client,
    mcp_url: &Url,
    resource: String,
    pinned: Option<&str>,
    challenge_scope: Option<String>,
    retry: &RetryPolicy,
) -> Result<Discovered, DiscoveryError> {
    let origin = mcp_url.origin().ascii_serialization();
    if let Some(configured) = pinned
        && !auth::uri::same_issuer(&origin, configured)
    {
        return Err(DiscoveryError::ForeignIssuer {
            configured: configured.to_owned(),
            named: origin,
        });
    }
    let issuer = pinned.map_or(origin.clone(), str::to_owned);
    let server = match authorization_server_metadata(http, &issuer, retry).await {
        Ok(server) => server,
        Err(DiscoveryError::Status { status: 404, .. }) => {
            let at = |path: &str| {
                let mut u = mcp_url.clone();
                u.set_path(path);
                u.set_query(None);
                u.set_fragment(None);
                u
            };
            tracing::debug!(%origin, "no metadata at all; using the default endpoints (2025-03-26)");
            AuthorizationServer {
                issuer: issuer.clone(),
                token_endpoint: at("/token"),
                auth_methods: Vec::new(),
                authorization_endpoint: Some(at("/authorize")),
                registration_endpoint: Some(at("/register")),
                revocation_endpoint: None,
                code_challenge_methods: Vec::new(),
                scopes_supported: Vec::new(),
                iss_parameter_supported: false,
                cimd_supported: false,
                published: false,
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Discovered {
        resource,
        issuer,
        token_endpoint: server.token_endpoint.clone(),
        auth_methods: server.auth_methods.clone(),
        scopes_supported: Vec::new(),
        challenge_scope,
        server,
    })
}

/// RFC 9728 §3.3 as the MCP spec applies it: the metadata's resource is the
/// MCP URL itself or covers it (same origin, a path prefix ending at a
/// segment boundary).
fn resource_covers(resource: &str, mcp: &str) -> bool {
    if resource == mcp {
        return true;
    }
    let (Ok(r), Ok(m)) = (Url::parse(resource), Url::parse(mcp)) else {
        return false;
    };
    if r.origin() != m.origin() || r.query().is_some() {
        return false;
    }
    let prefix = r.path().trim_end_matches('/');
    let path = m.path();
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// An authorization server's metadata (RFC 8414), issuer checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationServer {
    pub issuer: String,
    pub token_endpoint: Url,
    /// `token_endpoint_auth_methods_supported` (empty when absent).
    pub auth_methods: Vec<String>,
    pub authorization_endpoint: Option<Url>,
    pub registration_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// `code_challenge_methods_supported` (empty when absent).
    pub code_challenge_methods: Vec<String>,
    /// `scopes_supported` (empty when absent).
    pub scopes_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207).
    pub iss_parameter_supported: bool,
    /// `client_id_metadata_document_supported` (client ID metadata documents).
    pub cimd_supported: bool,
    /// Whether the document was published at all (false: 2025-03-26 defaults).
    pub published: bool,
}

/// Fetches and checks the metadata of `issuer`: RFC 8414 first, then
/// OpenID Connect discovery (`auth::well_known::authorization_server_metadata_candidates`).
/// A 4xx moves on to the next form; the last answer is the error.
pub async fn authorization_server_metadata(
    http: &reqwest::Client,
    issuer: &str,
    retry: &RetryPolicy,
) -> Result<AuthorizationServer, DiscoveryError> {
    let issuer_url = Url::parse(issuer).map_err(|e| DiscoveryError::Malformed {
        url: issuer.to_owned(),
        what: "issuer identifier",
        detail: e.to_string(),
    })?;
    check_url_scheme("issuer", &issuer_url).map_err(|e| DiscoveryError::Insecure(e.to_string()))?;
    let mut last = None;
    for url in auth::well_known::authorization_server_metadata_candidates(&issuer_url) {
        match fetch_json::<AsMetadata>(http, &url, "authorization-server metadata", retry).await {
            Ok(doc) => return checked(doc, &url, issuer),
            Err(e @ DiscoveryError::Status { status, .. }) if (400..500).contains(&status) => {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| DiscoveryError::Status {
        url: issuer.to_owned(),
        status: 404,
        what: "authorization-server metadata",
    }))
}

fn checked(
    doc: AsMetadata,
    url: &Url,
    issuer: &str,
) -> Result<AuthorizationServer, DiscoveryError> {
    // The one issuer rule of every party (auth::uri::normalize_issuer):
    // `http://LOCALHOST:8080/` names the same issuer as `http://localhost:8080`.
    if !auth::uri::same_issuer(&doc.issuer, issuer) {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_string(),
            expected: issuer.to_owned(),
            found: doc.issuer,
        });
    }
    let endpoint = |name: &'static str, value: &str| -> Result<Url, DiscoveryError> {
        let parsed = Url::parse(value).map_err(|e| DiscoveryError::Malformed {
            url: url.to_string(),
            what: "authorization-server metadata",
            detail: format!("{name}: {e}"),
        })?;
        check_url_scheme(name, &parsed)
            .map_err(|e| DiscoveryError::Insecure(format!("authorization server metadata: {e}")))?;
        Ok(parsed)
    };
    let optional = |name: &'static str, value: &Option<String>| {
        value.as_deref().map(|v| endpoint(name, v)).transpose()
    };
    Ok(AuthorizationServer {
        token_endpoint: endpoint("token_endpoint", &doc.token_endpoint)?,
        authorization_endpoint: optional("authorization_endpoint", &doc.authorization_endpoint)?,
        registration_endpoint: optional("registration_endpoint", &doc.registration_endpoint)?,
        revocation_endpoint: optional("revocation_endpoint", &doc.revocation_endpoint)?,
        issuer: doc.issuer,
        auth_methods: doc.token_endpoint_auth_methods_supported,
        code_challenge_methods: doc.code_challenge_methods_supported,
        scopes_supported: doc.scopes_supported,
        iss_parameter_supported: doc.authorization_response_iss_parameter_supported,
        cimd_supported: doc.client_id_metadata_document_supported,
        published: true,
    })
}

#[derive(Debug, Deserialize)]
struct ProtectedResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AsMetadata {
    issuer: String,
    token_endpoint: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    authorization_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    client_id_metadata_document_supported: bool,
}

fn canonical(url: &Url) -> Result<String, DiscoveryError> {
    auth::uri::canonical_resource(url.as_str()).map_err(|e| DiscoveryError::Malformed {
        url: url.to_string(),
        what: "MCP server URL",
        detail: e.to_string(),
    })
}

/// What an unauthenticated request's 401 said.
#[derive(Debug, Default)]
struct Pointer {
    resource_metadata: Option<Url>,
    scope: Option<String>,
}

/// POSTs to the MCP endpoint without a token and reads the challenge.
async fn challenge(
    http: &reqwest::Client,
    mcp_url: &Url,
    retry: &RetryPolicy,
) -> Result<Pointer, DiscoveryError> {
    let body = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
    let mut state = retry.start();
    let resp = loop {
        let sent = crate::trace::inject(http.post(mcp_url.clone()))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body)
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await;
        let wait = match &sent {
            Ok(r) if retry::is_retryable_status(r.status()) => retry::retry_after(r.headers()),
            Err(e) if tls::explain(e).is_none() && (e.is_connect() || e.is_timeout()) => None,
            _ => break sent,
        };
        match state.next_delay(wait) {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(_) => break sent,
        }
    };
    let resp =
        resp.map_err(|e| unreachable(mcp_url, &e, "is the MCP server running at MCP_SERVER_URL?"))?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(Pointer::default());
    }
    let Some(bearer) = resp
        .headers()
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(Challenge::parse)
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    else {
        return Ok(Pointer::default());
    };
    let scope = bearer.params.get("scope").cloned();
    let Some(pointer) = bearer.params.get("resource_metadata").cloned() else {
        return Ok(Pointer {
            resource_metadata: None,
            scope,
        });
    };
    let url = Url::parse(&pointer).map_err(|e| DiscoveryError::Malformed {
        url: mcp_url.to_string(),
        what: "WWW-Authenticate resource_metadata",
        detail: e.to_string(),
    })?;
    // The metadata decides where our credentials go: it must come from as
    // safe a place as the MCP server itself.
    if url.scheme() != mcp_url.scheme() && mcp_url.scheme() == "https" {
        return Err(DiscoveryError::Insecure(format!(
            "the MCP server's challenge points at {url}, which is not https — refusing to follow it"
        )));
    }
    Ok(Pointer {
        resource_metadata: Some(url),
        scope,
    })
}

fn unreachable(url: &Url, e: &reqwest::Error, hint: &str) -> DiscoveryError {
    let detail = match tls::explain(e) {
        Some(tls) => tls,
        None => format!("{} — {hint}", tls::describe(e)),
    };
    DiscoveryError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// RFC 9728 §3.1 well-known URLs for `resource`: path-inserted, then root.
pub fn well_known_prm_urls(resource: &Url) -> Vec<Url> {
    auth::well_known::protected_resource_metadata_candidates(resource)
}

/// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted before the issuer's path.
pub fn rfc8414_url(issuer: &Url) -> Url {
    auth::well_known::authorization_server_metadata_url(issuer)
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
    what: &'static str,
    retry: &RetryPolicy,
) -> Result<T, DiscoveryError> {
    let mut state = retry.start();
    loop {
        let sent = crate::trace::inject(http.get(url.clone()))
            .header("accept", "application/json")
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await;
        let wait = match &sent {
            Ok(r) if retry::is_retryable_status(r.status()) => {
                Some(retry::retry_after(r.headers()))
            }
            Err(e) if tls::explain(e).is_none() && (e.is_connect() || e.is_timeout()) => Some(None),
            _ => None,
        };
        if let Some(wait) = wait
            && let Ok(delay) = state.next_delay(wait)
        {
            tokio::time::sleep(delay).await;
            continue;
        }
        let hint = if what.starts_with("authorization") {
            "is the authorization server running?"
        } else {
            "is the MCP server running at MCP_SERVER_URL?"
        };
        let resp = sent.map_err(|e| unreachable(url, &e, hint))?;
        if !resp.status().is_success() {
            return Err(DiscoveryError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
                what,
            });
        }
        let bytes = crate::read::read_capped(resp, crate::read::METADATA_MAX)
            .await
            .map_err(|e| match e {
                crate::read::ReadError::TooLarge { .. } => DiscoveryError::Malformed {
                    url: url.to_string(),
                    what,
                    detail: e.to_string(),
                },
                crate::read::ReadError::Io(detail) => DiscoveryError::Unreachable {
                    url: url.to_string(),
                    detail,
                },
            })?;
        return serde_json::from_slice(&bytes).map_err(|e| DiscoveryError::Malformed {
            url: url.to_string(),
            what,
            detail: e.to_string(),
        });
    }
}

/// One parsed `WWW-Authenticate` challenge (RFC 9110 §11.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    /// Parameter names lower-cased; quoted values unescaped.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses the first challenge of a header value (`None` if malformed).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = match header.find(char::is_whitespace) {
            Some(i) => (&header[..i], &header[i..]),
            None => (header, ""),
        };
        if scheme.is_empty() || !scheme.bytes().all(is_tchar) {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() {
                break;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') {
                return None;
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next()? {
                        '\\' => value.push(chars.next()?),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.insert(name.to_ascii_lowercase(), value);
        }
        Some(Self {
            scheme: scheme.to_owned(),
            params,
        })
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = Challenge::parse(
            r#"Bearer error="insufficient_scope", scope="ticket:create", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["error"], "insufficient_scope");
        assert_eq!(c.params["scope"], "ticket:create");
        assert_eq!(
            c.params["resource_metadata"],
            "http://localhost:8000/.well-known/oauth-protected-resource/mcp"
        );
        let c = Challenge::parse(r#"Bearer realm=x, Error="a\"b""#).unwrap();
        assert_eq!(c.params["realm"], "x");
        assert_eq!(c.params["error"], "a\"b");
        assert_eq!(Challenge::parse("Bearer").unwrap().params.len(), 0);
        assert!(Challenge::parse(r#"Bearer scope="unterminated"#).is_none());
        assert!(Challenge::parse("").is_none());
    }

    #[test]
    fn a_resource_covers_urls_below_it_on_its_origin() {
        assert!(resource_covers(
            "https://a.example/mcp",
            "https://a.example/mcp"
        ));
        assert!(resource_covers(
            "https://a.example",
            "https://a.example/mcp"
        ));
        assert!(resource_covers(
            "https://a.example/",
            "https://a.example/mcp"
        ));
        assert!(resource_covers(
            "https://a.example/v1",
            "https://a.example/v1/mcp"
        ));
        assert!(!resource_covers(
            "https://a.example/v1",
            "https://a.example/v10/mcp"
        ));
        assert!(!resource_covers(
            "https://a.example/mcp/x",
            "https://a.example/mcp"
        ));
        assert!(!resource_covers(
            "https://b.example",
            "https://a.example/mcp"
        ));
        assert!(!resource_covers(
            "http://a.example",
            "https://a.example/mcp"
        ));
        assert!(!resource_covers(
            "https://a.example:8443",
            "https://a.example/mcp"
        ));
    }

    #[test]
    fn well_known_urls() {
        let u = Url::parse("https://localhost:8001/mcp").unwrap();
        let urls: Vec<String> = well_known_prm_urls(&u).iter().map(Url::to_string).collect();
        assert_eq!(
            urls,
            vec![
                "https://localhost:8001/.well-known/oauth-protected-resource/mcp",
                "https://localhost:8001/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            rfc8414_url(&Url::parse("https://auth.example.com/tenant1").unwrap()).as_str(),
            "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            rfc8414_url(&Url::parse("http://localhost:8080").unwrap()).as_str(),
            "http://localhost:8080/.well-known/oauth-authorization-server"
        );
    }
}
