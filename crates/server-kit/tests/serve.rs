//! `server_kit::serve`: slow and idle clients are cut off by the deadlines,
//! one connection over the cap gets a 503, and normal requests are served
//! meanwhile. Raw TCP clients, so each deadline is seen exactly as a client
//! sees it. (No timing is asserted: each test waits for the outcome, with a
//! generous guard against hanging.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use server_kit::serve::{Answers, ConnectionLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const GUARD: Duration = Duration::from_secs(30);

fn answers() -> Answers {
    Answers {
        request_timeout: || (StatusCode::REQUEST_TIMEOUT, "too slow").into_response(),
        busy_body: "{\"busy\":true}",
        busy_content_type: "application/json",
    }
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: ConnectionLimits) -> Self {
        let router =
            Router::new()
                .route(
                    "/peer",
                    get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        peer.ip().to_string()
                    }),
                )
                .route(
                    "/echo",
                    post(|body: Bytes| async move { Response::new(axum::body::Body::from(body)) }),
                );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let done = tokio::spawn(serve(listener, router, limits, answers(), stop.clone()));
        Self { addr, stop, done }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// One complete, normal request on a new connection.
    async fn normal_request(&self) -> String {
        let mut c = self.connect().await;
        c.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        read_all(&mut c).await
    }
}

/// Everything the server sends until it closes the connection.
async fn read_all(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, c.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

fn limits(header: u64, request: u64, idle: u64, max: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(header),
        request_timeout: Duration::from_secs(request),
        idle_timeout: Duration::from_secs(idle),
        max_connections: max,
    }
}

#[tokio::test]
async fn normal_requests_carry_the_peer_address() {
    let s = Server::start(ConnectionLimits::default()).await;
    let answer = s.normal_request().await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n127.0.0.1"), "{answer}");
}

#[tokio::test]
async fn trickled_headers_are_cut_off_while_others_are_served() {
    let s = Server::start(limits(1, 30, 60, 1000)).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = s.connect().await;
        c.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    // Served meanwhile.
    assert!(s.normal_request().await.starts_with("HTTP/1.1 200 OK"));
    for c in &mut slow {
        // Closed without an answer: no request was ever read.
        assert_eq!(read_all(c).await, "");
    }
}

#[tokio::test]
async fn a_trickled_body_gets_408_while_others_are_served() {
    let s = Server::start(limits(30, 1, 60, 1000)).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = s.connect().await;
        c.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
            .await
            .unwrap();
        slow.push(c);
    }
    assert!(s.normal_request().await.starts_with("HTTP/1.1 200 OK"));
    for c in &mut slow {
        let answer = read_all(c).await;
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\ntoo slow"), "{answer}");
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    // Header deadline far away: only the idle limit can close it.
    let s = Server::start(limits(600, 600, 1, 1000)).await;
    let mut c = s.connect().await;
    assert_eq!(read_all(&mut c).await, "");
    // A kept-alive connection that went quiet after a request, too.
    let mut c = s.connect().await;
    c.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn one_connection_over_the_cap_gets_503_and_the_next_is_served() {
    let s = Server::start(limits(600, 600, 600, 2)).await;
    let held = [s.connect().await, s.connect().await];
    // Let the server take both before the third arrives.
    let mut probe = s.connect().await;
    let answer = read_all(&mut probe).await;
    assert_eq!(
        answer,
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: 13\r\n\r\n{\"busy\":true}"
    );
    drop(held);
    // The slots free up as the held connections close.
    let mut served = false;
    for _ in 0..100 {
        if s.normal_request().await.starts_with("HTTP/1.1 200 OK") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a slot frees when a connection closes");
}

#[tokio::test]
async fn shutdown_drains_and_returns() {
    let s = Server::start(ConnectionLimits::default()).await;
    let mut idle = s.connect().await;
    assert!(s.normal_request().await.starts_with("HTTP/1.1 200 OK"));
    s.stop.cancel();
    tokio::time::timeout(GUARD, s.done)
        .await
        .expect("serve returns once every connection is closed")
        .unwrap();
    assert_eq!(read_all(&mut idle).await, "");
}
