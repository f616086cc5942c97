//! Self-test of the Redis fixture against a real `redis-server`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use testkit::RedisServer;

/// Sends one inline command and returns the first reply line.
fn command(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

#[test]
fn free_port_is_bindable() {
    let port = testkit::free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn starts_answers_stops_and_restarts_on_the_same_port() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(command(port, "PING").unwrap(), "+PONG");
    assert_eq!(command(port, "SET k v").unwrap(), "+OK");
    // No persistence: the fixture must not write dumps into the work tree.
    assert_eq!(command(port, "CONFIG GET save").unwrap(), "*2");

    redis.stop();
    assert!(!redis.is_running());
    assert!(
        command(port, "PING").is_err(),
        "server still answering after stop()"
    );
    redis.stop(); // idempotent

    redis.restart();
    assert!(redis.is_running());
    assert_eq!(redis.port(), port);
    assert_eq!(command(port, "PING").unwrap(), "+PONG");
    // A restarted in-memory server starts empty, like a crashed one.
    assert_eq!(command(port, "GET k").unwrap(), "$-1");
}

#[test]
fn drop_kills_the_server() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port();
    drop(redis);
    assert!(command(port, "PING").is_err());
}

#[test]
fn two_servers_get_different_ports() {
    let (Some(a), Some(b)) = (RedisServer::start(), RedisServer::start()) else {
        return;
    };
    assert_ne!(a.port(), b.port());
    assert_eq!(command(a.port(), "PING").unwrap(), "+PONG");
    assert_eq!(command(b.port(), "PING").unwrap(), "+PONG");
}
