//! A real Redis Cluster: `redis-server --cluster-enabled yes` child processes
//! on free loopback ports, joined with `redis-cli --cluster create`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::redis::REDIS_SERVER_BIN_VAR;
use crate::{free_port, services};

/// Overrides where the fixture looks for the `redis-cli` binary.
pub const REDIS_CLI_BIN_VAR: &str = "REDIS_CLI_BIN";

/// `cluster-node-timeout`: how long a master may be silent before its
/// replica takes over. Short, so a test's failover takes about two seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;
/// How long the cluster gets to form, or to heal after a kill.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh port sets tried when another process grabs a chosen port first.
const START_ATTEMPTS: usize = 3;

/// A Redis Cluster owned by one test: `masters` masters with `replicas`
/// replicas each, in memory only, on 127.0.0.1, working files in a temporary
/// directory, every node killed on drop.
///
/// Each node runs with `cluster-require-full-coverage no` (the slots of a
/// lost master stop, the others go on) and `cluster-replica-validity-factor 0`
/// (a replica always takes over, however long it was cut off), so
/// [`kill`](Self::kill)ing a master with a replica shows a promotion.
pub struct RedisCluster {
    nodes: Vec<Node>,
    // Declared last so the directory outlives the processes writing into it.
    dir: TempDir,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

impl RedisCluster {
    /// Three masters with one replica each: the layout that shows a failover.
    pub fn start() -> Option<RedisCluster> {
        Self::start_with(3, 1)
    }

    /// Starts `masters × (1 + replicas)` nodes, creates the cluster and waits
    /// until every node reports `cluster_state:ok` and knows every other.
    ///
    /// Returns `None` (after a loud `SKIPPED:` line) when `redis-server` or
    /// `redis-cli` is missing, unless
    /// [`services_required`](crate::services_required), which panics instead.
    ///
    /// # Panics
    ///
    /// When the binaries exist but no cluster could be formed (the message
    /// carries the nodes' logs): a broken environment, never a reason to skip.
    pub fn start_with(masters: usize, replicas: usize) -> Option<RedisCluster> {
        let Some(server) = services::find_binary("redis-server", REDIS_SERVER_BIN_VAR) else {
            return services::missing(
                "redis-server",
                REDIS_SERVER_BIN_VAR,
                "Debian/Ubuntu: apt-get install redis-server",
            );
        };
        let Some(cli) = services::find_binary("redis-cli", REDIS_CLI_BIN_VAR) else {
            return services::missing(
                "redis-cli",
                REDIS_CLI_BIN_VAR,
                "Debian/Ubuntu: apt-get install redis-tools",
            );
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&server, &cli, masters, masters * (1 + replicas), replicas) {
                Ok(cluster) => return Some(cluster),
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "testkit: no Redis Cluster formed after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n\n")
        );
    }

    fn try_start(
        server: &Path,
        cli: &Path,
        masters: usize,
        count: usize,
        replicas: usize,
    ) -> Result<RedisCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-cluster-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        let mut taken = Vec::new();
        for _ in 0..count {
            // Each node needs two ports (clients, cluster bus), all distinct.
            let mut fresh = || loop {
                let p = free_port();
                if !taken.contains(&p) {
                    taken.push(p);
                    return p;
                }
            };
            let (port, bus) = (fresh(), fresh());
            let child = spawn_node(server, cluster.dir.path(), port, bus)?;
            cluster.nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for node in &mut cluster.nodes {
            if let Some(child) = node.child.as_mut() {
                wait_until_answering(child, node.port)
                    .map_err(|e| format!("{e}\n{}", cluster_logs(cluster_dir(&cluster.dir))))?;
            }
        }
        let mut create = Command::new(cli);
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", &replicas.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null());
        let out = create
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster
            .wait_until_settled(masters)
            .map_err(|e| format!("{e}\n{}", cluster_logs(cluster_dir(&cluster.dir))))?;
        Ok(cluster)
    }

