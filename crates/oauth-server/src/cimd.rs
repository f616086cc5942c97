//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25): a `client_id` that is an https URL names a JSON document
//! describing the client; we fetch it, check it and cache the client.
//!
//! The URL comes from whoever sends an authorization request, so the fetch
//! is a server-side request to an address an attacker picks (SSRF). Guards:
//! - https only, no user-info, no fragment, a path, normalised spelling;
//! - we resolve the host ourselves and refuse it when any address is not
//!   public unicast ([`crate::ssrf`]) unless the host (or `host:port`) is in
//!   `OAUTH_CIMD_ALLOWED_HOSTS`; the connection then goes to the vetted
//!   addresses only (no second lookup an attacker's DNS could answer
//!   differently), with no proxy and no redirects;
//! - one deadline for DNS, connect and response; the body is read in
//!   chunks and abandoned as soon as it passes [`MAX_DOCUMENT_BYTES`];
//! - at most [`MAX_CONCURRENT_FETCHES`] fetches at once.
//!
//! Results are cached per URL: a client for its HTTP cache lifetime
//! (`max-age`, clamped to [[`MIN_TTL`], [`MAX_TTL`]], [`DEFAULT_TTL`] without
//! one), a refusal for [`FAILURE_TTL`], so a bad URL is not fetched again on
//! every request. The cache holds at most [`CACHE_CAPACITY`] URLs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth::audit::{AuditEvent, names, outcome};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::sync::Semaphore;
use url::{Host, Url};

use crate::clients::Client;
use crate::registration::{PublicClientPolicy, client_name, redirect_uris};

