//! A real `redis-server` child process on a free loopback port.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{free_port, services};

/// Overrides where the fixture looks for the `redis-server` binary.
pub const REDIS_SERVER_BIN_VAR: &str = "REDIS_SERVER_BIN";

/// How long a starting server gets to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports tried when another process grabs the chosen one first.
const START_ATTEMPTS: usize = 5;

/// A `redis-server` owned by one test: in-memory only (no RDB/AOF), bound to
/// 127.0.0.1 on a free port, working files in a temporary directory, killed
/// on drop.
///
/// [`stop`](Self::stop) and [`restart`](Self::restart) simulate an outage:
/// the port stays the same, so clients configured with [`url`](Self::url)
/// reconnect to the restarted server (which starts empty, like a real Redis
/// without persistence after a crash).
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    // Declared last so the directory outlives the process writing into it.
    dir: TempDir,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING` (up to ~5 s).
    ///
    /// Returns `None` (after a loud `SKIPPED:` line on stderr) when
    /// `redis-server` is not installed, unless
    /// [`services_required`](crate::services_required), which panics instead.
    ///
    /// # Panics
    ///
    /// When the binary exists but no server could be started: that is a
    /// broken environment, never a reason to skip. The message carries the
    /// server's log.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = services::find_binary("redis-server", REDIS_SERVER_BIN_VAR) else {
            return services::missing(
                "redis-server",
                REDIS_SERVER_BIN_VAR,
                "Debian/Ubuntu: apt-get install redis-server",
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create a temp dir for redis-server: {e}"));
        let mut server = RedisServer {
            binary,
            port: 0,
            child: None,
            dir,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match server.spawn_on(port) {
                Ok(()) => return Some(server),
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!(
            "testkit: redis-server failed to start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port the server listens on (stable across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times this server has run `name` (lower case, e.g.
    /// `evalsha`), from `INFO commandstats`; 0 when it never has. Blocking
    /// (a short loopback round trip).
    pub fn command_calls(&self, name: &str) -> u64 {
        crate::redis_cluster::command_calls_at(self.port, name)
    }

    /// True while the child process is running (between start/restart and stop).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Either call may fail only because the process is already gone.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it is
    /// still running) and waits until it answers `PING`. The data is gone.
    ///
    /// # Panics
    ///
    /// When the server cannot be started on that port within ~5 s, e.g.
    /// because another process took the port in the meantime.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        let deadline = Instant::now() + READY_TIMEOUT;
        // The old socket may linger briefly; retry until the deadline.
        loop {
            match self.spawn_on(port) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("testkit: redis-server failed to restart on port {port}: {e}")
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Spawns the child on `port` and waits until *this* child answers.
    fn spawn_on(&mut self, port: u16) -> Result<(), String> {
        let log = self.dir.path().join(format!("redis-{port}.log"));
        let mut child = Command::new(&self.binary)
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", self.binary.display()))?;
        match wait_until_ready(&mut child, port) {
            Ok(()) => {
                self.port = port;
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                Err(format!(
                    "{e}\n--- stderr ---\n{stderr}\n--- log ---\n{}",
                    log_tail(&log)
                ))
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls until the server on `port` answers `PING` *and* reports the child's
/// pid, so a foreign server that grabbed the port is never mistaken for ours.
fn wait_until_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = String::from("never answered");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server exited early with {status}"));
        }
        match server_pid(port) {
            Ok(pid) if pid == child.id() => return Ok(()),
            Ok(pid) => {
                return Err(format!(
                    "port {port} is served by another redis-server (pid {pid})"
                ));
            }
            Err(e) => last_error = e,
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "no answer on port {port} within {READY_TIMEOUT:?}: {last_error}"
    ))
}

/// Sends `PING` then `INFO server` over plain RESP and returns `process_id`.
fn server_pid(port: u16) -> Result<u32, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    let io_timeout = Some(Duration::from_millis(500));
    stream
        .set_read_timeout(io_timeout)
        .and_then(|()| stream.set_write_timeout(io_timeout))
        .map_err(|e| format!("socket options: {e}"))?;
    stream
        .write_all(b"PING\r\nINFO server\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = BufReader::new(stream);

    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read PING reply: {e}"))?;
    if line.trim_end() != "+PONG" {
        // e.g. "-LOADING ..." while starting up.
        return Err(format!("PING answered {:?}", line.trim_end()));
    }

    line.clear();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read INFO header: {e}"))?;
    let len: usize = line
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("INFO answered {:?}", line.trim_end()))?;
    let mut body = vec![0; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read INFO body: {e}"))?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| "INFO server has no process_id".to_owned())
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
