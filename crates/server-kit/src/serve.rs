//! The one serve loop of both servers, with connection hygiene (issue 13):
//! a slow or idle client cannot hold a connection for ever, the number of
//! connections is capped, and the accept loop outlives fd exhaustion.
//!
//! | variable | default | what happens |
//! |---|---|---|
//! | `HTTP_HEADER_READ_TIMEOUT_SECS` | `10` | a request's headers must arrive within this time of the server starting to wait for them; on a kept-alive HTTP/1.1 connection that wait starts when the previous response is sent, so this is also the keep-alive idle limit. Beyond it the connection is closed (hyper sends nothing: no request was read). |
//! | `HTTP_REQUEST_TIMEOUT_SECS` | `30` | from the headers to the response head, body reading included: beyond it the server answers 408 in its protocol's shape and closes the connection. Streams (SSE) are not cut: their head is sent at once. |
//! | `HTTP_IDLE_TIMEOUT_SECS` | `60` | a connection on which no byte moves either way for this long is closed (a stalled body, a client that stopped reading, an idle HTTP/2 connection). SSE streams send a keep-alive every 15 s. |
//! | `HTTP_MAX_CONNECTIONS` | `512` | open connections per process; one more is answered 503 (`Retry-After: 1`, `Connection: close`) and closed at once. |
//!
//! A proxy's idle upstream connections must close before
//! `HTTP_HEADER_READ_TIMEOUT_SECS`, or a request may meet a connection the
//! server is closing (nginx/secure-mcp.conf.template sets `keepalive_timeout
//! 5s` in its upstreams).
//!
//! Accept errors never end the loop: a connection-level error (the peer
//! reset before accept) is skipped, anything else (EMFILE, ENFILE, ENOMEM)
//! is logged (at most once a second) and retried after a short pause, during
//! which existing connections finish and free their descriptors.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::{ConfigError, var_parsed};

/// Default `HTTP_HEADER_READ_TIMEOUT_SECS`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `HTTP_REQUEST_TIMEOUT_SECS`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `HTTP_IDLE_TIMEOUT_SECS`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `HTTP_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Pause after an accept error that is not the peer's (fd exhaustion).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The variables [`ConnectionLimits::from_env`] reads.
pub const ENV_VARS: &[&str] = &[
    "HTTP_HEADER_READ_TIMEOUT_SECS",
    "HTTP_REQUEST_TIMEOUT_SECS",
    "HTTP_IDLE_TIMEOUT_SECS",
    "HTTP_MAX_CONNECTIONS",
];

/// How long a client may take and how many may connect (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Reads the `HTTP_*` variables; each must be in range (none may be 0:
    /// that would switch the protection off).
    pub fn from_env() -> Result<Self, ConfigError> {
        let secs = |name: &str, v: u64| -> Result<Duration, ConfigError> {
            if !(1..=3600).contains(&v) {
                return Err(ConfigError::new(
                    name,
                    format!("must be between 1 and 3600 seconds, got {v}"),
                ));
            }
            Ok(Duration::from_secs(v))
        };
        let (h, r, i) = (
            DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
            DEFAULT_REQUEST_TIMEOUT.as_secs(),
            DEFAULT_IDLE_TIMEOUT.as_secs(),
        );
        let header: u64 = var_parsed("HTTP_HEADER_READ_TIMEOUT_SECS", h)?;
        let request: u64 = var_parsed("HTTP_REQUEST_TIMEOUT_SECS", r)?;
        let idle: u64 = var_parsed("HTTP_IDLE_TIMEOUT_SECS", i)?;
        let max_connections: usize = var_parsed("HTTP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?;
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(ConfigError::new(
                "HTTP_MAX_CONNECTIONS",
                format!("must be between 1 and 1000000, got {max_connections}"),
            ));
        }
        Ok(Self {
            header_read_timeout: secs("HTTP_HEADER_READ_TIMEOUT_SECS", header)?,
            request_timeout: secs("HTTP_REQUEST_TIMEOUT_SECS", request)?,
            idle_timeout: secs("HTTP_IDLE_TIMEOUT_SECS", idle)?,
            max_connections,
        })
    }
}

/// What a server answers in its own protocol when the limits bite.
#[derive(Clone)]
pub struct Answers {
    /// The 408 for a request over `HTTP_REQUEST_TIMEOUT_SECS`.
    pub request_timeout: fn() -> Response,
    /// The body (and its media type) of the raw 503 for one connection too many.
    pub busy_body: &'static str,
    pub busy_content_type: &'static str,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish (idle keep-alive connections close at once)
/// and returns when every connection is closed. Each request carries
/// `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    answers: Answers,
    shutdown: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let busy = Arc::new(busy_response(&answers));
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed (out of file descriptors?); retrying");
                    last_warning = Some(Instant::now());
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        // Small responses (SSE events in particular) must not wait for
        // Nagle + delayed ACK (~40 ms per request otherwise).
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let busy = busy.clone();
            tracker.spawn(async move { refuse(tcp, &busy).await });
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits,
            answers: answers.clone(),
            shutdown: shutdown.clone(),
        };
        tracker.spawn(async move {
            connection.run(tcp, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Peer-side failures of one pending connection: skip it, keep accepting.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn busy_response(answers: &Answers) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{}",
        answers.busy_content_type,
        answers.busy_body.len(),
        answers.busy_body
    )
    .into_bytes()
}

/// One connection too many: a 503 written straight to the socket (no
/// request is read), then closed.
async fn refuse(mut tcp: TcpStream, busy: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(busy).await?;
        tcp.shutdown().await
    })
    .await;
}

struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    limits: ConnectionLimits,
    answers: Answers,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: tcp,
            activity: activity.clone(),
        });
        let (router, deadline, late) = (
            self.router,
            self.limits.request_timeout,
            self.answers.request_timeout,
        );
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let answer = match tokio::time::timeout(deadline, router.oneshot(req)).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        let mut response = late();
                        response.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                        response
                    }
                };
                Ok::<_, std::convert::Infallible>(answer)
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let idle = activity.idle_for(self.limits.idle_timeout);
        tokio::pin!(idle);
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                () = idle.as_mut() => {
                    tracing::debug!(%peer, "idle connection closed");
                    return;
                }
                () = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A socket that records activity on every read and write that moves bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Anything that resolves when the server should stop, as a token.
pub fn token_from(signal: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal.await;
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod env_vars_tests {
    #[test]
    fn env_vars_lists_what_from_env_reads() {
        let mut listed = super::ENV_VARS.to_vec();
        listed.sort_unstable();
        assert_eq!(crate::cli::vars_read_in(include_str!("serve.rs")), listed);
    }
}
