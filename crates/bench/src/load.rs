//! Closed-loop HTTP/1.1 load generator: N keep-alive connections, each
//! sending its next request as soon as the previous answer is fully read.
//! Every response is checked; latencies go to an HDR histogram (µs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

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
    pub make: MakeRequest,
    pub check: Check,
}

#[derive(Debug)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
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
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let target = Arc::new(target);
    let mut tasks = Vec::new();
    for n in 0..connections {
        let t = target.clone();
        tasks.push(tokio::spawn(async move {
            connection(&t, n, measure_from, end).await
        }));
    }
    let mut total = Stats {
        ok: 0,
        errors: 0,
        first_error: None,
        hist: Histogram::new(3)?,
        elapsed: duration,
    };
    for t in tasks {
        let s = t.await.context("load task panicked")??;
        total.ok += s.ok;
        total.errors += s.errors;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
        total.hist.add(&s.hist)?;
    }
    Ok(total)
}

async fn connection(
    t: &Target,
    n: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Stats> {
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        first_error: None,
        hist: Histogram::new(3)?,
        elapsed: Duration::ZERO,
    };
    let stream = tokio::net::TcpStream::connect(t.addr)
        .await
        .with_context(|| format!("connect {}", t.addr))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    loop {
        let begin = Instant::now();
        if begin >= end {
            break;
        }
        sender.ready().await?;
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
                stats.first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }
    Ok(stats)
}
