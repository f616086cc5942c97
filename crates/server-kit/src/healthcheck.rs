//! `mcp-server healthcheck`: GET /health on the bind address, for container
//! health checks (the runtime image has no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to connect for `bind`: a wildcard bind is probed on loopback.
pub fn probe_addr(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// True when `GET /health` answers 200 within `timeout`.
pub async fn check(bind: SocketAddr, timeout: Duration) -> bool {
    let addr = probe_addr(bind);
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_loopback_for_wildcard_binds() {
        assert_eq!(
            probe_addr("0.0.0.0:8000".parse().unwrap()),
            "127.0.0.1:8000".parse().unwrap()
        );
        assert_eq!(
            probe_addr("[::]:8000".parse().unwrap()),
            "[::1]:8000".parse().unwrap()
        );
        assert_eq!(
            probe_addr("10.0.0.5:8000".parse().unwrap()),
            "10.0.0.5:8000".parse().unwrap()
        );
    }
}
