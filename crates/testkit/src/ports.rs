//! Free loopback ports.

use std::net::{Ipv4Addr, TcpListener};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The OS picks it (bind to port 0), the listener is dropped, and the caller
/// binds it again. Another process can grab the port in between, so fixtures
/// that start a child process on it retry with a new port when the child
/// fails to bind (see [`crate::RedisServer::start`]).
///
/// # Panics
///
/// When the OS cannot bind any loopback port, which leaves no test runnable.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("testkit: cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("testkit: cannot read the bound port: {e}"))
        .port()
}
