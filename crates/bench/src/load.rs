//! Closed-loop HTTP/1.1 load generator: N keep-alive connections, each
//! sending its next request as soon as the previous answer is fully read.
//! Connections (and their TLS handshakes) are all open before the clock
//! starts. Every response is checked; latencies go to an HDR histogram (µs).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// Builds the next request of connection `n` (so a connection can own state,
/// e.g. its MCP session).
pub type MakeRequest = Arc<dyn Fn(usize) -> Request<Full<Bytes>> + Send + Sync>;

/// A request that takes longer than this counts as an error (and ends its
/// connection), so a lost response cannot hang the run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Decides whether a response is correct (a 200 with an error body is not).
pub type Check = Arc<dyn Fn(StatusCode, &[u8]) -> bool + Send + Sync>;

pub struct Target {
    pub addr: SocketAddr,
    /// TLS on every connection when set; plain TCP otherwise.
    pub tls: Option<Tls>,
    pub make: MakeRequest,
    pub check: Check,
}

/// Client TLS: trusts only the given CA (no system roots, and no switch that
/// weakens verification), sends one server name as SNI and offers only
/// `http/1.1` in ALPN, so nginx's `http2` listener answers in HTTP/1.1.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl Tls {
    /// Trusts the certificates in the PEM file `ca` and nothing else.
    pub fn trusting(ca: &Path, server_name: &str) -> anyhow::Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading CA {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("parsing CA {}", ca.display()))?)?;
        }
        if roots.is_empty() {
            bail!("no certificate in {}", ca.display());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(server_name.to_owned())?,
        })
    }
}

impl Tls {
    /// What a handshake with `addr` negotiates: version, suite, key exchange.
    pub async fn describe(&self, addr: SocketAddr) -> anyhow::Result<String> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let stream = self
            .connector
            .connect(self.server_name.clone(), stream)
            .await?;
        let c = stream.get_ref().1;
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        Ok(format!(
            "{} {} {}",
            or_none(c.protocol_version().map(|v| format!("{v:?}"))),
            or_none(
                c.negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
            ),
            or_none(
                c.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
            ),
        ))
    }
}

/// Opens one keep-alive HTTP/1.1 connection to `addr` (TCP, then the TLS
/// handshake when `tls` is set); the connection runs on its own task.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&Tls>,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        return Ok(sender);
    };
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), stream)
        .await
        .with_context(|| format!("TLS handshake with {addr}"))?;
    let alpn = stream.get_ref().1.alpn_protocol();
    if alpn != Some(b"http/1.1".as_slice()) {
        bail!(
            "{addr} negotiated ALPN {:?} instead of http/1.1",
            alpn.map(String::from_utf8_lossy)
        );
    }
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

#[derive(Debug)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Connections the server closed (after a complete response) and the
    /// generator reopened during the measured window.
    pub reconnects: u64,
    pub hist: Histogram<u64>,
    pub elapsed: Duration,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run(
    target: Target,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let target = Arc::new(target);
    // Every connection (and TLS handshake) is open before the clock starts.
    let mut opening = Vec::new();
    for _ in 0..connections {
        let t = target.clone();
        opening.push(tokio::spawn(async move {
            connect(t.addr, t.tls.as_ref()).await
        }));
    }
    let mut senders = Vec::new();
    for o in opening {
        senders.push(o.await.context("connect task panicked")??);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::new();
    for (n, sender) in senders.into_iter().enumerate() {
        let t = target.clone();
        tasks.push(tokio::spawn(async move {
            connection(&t, sender, n, measure_from, end).await
        }));
    }
    let mut total = Stats {
        ok: 0,
        errors: 0,
        first_error: None,
        reconnects: 0,
        hist: Histogram::new(3)?,
        elapsed: duration,
    };
    for t in tasks {
        let s = t.await.context("load task panicked")??;
        total.ok += s.ok;
        total.errors += s.errors;
        total.reconnects += s.reconnects;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        total.hist.add(&s.hist)?;
    }
    Ok(total)
}

async fn connection(
    t: &Target,
    mut sender: SendRequest<Full<Bytes>>,
    n: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Stats> {
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        first_error: None,
        reconnects: 0,
        hist: Histogram::new(3)?,
        elapsed: Duration::ZERO,
    };
    loop {
        let begin = Instant::now();
        if begin >= end {
            break;
        }
        if sender.ready().await.is_err() {
            // The server ended the keep-alive connection after a complete
            // response (nginx does after `keepalive_requests`, 1000 by
            // default). Reconnect as any client would; the new handshake
            // counts in this request's latency.
            match tokio::time::timeout(REQUEST_TIMEOUT, connect(t.addr, t.tls.as_ref())).await {
                Ok(Ok(s)) => sender = s,
                Ok(Err(e)) => {
                    stats.errors += 1;
                    stats
                        .first_error
                        .get_or_insert_with(|| format!("reconnect: {e:#}"));
                    break;
                }
                Err(_) => {
                    stats.errors += 1;
                    stats.first_error.get_or_insert_with(|| {
                        format!("reconnect: none within {REQUEST_TIMEOUT:?}")
                    });
                    break;
                }
            }
            if begin >= measure_from {
                stats.reconnects += 1;
            }
        }
        let exchange = async {
            let resp = sender.send_request((t.make)(n)).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!(
                "no complete response within {REQUEST_TIMEOUT:?}"
            )),
        };
        let done = Instant::now();
        let measured = begin >= measure_from && done <= end;
        match result {
            Ok((status, body)) if (t.check)(status, &body) => {
                if measured {
                    stats.ok += 1;
                    stats.hist.record(
                        u64::try_from(done.duration_since(begin).as_micros()).unwrap_or(u64::MAX),
                    )?;
                }
            }
            Ok((status, body)) => {
                stats.errors += 1;
                if stats.first_error.is_none() {
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                    stats.first_error = Some(format!("HTTP {status}: {text}"));
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| format!("{e:#}"));
                break;
            }
        }
    }
    Ok(stats)
}
