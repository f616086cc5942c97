//! Client ID Metadata Documents: https `client_id` URLs resolved by fetching
//! them, against a real https server (test CA) on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth_server::clients::AuthMethod;
use oauth_server::directory::LookupError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// The fetch deadline in these tests (production: 5 s).
const TIMEOUT: Duration = Duration::from_secs(1);

/// An https server for metadata documents, counting requests per path.
struct DocServer {
    base: String,
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DocServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

#[derive(Clone)]
struct DocState {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

fn document(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc Client",
        "client_uri": "https://app.example.com",
        "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

fn json_response(body: String, cache_control: Option<&str>) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cc) = cache_control {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    resp
}

async fn serve_doc(State(st): State<DocState>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_owned();
    *st.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let own = format!("{}{path}", st.base);
    match path.as_str() {
        "/client.json" => json_response(document(&own).to_string(), Some("public, max-age=600")),
        "/mismatch.json" => json_response(document(&st.url("/client.json")).to_string(), None),
        "/confidential.json" => {
            let mut d = document(&own);
            d["token_endpoint_auth_method"] = json!("client_secret_basic");
            json_response(d.to_string(), None)
        }
        "/bad-redirect.json" => {
            let mut d = document(&own);
            d["redirect_uris"] = json!(["http://evil.example/cb"]);
            json_response(d.to_string(), None)
        }
        "/text.json" => (
            [(header::CONTENT_TYPE, "text/plain")],
            document(&own).to_string(),
        )
            .into_response(),
        "/redirect.json" => (
            StatusCode::FOUND,
            [(header::LOCATION, st.url("/client.json"))],
        )
            .into_response(),
        "/slow.json" => {
            tokio::time::sleep(TIMEOUT * 3).await;
            json_response(document(&own).to_string(), None)
        }
        "/big.json" => {
            // Valid JSON up to 6 KiB, declared length: refused before reading.
            let mut d = document(&own);
            d["padding"] = json!("x".repeat(6 * 1024));
            json_response(d.to_string(), None)
        }
        "/endless.json" => {
            // No Content-Length and no end: only a reader that stops at the
            // cap finishes (before the deadline) with "too large".
            let chunks =
                futures::stream::repeat_with(|| Ok::<_, std::io::Error>(bytes_of(&[b' '; 1024])));
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn bytes_of(b: &[u8]) -> axum::body::Bytes {
    axum::body::Bytes::copy_from_slice(b)
}

impl DocState {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A TLS listener for axum; failed handshakes are skipped.
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

/// Starts the document server on 127.0.0.1 with a certificate for
/// `localhost` from a fresh test CA.
async fn doc_server() -> DocServer {
    let ca = testkit::TestCa::new("cimd test CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let base = format!("https://localhost:{port}");
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let app = axum::Router::new()
        .fallback(serve_doc)
        .with_state(DocState {
            base: base.clone(),
            hits: hits.clone(),
        });
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    DocServer {
        base,
        port,
        hits,
        ca_file,
        _dir: dir,
        task,
    }
}

/// The oauth-server trusting the document server's CA, with the document
/// host allow-listed (`allow`) or not.
async fn app_for(docs: &DocServer, allow: bool, trust: bool) -> TestApp {
    let host = format!("localhost:{}", docs.port);
    let ca = docs.ca_file.clone();
    spawn_with(Opts {
        configure: Some(Arc::new(move |c: &mut oauth_server::Config| {
            c.registration.cimd_timeout = TIMEOUT;
            if allow {
                c.registration.cimd_allowed_hosts = vec![host.clone()];
            }
            if trust {
                c.registration.extra_ca_file = Some(ca.clone());
            }
        })),
        ..Opts::default()
    })
    .await
}

async fn refusal(app: &TestApp, client_id: &str) -> String {
    match app
        .stack
        .oauth_state()
        .unwrap()
        .clients
        .find(client_id)
        .await
    {
        Err(LookupError::Refused(reason)) => reason,
        other => panic!("{client_id}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_document_resolves_to_a_public_client_and_is_cached() {
    let docs = doc_server().await;
    let app = app_for(&docs, true, true).await;
    let state = app.stack.oauth_state().unwrap();
    let url = docs.url("/client.json");
    let client = state.clients.find(&url).await.unwrap().expect("resolved");
    assert_eq!(client.client_id, url);
    assert_eq!(client.document_url.as_deref(), Some(url.as_str()));
    assert_eq!(client.client_name, "Doc Client");
    assert_eq!(
        client.redirect_uris,
        ["http://127.0.0.1/callback", "http://localhost/callback"]
    );
    assert_eq!(client.auth_methods, [AuthMethod::None]);
    assert_eq!(client.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(
        client.allowed_scopes.to_string(),
        "account:calculate customer:read ticket:create"
    );
    assert_eq!(client.allowed_resources, [LOCAL_MCP]);
    assert_eq!(docs.hits("/client.json"), 1);

    // max-age=600: the second lookup is served from the cache.
    let again = state.clients.find(&url).await.unwrap().expect("cached");
    assert_eq!(again.client_id, url);
    assert_eq!(docs.hits("/client.json"), 1, "no second request");

    // Refusals are cached too: a bad URL is not fetched on every request.
    refusal(&app, &docs.url("/redirect.json")).await;
    refusal(&app, &docs.url("/redirect.json")).await;
    assert_eq!(docs.hits("/redirect.json"), 1);

    // At the token endpoint a refused document is an unknown client
    // (invalid_client), not a store outage (503).
    let resp = app
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &docs.url("/mismatch.json")),
                ("client_secret", "not-a-secret-of-any-client"),
            ],
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_document_on_a_loopback_address_is_refused_unless_allow_listed() {
    let docs = doc_server().await;
    let app = app_for(&docs, false, true).await;
    let reason = refusal(&app, &docs.url("/client.json")).await;
    assert!(
        reason.starts_with("the client_id URL's host localhost resolves to ")
            && reason.ends_with(
                ", a loopback address; client metadata documents must be on public addresses"
            ),
        "{reason}"
    );
    // The same by IP literal, v4 and v4-mapped v6.
    let reason = refusal(
        &app,
        &format!("https://127.0.0.1:{}/client.json", docs.port),
    )
    .await;
    assert_eq!(
        reason,
        "the client_id URL's host 127.0.0.1 resolves to 127.0.0.1, a loopback address; \
         client metadata documents must be on public addresses"
    );
    let reason = refusal(
        &app,
        &format!("https://[::ffff:7f00:1]:{}/client.json", docs.port),
    )
    .await;
    assert!(reason.contains("a loopback address"), "{reason}");
    assert_eq!(docs.hits("/client.json"), 0, "no request was made");
}

#[tokio::test]
async fn oversized_documents_are_refused() {
    let docs = doc_server().await;
    let app = app_for(&docs, true, true).await;
    for path in ["/big.json", "/endless.json"] {
        assert_eq!(
            refusal(&app, &docs.url(path)).await,
            "the client metadata document is larger than 5120 bytes",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_slow_document_is_refused() {
    let docs = doc_server().await;
    let app = app_for(&docs, true, true).await;
    assert_eq!(
        refusal(&app, &docs.url("/slow.json")).await,
        "the client metadata document did not arrive within 1 s"
    );
}

#[tokio::test]
async fn documents_that_break_the_rules_are_refused() {
    let docs = doc_server().await;
    let app = app_for(&docs, true, true).await;
    let cases = [
        (
            "/mismatch.json",
            "the document's client_id differs from the URL it was fetched from",
        ),
        (
            "/redirect.json",
            "the client_id URL answered 302 Found; redirects are not followed",
        ),
        (
            "/confidential.json",
            "token_endpoint_auth_method must be absent or \"none\": only public clients may \
             use a metadata document here",
        ),
        (
            "/bad-redirect.json",
            "redirect_uris[0] is invalid: must use https, or http on a loopback host \
             (127.0.0.1, [::1], localhost)",
        ),
        (
            "/text.json",
            "the client metadata document is not served as application/json",
        ),
        ("/missing.json", "the client_id URL answered 404 Not Found"),
    ];
    for (path, expected) in cases {
        assert_eq!(refusal(&app, &docs.url(path)).await, expected, "{path}");
    }
    assert_eq!(
        docs.hits("/client.json"),
        0,
        "the redirect was not followed"
    );
    // Not https, or not a valid document URL: refused without a request.
    assert_eq!(
        refusal(&app, &format!("http://localhost:{}/client.json", docs.port)).await,
        "a client_id URL must use https"
    );
    assert_eq!(
        refusal(&app, &docs.url("/a/../client.json")).await,
        "the client_id URL must not contain . or .. path segments"
    );
    assert_eq!(
        refusal(&app, &docs.url("/")).await,
        "the client_id URL must have a path"
    );
    assert_eq!(docs.hits("/client.json"), 0);
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let docs = doc_server().await;
    let app = app_for(&docs, true, false).await;
    let reason = refusal(&app, &docs.url("/client.json")).await;
    assert!(
        reason.starts_with("the client metadata document could not be fetched (")
            && reason.contains("UnknownIssuer"),
        "{reason}"
    );
}
