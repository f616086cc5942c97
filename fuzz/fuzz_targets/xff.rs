//! The X-Forwarded-For walk (`ratelimit::client_ip`) against a fixed
//! `TRUSTED_PROXIES`.
//!
//! Input: the first byte picks the socket peer (trusted or not, v4 or v6,
//! IPv4-mapped); the rest, split at `\n`, are the `X-Forwarded-For` field
//! values (a value that is not a valid header value is dropped, as hyper
//! would refuse it).
//!
//! Properties: an untrusted peer is always the answer; otherwise the answer
//! is the peer or an address written in the header; an answer from the
//! header that is a trusted proxy means every hop read was trusted.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use ratelimit::TrustedProxies;

const TRUSTED: &str = "10.0.0.0/8, 192.168.1.1, ::1, fd00::/8, 172.16.0.0/12";

static PROXIES: LazyLock<TrustedProxies> =
    LazyLock::new(|| TrustedProxies::parse(TRUSTED).unwrap_or_else(|e| panic!("{TRUSTED}: {e}")));

const PEERS: [&str; 8] = [
    "10.1.2.3:443",
    "192.168.1.1:80",
    "[::1]:8080",
    "[fd00::7]:1",
    "[::ffff:10.9.9.9]:2",
    "203.0.113.9:3",
    "[2001:db8::1]:4",
    "172.16.0.1:5",
];

/// Every reading of one hop the walk may make: plain, `v4:port`, `[v6]`,
/// `[v6]:port`, IPv4-mapped reported as IPv4.
fn hop_addr(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
        .map(|ip| ip.to_canonical())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(peer) = PEERS[usize::from(pick) % PEERS.len()].parse::<SocketAddr>() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for value in rest.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append("x-forwarded-for", v);
        }
    }
    let got = ratelimit::client_ip(peer, &headers, &PROXIES);
    let peer_ip = peer.ip().to_canonical();
    if !PROXIES.contains(peer_ip) {
        assert_eq!(got, peer_ip, "an untrusted peer's header was believed");
        return;
    }
    if got == peer_ip {
        return;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| hop_addr(h.trim()))
        .collect();
    assert!(
        hops.contains(&got),
        "{got} is neither the peer nor in the header"
    );
    if PROXIES.contains(got) {
        assert!(
            hops.iter().all(|h| PROXIES.contains(*h)),
            "a trusted hop {got} was chosen over an untrusted one"
        );
    }
});