    /// Every node's port, in start order (running or not).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:PORT` of every node, in start order.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The value for `REDIS_CLUSTER_NODES`: every node, comma-separated.
    pub fn nodes_var(&self) -> String {
        self.urls().join(",")
    }

    /// Ports of the nodes that run now.
    pub fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Waits (up to 10 s) until every replica of the master at `port` has
    /// acknowledged everything that master has written (its
    /// `master_repl_offset`), so a write survives the master's death.
    /// `WAIT` cannot do this from another connection: it counts only that
    /// connection's own writes, and one that wrote nothing returns at once.
    ///
    /// # Panics
    ///
    /// When the master has no replica, or they do not catch up in time.
    pub fn wait_for_replicas(&self, port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let info = command(port, &["INFO", "replication"]).unwrap_or_default();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            let written = field("master_repl_offset");
            let acked: Vec<u64> = replica_fields(&info, "offset");
            if let Some(written) = written
                && !acked.is_empty()
                && acked.iter().all(|a| *a >= written)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "testkit: the replicas of the Redis node on port {port} did not catch up: {info}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Ports of the replicas of the master at `port` (its `INFO
    /// replication`), in its order.
    ///
    /// # Panics
    ///
    /// When the node does not answer.
    pub fn replicas_of(&self, port: u16) -> Vec<u16> {
        let info = command(port, &["INFO", "replication"])
            .unwrap_or_else(|e| panic!("testkit: INFO replication on port {port}: {e}"));
        replica_fields(&info, "port")
    }

    /// One command on the node at `port` (plain RESP over TCP), its reply
    /// as text: a status or bulk string as is, an integer in decimal, an
    /// array as its elements' texts one per line, an error as `Err`.
    pub fn command(&self, port: u16, args: &[&str]) -> Result<String, String> {
        command(port, args)
    }

    /// The port of the master that serves `key`'s slot now (asked of a
    /// running node).
    ///
    /// # Panics
    ///
    /// When no running node answers or the slot has no master.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.any_running();
        let slot: u16 = command(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|s| s.parse().map_err(|e| format!("{e}")))
            .unwrap_or_else(|e| panic!("testkit: CLUSTER KEYSLOT failed: {e}"));
        self.slot_owners(port)
            .into_iter()
            .find(|(range, _)| range.contains(&slot))
            .map(|(_, master)| master)
            .unwrap_or_else(|| panic!("testkit: slot {slot} has no master"))
    }

    /// Ports of the masters that own slots, as a running node sees them.
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .slot_owners(self.any_running())
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Kills the node on `port` (SIGKILL, like a crash) and waits for it to
    /// exit. Idempotent.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every running node reports `cluster_state:ok` and sees
    /// `masters` masters serving all 16384 slots — after [`kill`](Self::kill)ing
    /// a master, that is when its replica has been promoted.
    ///
    /// # Panics
    ///
    /// When that does not happen within 30 s (with the nodes' logs).
    pub fn wait_until_healed(&self, masters: usize) {
        if let Err(e) = self.wait_until_settled(masters) {
            panic!("testkit: {e}\n{}", cluster_logs(cluster_dir(&self.dir)));
        }
    }

