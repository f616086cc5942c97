//! The client address to rate-limit: the socket peer, or the
//! `X-Forwarded-For` hop added by a trusted proxy (nginx).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// An IP network (`10.0.0.0/8`, `::1/128`): an [`IpNet`] with its host bits
/// cleared, parsed the way `TRUSTED_PROXIES` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Why a CIDR (or a `TRUSTED_PROXIES` entry) was rejected. The message
/// names the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("{entry:?} is not an IP address or CIDR (like 10.0.0.0/8 or ::1/128)")]
    BadAddress {
        /// The offending entry, as written.
        entry: String,
    },
    /// The prefix is not a number or is too long for the address family.
    #[error("{entry:?} has an invalid prefix length (at most {max} for this address family)")]
    BadPrefix {
        /// The offending entry, as written.
        entry: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// A list with an empty entry (`10.0.0.0/8,,` or `,`): usually a
    /// variable substituted as empty, so the proxy meant to be trusted is
    /// silently missing.
    #[error(
        "entry {position} is empty in {list:?}: remove the extra comma, or unset the variable to trust no proxy"
    )]
    EmptyEntry {
        /// The whole list, as written.
        list: String,
        /// 1-based position of the empty entry.
        position: usize,
    },
    /// A prefix length of 0 (`0.0.0.0/0`, `::/0`): every address would be a
    /// trusted proxy, so any client could pick its own rate-limit key with
    /// `X-Forwarded-For`.
    #[error(
        "{entry:?} trusts every address, so any client could choose its rate-limit key with X-Forwarded-For: name the proxies' own networks"
    )]
    TrustsEveryone {
        /// The offending entry, as written.
        entry: String,
    },
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a single host: /32 or /128).
    /// Host bits set below the prefix are cleared (`10.1.2.3/8` is
    /// `10.0.0.0/8`), as nginx and Go do. Parsed here rather than with
    /// `IpNet::from_str`, which needs the prefix, keeps host bits and gives
    /// one opaque error for both mistakes.
    pub fn parse(entry: &str) -> Result<Self, CidrError> {
        let text = entry.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress {
            entry: entry.to_owned(),
        })?;
        let net = match prefix {
            None => IpNet::from(addr),
            Some(p) => p
                .parse::<u8>()
                .ok()
                // u8 parsing accepts a leading '+'; a CIDR does not.
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|len| IpNet::new(addr, len).ok())
                .ok_or_else(|| CidrError::BadPrefix {
                    entry: entry.to_owned(),
                    max: if addr.is_ipv4() { 32 } else { 128 },
                })?,
        };
        Ok(Self(net.trunc()))
    }

    /// The network as an [`IpNet`].
    pub fn ip_net(&self) -> IpNet {
        self.0
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`, what a dual-stack socket reports) match IPv4
    /// networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip) || self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
/// Empty by default: the socket peer is then always the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
}

impl TrustedProxies {
    /// No trusted proxies.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of CIDRs or addresses, e.g.
    /// `"127.0.0.1/32, 10.0.0.0/8, ::1"`. A blank string means no trusted
    /// proxies. Fails on the first bad entry, naming it: an empty entry
    /// (`"10.0.0.0/8,"`, `","`) and a /0 network are errors, because each
    /// silently weakens the X-Forwarded-For check the operator meant to set.
    pub fn parse(list: &str) -> Result<Self, CidrError> {
        if list.trim().is_empty() {
            return Ok(Self::none());
        }
        let networks = list
            .split(',')
            .enumerate()
            .map(|(i, entry)| {
                if entry.trim().is_empty() {
                    return Err(CidrError::EmptyEntry {
                        list: list.to_owned(),
                        position: i + 1,
                    });
                }
                let cidr = Cidr::parse(entry)?;
                if cidr.prefix() == 0 {
                    return Err(CidrError::TrustsEveryone {
                        entry: entry.to_owned(),
                    });
                }
                Ok(cidr)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// The parsed networks.
    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client address for a request: see [`client_ip`].
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, self)
    }
}

impl FromStr for TrustedProxies {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The address to rate-limit a request by.
///
/// - A peer outside `trusted` is the client: its `X-Forwarded-For` is
///   ignored (anyone can write one).
/// - A trusted peer (nginx) appended the address it saw to
///   `X-Forwarded-For`; reading the hops right to left, the first one that
///   is not itself a trusted proxy is the client. Hops further left were
///   written by that client and are not believed.
/// - If every hop is trusted, the left-most one is used; if the header is
///   absent, or a hop that has to be read is malformed (not an IP, or
///   `IP:port`), the peer is used: a bad header can never pick an
///   arbitrary key.
///
/// Several `X-Forwarded-For` fields are read as one comma-separated list, in
/// order (RFC 9110 §5.3). IPv4-mapped IPv6 addresses are reported as IPv4.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if !trusted.contains(peer_ip) {
        return peer_ip;
    }
    let mut fields = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(text) => fields.push(text),
            Err(_) => return peer_ip,
        }
    }
    let mut leftmost = None;
    for hop in fields.iter().rev().flat_map(|f| f.rsplit(',')) {
        let hop = hop.trim();
        if hop.is_empty() {
            continue;
        }
        let Some(ip) = parse_hop(hop) else {
            return peer_ip;
        };
        if !trusted.contains(ip) {
            return ip;
        }
        leftmost = Some(ip);
    }
    leftmost.unwrap_or(peer_ip)
}

/// One hop: an IPv4 or IPv6 address, optionally `IPv4:port`, `[IPv6]` or
/// `[IPv6]:port` (seen from some proxies).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = hop.parse::<SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40_000)
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_lists_of_v4_and_v6_networks_and_hosts() {
        let t = TrustedProxies::parse(" 127.0.0.1/32, 10.1.2.3/8 ,::1, fd00::/8").unwrap();
        let shown: Vec<String> = t.networks().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]);
        assert!(t.contains(ip("10.255.0.1")));
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert!(t.contains(ip("fdab::1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(!t.contains(ip("::2")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn lists_that_would_weaken_the_check_are_refused() {
        for (list, position) in [
            (",", 1),
            (" , ", 1),
            ("10.0.0.0/8,", 2),
            ("10.0.0.0/8,,::1", 2),
        ] {
            let err = TrustedProxies::parse(list).unwrap_err();
            assert_eq!(
                err,
                CidrError::EmptyEntry {
                    list: list.into(),
                    position
                },
                "{list:?}"
            );
        }
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8,")
                .unwrap_err()
                .to_string(),
            "entry 2 is empty in \"10.0.0.0/8,\": remove the extra comma, or unset the variable to trust no proxy"
        );
        for entry in ["0.0.0.0/0", " ::/0", "10.1.2.3/0"] {
            let err = TrustedProxies::parse(&format!("127.0.0.1,{entry}")).unwrap_err();
            assert_eq!(
                err,
                CidrError::TrustsEveryone {
                    entry: entry.into()
                }
            );
        }
        assert_eq!(
            TrustedProxies::parse("0.0.0.0/0").unwrap_err().to_string(),
            "\"0.0.0.0/0\" trusts every address, so any client could choose its rate-limit key \
             with X-Forwarded-For: name the proxies' own networks"
        );
    }

    #[test]
    fn bad_entries_are_named_in_the_error() {
        let err = TrustedProxies::parse("10.0.0.0/8, nginx").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\" nginx\" is not an IP address or CIDR (like 10.0.0.0/8 or ::1/128)"
        );
        let err = TrustedProxies::parse("10.0.0.0/33").unwrap_err();
        assert_eq!(
            err,
            CidrError::BadPrefix {
                entry: "10.0.0.0/33".into(),
                max: 32
            }
        );
        assert_eq!(
            err.to_string(),
            "\"10.0.0.0/33\" has an invalid prefix length (at most 32 for this address family)"
        );
        for bad in [
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/-1",
        ] {
            assert!(
                matches!(Cidr::parse(bad), Err(CidrError::BadPrefix { .. })),
                "{bad}"
            );
        }
        for bad in ["", "/8", "10.0.0/8", "1.2.3.4.5", "[::1]/128", "localhost"] {
            assert!(
                matches!(Cidr::parse(bad), Err(CidrError::BadAddress { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn untrusted_peer_ignores_a_spoofed_header() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = xff(&["1.2.3.4"]);
        assert_eq!(
            client_ip(peer("203.0.113.7"), &h, &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(peer("203.0.113.7"), &h, &TrustedProxies::none()),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn trusted_peer_yields_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // The client wrote "6.6.6.6" itself; nginx appended what it saw.
        let h = xff(&["6.6.6.6, 198.51.100.9"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &trusted),
            ip("198.51.100.9")
        );
        // A chain of trusted proxies is skipped.
        let h = xff(&["6.6.6.6, 198.51.100.9, 10.0.0.2", "10.0.0.3"]);
        assert_eq!(
            client_ip(peer("10.0.0.4"), &h, &trusted),
            ip("198.51.100.9")
        );
        // Garbage left of the client's hop is never read.
        let h = xff(&["not-an-ip, 198.51.100.9"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &trusted),
            ip("198.51.100.9")
        );
        // Ports and brackets as some proxies write them.
        let h = xff(&["198.51.100.9:5555"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &trusted),
            ip("198.51.100.9")
        );
        let h = xff(&["[2001:db8::7]:443"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &trusted),
            ip("2001:db8::7")
        );
        let h = xff(&["[2001:db8::7]"]);
        assert_eq!(
            client_ip(peer("127.0.0.1"), &h, &trusted),
            ip("2001:db8::7")
        );
        // Dual-stack peer address of a trusted IPv4 proxy.
        let h = xff(&["::ffff:198.51.100.9"]);
        assert_eq!(
            client_ip(peer("::ffff:127.0.0.1"), &h, &trusted),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn trusted_peer_falls_back_to_the_peer_or_leftmost_trusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let p = peer("10.0.0.1");
        assert_eq!(client_ip(p, &HeaderMap::new(), &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(p, &xff(&[""]), &trusted), ip("10.0.0.1"));
        assert_eq!(
            client_ip(p, &xff(&["1.2.3.4, junk"]), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(client_ip(p, &xff(&["unknown"]), &trusted), ip("10.0.0.1"));
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(),
        );
        assert_eq!(client_ip(p, &h, &trusted), ip("10.0.0.1"));
        // Every hop trusted: the one furthest from us.
        assert_eq!(
            client_ip(p, &xff(&["10.9.9.9, 10.0.0.2"]), &trusted),
            ip("10.9.9.9")
        );
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<u128>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ]
    }

    proptest! {
        /// Display/parse round trip, and membership agrees with a bitwise
        /// reference (an IPv4-mapped IPv6 probe also matches as IPv4).
        #[test]
        fn cidr_round_trip_and_membership(net in any_ip(), prefix in 0u8..=128, probe in any_ip()) {
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = prefix % (max + 1);
            let cidr = Cidr::parse(&format!("{net}/{prefix}")).unwrap();
            prop_assert_eq!(Cidr::parse(&cidr.to_string()).unwrap(), cidr);
            prop_assert!(cidr.contains(net));
            let same_family = |probe: IpAddr| match (net, probe) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    prefix == 0 || (u32::from(a) ^ u32::from(b)) >> (32 - u32::from(prefix)) == 0
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    prefix == 0 || (u128::from(a) ^ u128::from(b)) >> (128 - u32::from(prefix)) == 0
                }
                _ => false,
            };
            let expected = same_family(probe) || same_family(probe.to_canonical());
            prop_assert_eq!(cidr.contains(probe), expected);
        }

        /// A bare address is the single-host network.
        #[test]
        fn bare_address_is_a_host_network(addr in any_ip()) {
            let cidr = Cidr::parse(&addr.to_string()).unwrap();
            prop_assert_eq!(cidr.network(), addr);
            prop_assert_eq!(cidr.prefix(), if addr.is_ipv4() { 32 } else { 128 });
        }

        /// Arbitrary input never panics, and an error always quotes the entry.
        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,40}") {
            if let Err(e) = TrustedProxies::parse(&s) {
                let entry = match &e {
                    CidrError::BadAddress { entry }
                    | CidrError::BadPrefix { entry, .. }
                    | CidrError::TrustsEveryone { entry } => entry.clone(),
                    CidrError::EmptyEntry { list, .. } => list.clone(),
                };
                prop_assert!(s.contains(entry.as_str()));
                let quoted = format!("{entry:?}");
                prop_assert!(e.to_string().contains(&quoted));
            }
        }

        /// A spoofed header from an untrusted peer never changes the key.
        #[test]
        fn untrusted_peer_is_always_the_client(p in any_ip(), header in "[0-9a-f:., \\[\\]]{0,60}") {
            prop_assume!(!p.to_canonical().is_loopback());
            let trusted = TrustedProxies::parse("127.0.0.0/8, ::1").unwrap();
            let h = match HeaderValue::from_str(&header) {
                Ok(v) => { let mut h = HeaderMap::new(); h.insert(X_FORWARDED_FOR, v); h }
                Err(_) => HeaderMap::new(),
            };
            prop_assert_eq!(client_ip(SocketAddr::new(p, 1), &h, &trusted), p.to_canonical());
        }

        /// Behind a trusted proxy, the client is the hop the proxy appended,
        /// whatever the client put in front of it.
        #[test]
        fn trusted_proxy_hop_wins_over_client_garbage(client in any_ip(), junk in "[ -~]{0,40}") {
            prop_assume!(!client.to_canonical().is_loopback());
            let trusted = TrustedProxies::parse("127.0.0.0/8, ::1").unwrap();
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&junk) { h.append(X_FORWARDED_FOR, v); }
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(&client.to_string()).unwrap());
            prop_assert_eq!(client_ip(SocketAddr::new(ip("127.0.0.1"), 1), &h, &trusted), client.to_canonical());
        }
    }
}
