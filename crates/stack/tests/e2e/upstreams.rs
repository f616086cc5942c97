//! nginx keeps its connections to the servers open: the template's
//! `keepalive` (idle upstream connections kept per worker) covers a burst of
//! concurrent requests, so the end of a burst closes none of the
//! connections it opened. With `keepalive 16` and 32 concurrent token
//! requests, nginx opened a new upstream connection for 14–16 % of the
//! requests under load (780–890 per second, each leaving a socket in
//! TIME_WAIT for a minute on the proxy host; BENCHMARKS.md).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::helpers::Stack;

/// Concurrent clients in the burst: above the old `keepalive 16`, below
/// the template's `keepalive 64`.
const CLIENTS: usize = 48;
const REQUESTS_EACH: usize = 10;

/// The local ends (address:port, as /proc writes them) of the sockets in
/// TIME_WAIT whose remote end is `upstream`: connections to that server which
/// this host closed first (nginx closing an upstream connection leaves one
/// for 60 s). Linux `/proc/net/tcp`.
fn closed_towards(upstream: SocketAddr) -> BTreeSet<String> {
    let SocketAddr::V4(v4) = upstream else {
        panic!("the servers listen on 127.0.0.1: {upstream}");
    };
    // /proc/net/tcp writes an IPv4 address as the hex of its bytes in host
    // (little-endian) order, and the port as big-endian hex.
    let ip = u32::from_le_bytes(v4.ip().octets());
    let remote = format!("{ip:08X}:{:04X}", v4.port());
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 06 = TCP_TIME_WAIT
            (fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"06"))
                .then(|| fields[1].to_owned())
        })
        .collect()
}

/// `CLIENTS` clients send `REQUESTS_EACH` GETs of `/health` each, all at
/// once, through `front` (one HTTPS connection per client).
async fn burst(stack: &Stack, front: u16) {
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        // A client of its own: its own TLS connection to nginx.
        let http = stack.inner.http_builder().unwrap().build().unwrap();
        let url = format!("https://localhost:{front}/health");
        clients.spawn(async move {
            for _ in 0..REQUESTS_EACH {
                let status = http.get(&url).send().await.unwrap().status();
                assert_eq!(status, 200, "{url}");
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
}

/// Fails if the burst through `front` closed a connection to any upstream
/// in `upstreams` (a TIME_WAIT socket towards it that was not there before:
/// one left by an earlier server on the same port may expire meanwhile).
async fn burst_closes_nothing(stack: &Stack, front: u16, upstreams: &[SocketAddr]) {
    let since = Instant::now();
    let before: Vec<BTreeSet<String>> = upstreams.iter().map(|u| closed_towards(*u)).collect();
    burst(stack, front).await;
    let closed: Vec<usize> = upstreams
        .iter()
        .zip(&before)
        .map(|(u, before)| closed_towards(*u).difference(before).count())
        .collect();
    // nginx closes an upstream connection idle for keepalive_timeout (5 s):
    // past that, a closed connection would prove nothing.
    let elapsed = since.elapsed();
    assert!(
        elapsed.as_secs_f64() < 4.5,
        "the burst took {elapsed:?}: too slow to tell a closed connection from an idle one"
    );
    assert_eq!(
        closed,
        vec![0; upstreams.len()],
        "connections nginx closed to {upstreams:?} in a burst of {CLIENTS} clients"
    );
}

/// The stack itself sends nothing through nginx, so every upstream
/// connection is the burst's own.
#[tokio::test]
async fn a_burst_of_concurrent_requests_leaves_nginx_upstream_connections_open() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    burst_closes_nothing(&stack, stack.nginx().oauth_port(), &[stack.oauth_addr]).await;
    let replicas: Vec<SocketAddr> = stack.replicas().iter().map(|r| r.addr()).collect();
    assert_eq!(replicas.len(), 2);
    burst_closes_nothing(&stack, stack.nginx().mcp_port(), &replicas).await;
}
