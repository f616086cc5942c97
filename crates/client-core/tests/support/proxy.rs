//! A small reverse proxy in front of the real mcp-server: plain HTTP with
//! scripted faults (429 + Retry-After, 5xx) for chosen JSON-RPC methods, or
//! TLS termination with a test certificate.
//!
//! Responses are buffered (per-request SSE streams end with their response);
//! the standalone GET stream is answered 405, which MCP clients handle as
//! "no server-initiated stream".

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One scripted failure.
#[derive(Debug, Clone)]
pub struct Fault {
    /// JSON-RPC method (e.g. `tools/call`) or path (e.g. `/token`) it applies to.
    pub method: String,
    pub status: u16,
    pub retry_after: Option<String>,
}

/// Faults to inject, and what the proxy saw.
#[derive(Default)]
pub struct Faults {
    queue: Mutex<VecDeque<Fault>>,
    /// `(arrival, JSON-RPC method or path, status answered)` of every POST.
    seen: Mutex<Vec<(Instant, String, u16)>>,
}

impl Faults {
    /// Answers the next `count` requests for `method` with `status`.
    pub fn inject(&self, method: &str, status: u16, retry_after: Option<&str>, count: usize) {
        let mut q = self.queue.lock().unwrap();
        for _ in 0..count {
            q.push_back(Fault {
                method: method.to_owned(),
                status,
                retry_after: retry_after.map(str::to_owned),
            });
        }
    }

    /// POSTs seen for `method`: `(arrival, status)`.
    pub fn seen(&self, method: &str) -> Vec<(Instant, u16)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m, _)| m == method)
            .map(|(t, _, s)| (*t, *s))
            .collect()
    }

    fn take(&self, method: &str) -> Option<Fault> {
        let mut q = self.queue.lock().unwrap();
        let pos = q.iter().position(|f| f.method == method)?;
        q.remove(pos)
    }

    fn record(&self, method: &str, status: u16) {
        self.seen
            .lock()
            .unwrap()
            .push((Instant::now(), method.to_owned(), status));
    }
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    faults: Arc<Faults>,
    http: reqwest::Client,
}

fn router(upstream: String, faults: Arc<Faults>) -> axum::Router {
    let state = ProxyState {
        upstream,
        faults,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    axum::Router::new().fallback(forward).with_state(state)
}

async fn forward(State(st): State<ProxyState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    if parts.method == axum::http::Method::GET && parts.uri.path().ends_with("/mcp") {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let bytes: Bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    // The JSON-RPC method, or the path for other requests (e.g. `/token`).
    let method = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["method"].as_str().map(str::to_owned))
        .unwrap_or_else(|| parts.uri.path().to_owned());
    if parts.method == axum::http::Method::POST
        && let Some(fault) = st.faults.take(&method)
    {
        st.faults.record(&method, fault.status);
        let mut resp = (
            StatusCode::from_u16(fault.status).unwrap(),
            "injected fault",
        )
            .into_response();
        if let Some(ra) = fault.retry_after {
            resp.headers_mut()
                .insert("retry-after", ra.parse().unwrap());
        }
        return resp;
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = st
        .http
        .request(parts.method.clone(), format!("{}{path}", st.upstream))
        .body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    if parts.method == axum::http::Method::POST {
        st.faults.record(&method, status.as_u16());
    }
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    let mut response = (status, body).into_response();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// Serves the proxy over plain HTTP on `listener`.
pub fn spawn_plain(
    listener: TcpListener,
    upstream: String,
    faults: Arc<Faults>,
    stop: CancellationToken,
) {
    let app = router(upstream, faults);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
}

/// A TLS listener for axum: handshakes that fail (a client that does not
/// trust us, as some tests intend) are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves the proxy over TLS with `cert_pem` (chain) and `key_pem`.
pub fn spawn_tls(
    listener: TcpListener,
    upstream: String,
    faults: Arc<Faults>,
    cert_pem: &str,
    key_pem: &str,
    stop: CancellationToken,
) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tls = TlsListener {
        tcp: listener,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    let app = router(upstream, faults);
    tokio::spawn(async move {
        axum::serve(tls, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
}
