//! The remote JWKS cache a resource server verifies tokens with.
//!
//! [`RemoteJwks`] is an [`auth::verify::KeySource`]: lookups read an
//! [`ArcSwap`] snapshot (no lock, no I/O); only an unknown `kid` reaches the
//! network, as one single-flight refetch at most once per cooldown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use auth::jwk::JwkSet;
use auth::keys::VerifyingKey;
use auth::uri::same_issuer;
use auth::verify::{KeyMap, KeySource, RefreshFuture, key_map};
use auth::well_known::authorization_server_metadata_url;
use serde::Deserialize;

use crate::metrics::JwksMetrics;

/// Errors fetching authorization-server metadata or a JWKS.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} returned a document larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} returned invalid JSON: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
    #[error("metadata issuer {found:?} does not equal the configured issuer {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("metadata has no jwks_uri")]
    NoJwksUri,
}

const MAX_DOC_BYTES: usize = 256 * 1024;

async fn get_json<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, JwksError> {
    let http_err = |source| JwksError::Http {
        url: url.to_owned(),
        source,
    };
    let mut request = http.get(url);
    // A refetch for an unknown `kid` happens inside a request: its trace goes on.
    if let Some(traceparent) = crate::telemetry::current_traceparent() {
        request = request.header("traceparent", traceparent);
    }
    let mut resp = request.send().await.map_err(http_err)?;
    if !resp.status().is_success() {
        return Err(JwksError::Status {
            url: url.to_owned(),
            status: resp.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
        if body.len() + chunk.len() > MAX_DOC_BYTES {
            return Err(JwksError::TooLarge {
                url: url.to_owned(),
                limit: MAX_DOC_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|source| JwksError::Json {
        url: url.to_owned(),
        source,
    })
}

#[derive(Deserialize)]
struct AsMetadata {
    issuer: String,
    jwks_uri: Option<String>,
}

/// Discovers the `jwks_uri` from the issuer's RFC 8414 metadata, checking
/// that the document's `issuer` names the configured one (§3.3; compared
/// after [`normalize_issuer`](auth::uri::normalize_issuer), the rule the authorization server writes it with).
pub async fn discover_jwks_uri(http: &reqwest::Client, issuer: &str) -> Result<String, JwksError> {
    let issuer_url = url::Url::parse(issuer).map_err(|_| JwksError::IssuerMismatch {
        expected: issuer.to_owned(),
        found: String::new(),
    })?;
    let url = authorization_server_metadata_url(&issuer_url);
    let meta: AsMetadata = get_json(http, url.as_str()).await?;
    if !same_issuer(&meta.issuer, issuer) {
        return Err(JwksError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: meta.issuer,
        });
    }
    meta.jwks_uri.ok_or(JwksError::NoJwksUri)
}

/// A JWKS fetched over HTTP(S) and cached.
///
/// Unknown `kid`s trigger at most one refetch per `cooldown` (single-flight:
/// concurrent misses wait for the same fetch), so a flood of forged tokens
/// cannot turn into a flood of JWKS requests.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    keys: ArcSwap<KeyMap>,
    cooldown: Duration,
    last_miss_fetch: tokio::sync::Mutex<Option<Instant>>,
    metrics: Option<JwksMetrics>,
}

impl RemoteJwks {
    /// Creates an empty cache; call [`RemoteJwks::refresh_now`] to load it.
    pub fn new(url: String, http: reqwest::Client, cooldown: Duration) -> Self {
        Self {
            url,
            http,
            keys: ArcSwap::from_pointee(KeyMap::new()),
            cooldown,
            last_miss_fetch: tokio::sync::Mutex::new(None),
            metrics: None,
        }
    }

    /// Counts every fetch in `securemcp_jwks_refreshes_total{outcome}`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: JwksMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the JWKS now and replaces the cached keys; returns the key count.
    pub async fn refresh_now(&self) -> Result<usize, JwksError> {
        let fetched = get_json::<JwkSet>(&self.http, &self.url).await;
        if let Some(m) = &self.metrics {
            m.refreshed(fetched.is_ok());
        }
        let set = fetched?;
        let map = key_map(&set);
        let n = map.len();
        self.keys.store(Arc::new(map));
        tracing::debug!(url = %self.url, keys = n, "JWKS refreshed");
        Ok(n)
    }

    /// Refreshes every `every` until `stop` resolves (learns removals and
    /// additions even when no unknown `kid` arrives).
    pub async fn refresh_periodically(
        self: Arc<Self>,
        every: Duration,
        stop: impl Future<Output = ()> + Send,
    ) {
        let tick = async {
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(e) = self.refresh_now().await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping cached keys");
                }
            }
        };
        tokio::select! {
            () = tick => {}
            () = stop => {}
        }
    }
}

impl KeySource for RemoteJwks {
    fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.load().get(kid).cloned()
    }

    fn refresh(&self) -> RefreshFuture<'_> {
        Box::pin(async move {
            let mut last = self.last_miss_fetch.lock().await;
            if last.is_some_and(|t| t.elapsed() < self.cooldown) {
                return;
            }
            *last = Some(Instant::now());
            if let Err(e) = self.refresh_now().await {
                tracing::warn!(error = %e, "JWKS refetch for unknown kid failed");
            }
        })
    }
}