    /// Sum over the running masters of `cmdstat_*` `calls` in
    /// `INFO commandstats`, by command (lower case), e.g. `evalsha`.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let mut totals: Vec<(String, u64)> = Vec::new();
        for port in self.masters() {
            let Ok(info) = command(port, &["INFO", "commandstats"]) else {
                continue;
            };
            for (name, calls) in parse_commandstats(&info) {
                match totals.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => *c += calls,
                    None => totals.push((name, calls)),
                }
            }
        }
        totals.sort();
        totals
    }

    fn any_running(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("testkit: no node of the cluster runs"))
    }

    /// `(slot range, master port)` from `CLUSTER SLOTS` at `port`.
    fn slot_owners(&self, port: u16) -> Vec<(std::ops::RangeInclusive<u16>, u16)> {
        let reply = raw_command(port, &["CLUSTER", "SLOTS"])
            .unwrap_or_else(|e| panic!("testkit: CLUSTER SLOTS failed: {e}"));
        let Resp::Array(ranges) = reply else {
            panic!("testkit: CLUSTER SLOTS answered {reply:?}");
        };
        ranges
            .into_iter()
            .filter_map(|r| match r {
                Resp::Array(items) => match items.as_slice() {
                    [Resp::Int(from), Resp::Int(to), Resp::Array(master), ..] => {
                        match master.as_slice() {
                            [_, Resp::Int(p), ..] => Some((
                                u16::try_from(*from).ok()?..=u16::try_from(*to).ok()?,
                                u16::try_from(*p).ok()?,
                            )),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn wait_until_settled(&self, masters: usize) -> Result<(), String> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let last = match self.settled(masters) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the cluster did not settle within {SETTLE_TIMEOUT:?}: {last}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every running node: state ok, `masters` slot owners covering every
    /// slot, every running node known and connected.
    fn settled(&self, masters: usize) -> Result<(), String> {
        let running = self.running_ports();
        for &port in &running {
            let info = command(port, &["CLUSTER", "INFO"])?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or("")
                    .to_owned()
            };
            if field("cluster_state:") != "ok" {
                return Err(format!(
                    "node {port}: cluster_state:{}",
                    field("cluster_state:")
                ));
            }
            if field("cluster_slots_ok:") != "16384" {
                return Err(format!(
                    "node {port}: cluster_slots_ok:{}",
                    field("cluster_slots_ok:")
                ));
            }
            let owners = self.slot_owners(port);
            let mut ports: Vec<u16> = owners.iter().map(|(_, p)| *p).collect();
            ports.sort_unstable();
            ports.dedup();
            if ports.len() != masters || ports.iter().any(|p| !running.contains(p)) {
                return Err(format!("node {port}: masters {ports:?}"));
            }
            // Every running node is known to this one and not failing.
            let nodes = command(port, &["CLUSTER", "NODES"])?;
            for other in &running {
                let line = nodes
                    .lines()
                    .find(|l| l.contains(&format!("127.0.0.1:{other}@")))
                    .ok_or_else(|| format!("node {port} does not know {other} yet"))?;
                if line.contains("fail")
                    || line.contains("handshake")
                    || !line.contains("connected")
                {
                    return Err(format!("node {port} sees {other} as: {line}"));
                }
            }
            // A replica is in sync with its master (it can take over).
            let replication = command(port, &["INFO", "replication"])?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} is not in sync yet"));
            }
        }
        Ok(())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn cluster_dir(dir: &TempDir) -> &Path {
    dir.path()
}

fn spawn_node(binary: &Path, dir: &Path, port: u16, bus: u16) -> Result<Child, String> {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).map_err(|e| format!("cannot create {node_dir:?}: {e}"))?;
    Command::new(binary)
        .arg("--port")
        .arg(port.to_string())
        .arg("--cluster-port")
        .arg(bus.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args(["--cluster-require-full-coverage", "no"])
        .args(["--cluster-replica-validity-factor", "0"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .arg("--logfile")
        .arg(node_dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn {}: {e}", binary.display()))
}

fn wait_until_answering(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = String::from("never answered");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("node {port} exited early with {status}"));
        }
        match command(port, &["INFO", "server"]) {
            Ok(info) => {
                let pid = info
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|p| p.trim().parse::<u32>().ok());
                return if pid == Some(child.id()) {
                    Ok(())
                } else {
                    Err(format!("port {port} is served by another redis-server"))
                };
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!("node {port} did not answer within 5 s: {last}"))
}

/// The field `name` of each replica line of a master's `INFO replication`
/// (`slave0:ip=…,port=…,state=online,offset=N,lag=0`), in its order; lines
/// without it, or with a value that does not parse, are skipped.
fn replica_fields<T: std::str::FromStr>(info: &str, name: &str) -> Vec<T> {
    info.lines()
        .filter(|l| l.starts_with("slave"))
        .filter_map(|l| {
            l.split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// The last lines of every node's log.
fn cluster_logs(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(path.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!(
            "--- node {} ---\n{}\n",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            lines[lines.len().saturating_sub(15)..].join("\n")
        ));
    }
    out
}

/// How many times the Redis at `port` has run `name` (lower case), from
/// `INFO commandstats`; 0 when it never has.
pub(crate) fn command_calls_at(port: u16, name: &str) -> u64 {
    let info = command(port, &["INFO", "commandstats"])
        .unwrap_or_else(|e| panic!("testkit: INFO commandstats on port {port} failed: {e}"));
    parse_commandstats(&info)
        .into_iter()
        .find_map(|(n, calls)| (n == name).then_some(calls))
        .unwrap_or(0)
}

/// `(command, calls)` from `INFO commandstats` (`cmdstat_get:calls=3,...`).
pub fn parse_commandstats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// A RESP reply.
#[derive(Debug)]
enum Resp {
    Text(String),
    Int(i64),
    Nil,
    Array(Vec<Resp>),
}

fn command(port: u16, args: &[&str]) -> Result<String, String> {
    fn text(r: Resp) -> String {
        match r {
            Resp::Text(s) => s,
            Resp::Int(i) => i.to_string(),
            Resp::Nil => String::new(),
            Resp::Array(items) => items.into_iter().map(text).collect::<Vec<_>>().join("\n"),
        }
    }
    raw_command(port, args).map(text)
}

fn raw_command(port: u16, args: &[&str]) -> Result<Resp, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect to {port}: {e}"))?;
    let io_timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(io_timeout)
        .and_then(|()| stream.set_write_timeout(io_timeout))
        .map_err(|e| format!("socket options: {e}"))?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write to {port}: {e}"))?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<Resp, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at_checked(1).ok_or("empty reply")?;
    match kind {
        "+" => Ok(Resp::Text(rest.to_owned())),
        "-" => Err(rest.to_owned()),
        ":" => rest
            .parse()
            .map(Resp::Int)
            .map_err(|e| format!("integer reply {rest:?}: {e}")),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|e| format!("bulk length {rest:?}: {e}"))?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Resp::Nil);
            };
            let mut body = vec![0; len + 2];
            reader
                .read_exact(&mut body)
                .map_err(|e| format!("read bulk: {e}"))?;
            body.truncate(len);
            Ok(Resp::Text(String::from_utf8_lossy(&body).into_owned()))
        }
        "*" => {
            let len: i64 = rest
                .parse()
                .map_err(|e| format!("array length {rest:?}: {e}"))?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Resp::Nil);
            };
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<Result<_, _>>()
                .map(Resp::Array)
        }
        other => Err(format!("unexpected reply type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_command_stats() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=40,usec_per_call=3.33\r\n\
                    cmdstat_ping:calls=3,usec=1\r\n";
        assert_eq!(
            parse_commandstats(info),
            [("evalsha".to_owned(), 12), ("ping".to_owned(), 3)]
        );
    }

    #[test]
    fn reads_replica_fields() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7004,state=online,offset=120,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7005,state=wait_bgsave,offset=0,lag=1\r\n\
                    master_repl_offset:120\r\n";
        assert_eq!(replica_fields::<u16>(info, "port"), [7004, 7005]);
        assert_eq!(replica_fields::<u64>(info, "offset"), [120, 0]);
        // A replica's own `slave_*` lines carry no such field.
        let replica = "role:slave\r\nslave_repl_offset:120\r\nslave_read_only:1\r\n";
        assert!(replica_fields::<u64>(replica, "offset").is_empty());
    }
}