/// Largest document read (bytes); real documents are a few hundred.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Bounds on how long a fetched document is trusted.
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Lifetime of a document served without `Cache-Control: max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// How long a refusal is remembered.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Most URLs cached at once.
pub const CACHE_CAPACITY: usize = 1024;
/// Most document fetches in flight at once.
pub const MAX_CONCURRENT_FETCHES: usize = 8;
/// Refusal reason when every fetch slot stayed taken for the whole deadline.
const BUSY: &str = "busy";
/// Longest `client_id` URL considered.
const MAX_URL_BYTES: usize = 2048;

/// Why a document was refused: a stable `reason` for the audit log and a
/// sentence for the person who sees the error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether `client_id` is meant as a metadata document URL (http URLs too,
/// so that they are refused with a reason instead of "unknown client").
pub fn is_document_id(client_id: &str) -> bool {
    let lower = |p: &str| {
        client_id
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    lower("https://") || lower("http://")
}

struct Entry {
    value: Result<Arc<Client>, Refusal>,
    expires: Instant,
}

/// Resolves document URLs to clients (with the SSRF guards and the cache).
pub struct MetadataDocuments {
    tls: rustls::ClientConfig,
    allowed_hosts: Vec<String>,
    timeout: Duration,
    policy: PublicClientPolicy,
    cache: Mutex<HashMap<String, Entry>>,
    fetches: Semaphore,
}

impl MetadataDocuments {
    /// `extra_ca`: a PEM file of CA certificates trusted besides the webpki
    /// roots (`SSL_CERT_FILE`); the error names the problem with it.
    pub fn new(
        policy: PublicClientPolicy,
        allowed_hosts: &[String],
        extra_ca: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            tls: tls_config(extra_ca)?,
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            timeout,
            policy,
            cache: Mutex::new(HashMap::new()),
            fetches: Semaphore::new(MAX_CONCURRENT_FETCHES),
        })
    }

    /// The client the document at `url` describes (cached).
    pub async fn resolve(&self, url: &str) -> Result<Arc<Client>, Refusal> {
        if let Some(hit) = self.cached(url) {
            return hit;
        }
        let (value, ttl) = match self.fetch_client(url).await {
            Ok((client, ttl)) => (Ok(Arc::new(client)), ttl),
            Err(refusal) => {
                AuditEvent::new(names::CLIENT_METADATA_REFUSED, outcome::REJECTED)
                    .client(url)
                    .reason(refusal.reason)
                    .trace_id(server_kit::telemetry::current_trace_id())
                    .emit();
                tracing::info!(reason = refusal.reason, detail = %refusal.message, "client metadata document refused");
                (Err(refusal), FAILURE_TTL)
            }
        };
        // Our own overload says nothing about the document: not remembered.
        if !matches!(&value, Err(r) if r.reason == BUSY) {
            self.remember(url, value.clone(), ttl);
        }
        value
    }

    fn cached(&self, url: &str) -> Option<Result<Arc<Client>, Refusal>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(url)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.clone())
    }

    fn remember(&self, url: &str, value: Result<Arc<Client>, Refusal>, ttl: Duration) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(url) {
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= CACHE_CAPACITY {
                // Still full of live entries: drop the one closest to expiry.
                let soonest = cache
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(
            url.to_owned(),
            Entry {
                value,
                expires: now + ttl,
            },
        );
    }

    async fn fetch_client(&self, raw: &str) -> Result<(Client, Duration), Refusal> {
        let url = check_url(raw)?;
        let busy = || {
            Refusal::new(
                BUSY,
                "too many client metadata documents are being fetched; try again shortly",
            )
        };
        let _permit = tokio::time::timeout(self.timeout, self.fetches.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let (body, ttl) = tokio::time::timeout(self.timeout, self.fetch(&url))
            .await
            .map_err(|_| {
                Refusal::new(
                    "timeout",
                    format!(
                        "the client metadata document did not arrive within {} s",
                        self.timeout.as_secs_f32()
                    ),
                )
            })??;
        let client = self.client_from_document(raw, &body)?;
        Ok((client, ttl))
    }

    fn allow_listed(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allowed_hosts
            .iter()
            .any(|h| *h == host || *h == with_port)
    }

    /// DNS, the address check, the request and the capped body read.
    async fn fetch(&self, url: &Url) -> Result<(Vec<u8>, Duration), Refusal> {
        let host = url
            .host_str()
            .ok_or_else(|| Refusal::new("invalid_url", "the client_id URL has no host"))?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let allowed = self.allow_listed(&host, port);
        let (domain, addrs) = match url.host() {
            Some(Host::Ipv4(ip)) => (None, vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            Some(Host::Ipv6(ip)) => (None, vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Some(Host::Domain(d)) => {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((d, port))
                    .await
                    .map_err(|_| {
                        Refusal::new(
                            "dns",
                            format!("the host {host} of the client_id URL cannot be resolved"),
                        )
                    })?
                    .collect();
                (Some(d.to_owned()), found)
            }
            None => return Err(Refusal::new("invalid_url", "the client_id URL has no host")),
        };
        if addrs.is_empty() {
            return Err(Refusal::new(
                "dns",
                format!("the host {host} of the client_id URL has no address"),
            ));
        }
        if !allowed {
            for a in &addrs {
                if let Some(kind) = crate::ssrf::non_public(a.ip()) {
                    return Err(Refusal::new(
                        "non_public_address",
                        format!(
                            "the client_id URL's host {host} resolves to {}, a {kind} address; \
                             client metadata documents must be on public addresses",
                            a.ip()
                        ),
                    ));
                }
            }
        }
        // No reqwest timeouts: the one deadline around the whole fetch
        // (`fetch_client`) bounds DNS, connect and body together.
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(self.tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!(
                "secure-mcp-oauth-server/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(d) = &domain {
            // Connect only to what was vetted above.
            builder = builder.resolve_to_addrs(d, &addrs);
        }
        let http = builder
            .build()
            .map_err(|e| Refusal::new("internal", format!("cannot build the HTTP client: {e}")))?;
        let mut resp = http
            .get(url.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                Refusal::new(
                    "fetch_failed",
                    format!(
                        "the client metadata document could not be fetched ({})",
                        error_chain(&e)
                    ),
                )
            })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(Refusal::new(
                "redirect",
                format!("the client_id URL answered {status}; redirects are not followed"),
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(Refusal::new(
                "http_status",
                format!("the client_id URL answered {status}"),
            ));
        }
        let media = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Refusal::new(
                "content_type",
                "the client metadata document is not served as application/json",
            ));
        }
        let ttl = cache_lifetime(
            resp.headers()
                .get_all(reqwest::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let too_large = || {
            Refusal::new(
                "too_large",
                format!("the client metadata document is larger than {MAX_DOCUMENT_BYTES} bytes"),
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            Refusal::new(
                "fetch_failed",
                format!(
                    "the client metadata document could not be read ({})",
                    error_chain(&e)
                ),
            )
        })? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, ttl))
    }

    fn client_from_document(&self, url: &str, body: &[u8]) -> Result<Client, Refusal> {
        let invalid = |m: String| Refusal::new("invalid_document", m);
        let doc: Value = serde_json::from_slice(body)
            .map_err(|_| invalid("the client metadata document is not valid JSON".into()))?;
        let Some(doc) = doc.as_object() else {
            return Err(invalid(
                "the client metadata document is not a JSON object".into(),
            ));
        };
        match doc.get("client_id").and_then(Value::as_str) {
            Some(id) if id == url => {}
            Some(_) => {
                return Err(Refusal::new(
                    "client_id_mismatch",
                    "the document's client_id differs from the URL it was fetched from",
                ));
            }
            None => return Err(invalid("the document has no client_id".into())),
        }
        match doc.get("token_endpoint_auth_method") {
            None => {}
            Some(Value::String(m)) if m == "none" => {}
            Some(_) => {
                return Err(invalid(
                    "token_endpoint_auth_method must be absent or \"none\": only public \
                     clients may use a metadata document here"
                        .into(),
                ));
            }
        }
        if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
            return Err(invalid(
                "a client metadata document must not contain a client secret".into(),
            ));
        }
        let redirect_uris = redirect_uris(doc.get("redirect_uris")).map_err(invalid)?;
        let client_name = match doc.get("client_name") {
            Some(Value::String(n)) => client_name(n).map_err(invalid)?,
            Some(_) => return Err(invalid("client_name must be a string".into())),
            None => return Err(invalid("the document has no client_name".into())),
        };
        Ok(self.policy.client(
            url.to_owned(),
            client_name,
            redirect_uris,
            Some(url.to_owned()),
            self.policy.scopes.clone(),
        ))
    }
}

/// The draft's URL rules (§3): https, a path, no user-info, fragment or
/// dot segments; and the one spelling `url` serialises to, so that the
/// document's `client_id` comparison and the cache key are exact.
fn check_url(raw: &str) -> Result<Url, Refusal> {
    let bad = |m: &str| Refusal::new("invalid_url", m.to_owned());
    if raw.len() > MAX_URL_BYTES {
        return Err(bad("the client_id URL is too long"));
    }
    let url = Url::parse(raw).map_err(|_| bad("the client_id is not a valid URL"))?;
    if url.scheme() != "https" {
        return Err(Refusal::new("not_https", "a client_id URL must use https"));
    }
    if raw.contains('#') {
        return Err(bad("the client_id URL must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("the client_id URL must not contain user information"));
    }
    let path = raw
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
        .unwrap_or("");
    let path = path.split(['?']).next().unwrap_or("");
    if path.split('/').any(|seg| {
        seg == "."
            || seg == ".."
            || seg.eq_ignore_ascii_case("%2e")
            || seg.eq_ignore_ascii_case("%2e%2e")
    }) {
        return Err(bad(
            "the client_id URL must not contain . or .. path segments",
        ));
    }
    if url.path() == "/" {
        return Err(bad("the client_id URL must have a path"));
    }
    if url.as_str() != raw {
        return Err(bad(
            "the client_id URL is not in normalised form (lower-case scheme and host, \
             no default port)",
        ));
    }
    Ok(url)
}

/// `max-age` from `Cache-Control`, clamped; `no-store`/`no-cache` count as
/// the minimum (a document is needed more than once per sign-in).
fn cache_lifetime<'a>(values: impl Iterator<Item = &'a str>) -> Duration {
    let mut max_age = None;
    for directive in values.flat_map(|v| v.split(',')) {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return MIN_TTL;
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Ok(secs) = value.trim().trim_matches('"').parse::<u64>()
        {
            max_age = Some(Duration::from_secs(secs));
        }
    }
    max_age.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL)
}

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/cimd.rs`): the
/// document check and the URL rules, without the fetch. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{Client, MetadataDocuments, Refusal};

    /// [`MetadataDocuments`]' check of a fetched document `body` for `url`.
    pub fn client_from_document(
        docs: &MetadataDocuments,
        url: &str,
        body: &[u8],
    ) -> Result<Client, Refusal> {
        docs.client_from_document(url, body)
    }

    /// The draft's URL rules for a `client_id` ([`super::check_url`]).
    pub fn check_url(raw: &str) -> Result<url::Url, Refusal> {
        super::check_url(raw)
    }
}

/// The webpki roots plus the certificates of `extra` (PEM).
fn tls_config(extra: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "{} holds no usable PEM certificate",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// An error and its causes on one line (reqwest's own text hides the cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        assert!(check_url("https://app.example.com/oauth/client.json").is_ok());
        assert!(check_url("https://app.example.com:8443/c?v=1").is_ok());
        let reason = |u: &str| check_url(u).unwrap_err().reason;
        assert_eq!(reason("http://app.example.com/c.json"), "not_https");
        assert_eq!(reason("https://app.example.com/"), "invalid_url");
        assert_eq!(reason("https://app.example.com"), "invalid_url");
        assert_eq!(reason("https://u:p@app.example.com/c"), "invalid_url");
        assert_eq!(reason("https://app.example.com/c#f"), "invalid_url");
        assert_eq!(reason("https://app.example.com/a/../c"), "invalid_url");
        assert_eq!(reason("https://app.example.com/a/./c"), "invalid_url");
        assert_eq!(reason("https://app.example.com/a/%2E%2E/c"), "invalid_url");
        assert_eq!(reason("https://APP.example.com/c"), "invalid_url");
        assert_eq!(reason("https://app.example.com:443/c"), "invalid_url");
        assert_eq!(reason("not a url"), "invalid_url");
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_soonest_expiry_first() {
        let docs = MetadataDocuments::new(
            PublicClientPolicy {
                scopes: auth::scope::ScopeSet::new(),
                resources: Vec::new(),
            },
            &[],
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        let refusal = || Err(Refusal::new("test", "refused"));
        docs.remember("https://soon.example/c", refusal(), Duration::from_secs(10));
        for i in 1..CACHE_CAPACITY {
            docs.remember(&format!("https://{i}.example/c"), refusal(), MAX_TTL);
        }
        assert!(docs.cached("https://soon.example/c").is_some());
        docs.remember("https://new.example/c", refusal(), MAX_TTL);
        assert_eq!(docs.cache.lock().unwrap().len(), CACHE_CAPACITY);
        assert!(docs.cached("https://new.example/c").is_some());
        assert!(docs.cached("https://soon.example/c").is_none(), "evicted");
        assert!(docs.cached("https://1.example/c").is_some());
    }

    #[test]
    fn document_ids() {
        assert!(is_document_id("https://x.example/c"));
        assert!(is_document_id("HTTP://x.example/c"));
        assert!(!is_document_id("openai-mcp-client"));
        assert!(!is_document_id("dyn-abc"));
        assert!(!is_document_id("http"));
    }

    #[test]
    fn cache_lifetime_is_clamped() {
        let ttl = |v: &[&str]| cache_lifetime(v.iter().copied());
        assert_eq!(ttl(&[]), DEFAULT_TTL);
        assert_eq!(ttl(&["public, max-age=600"]), Duration::from_secs(600));
        assert_eq!(ttl(&["max-age=5"]), MIN_TTL);
        assert_eq!(ttl(&["max-age=999999"]), MAX_TTL);
        assert_eq!(ttl(&["no-store"]), MIN_TTL);
        assert_eq!(
            ttl(&["public", "Max-Age=\"120\""]),
            Duration::from_secs(120)
        );
        assert_eq!(ttl(&["max-age=bogus"]), DEFAULT_TTL);
    }
}
