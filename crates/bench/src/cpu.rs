//! CPU time per request of each process under load, over the measured
//! window only (the warm-up excluded): the figures the capacity model in
//! BENCHMARKS.md is built from.
//!
//! Throughput on a shared 2-core machine moves by ±15 % between runs; the
//! CPU a request costs each process moves far less, and it is what sizing
//! needs (cores per replica, Redis shards). Servers are read from
//! `/proc/PID/stat` (`utime + stime`), the generator from `/proc/self/stat`
//! (in a child-process scenario the bench process runs only the generator),
//! and Redis from its own `INFO cpu` (`used_cpu_sys + used_cpu_user`), which
//! also covers a cluster of several nodes without knowing their pids.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Linux's `USER_HZ`: `/proc/PID/stat` counts CPU time in 1/100 s on every
/// architecture the kernel exports it for (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// What a process (or a Redis deployment) spent per request, in µs.
#[derive(Debug, Clone)]
pub struct PerRequest {
    pub name: String,
    pub micros: f64,
}

/// Who is metered.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A process by pid (`None`: the bench process itself).
    Process { name: String, pid: Option<u32> },
    /// Redis nodes by `host:port` (summed).
    Redis { name: String, nodes: Vec<String> },
}

impl Subject {
    pub fn process(name: &str, pid: Option<u32>) -> Option<Self> {
        pid.map(|pid| Self::Process {
            name: name.to_owned(),
            pid: Some(pid),
        })
    }

    pub fn generator() -> Self {
        Self::Process {
            name: "generator".to_owned(),
            pid: None,
        }
    }

    /// Every node of `url`s like `redis://127.0.0.1:6379` (a path or
    /// credentials are not expected on the bench's own servers).
    pub fn redis<'a>(name: &str, urls: impl IntoIterator<Item = &'a str>) -> Self {
        let nodes = urls
            .into_iter()
            .map(|u| {
                u.trim_start_matches("redis://")
                    .trim_end_matches('/')
                    .to_owned()
            })
            .collect();
        Self::Redis {
            name: name.to_owned(),
            nodes,
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Process { name, .. } | Self::Redis { name, .. } => name,
        }
    }

    async fn seconds(&self) -> anyhow::Result<f64> {
        match self {
            Self::Process { pid, .. } => process_seconds(*pid),
            Self::Redis { nodes, .. } => {
                let mut total = 0.0;
                for node in nodes {
                    total += redis_seconds(node).await?;
                }
                Ok(total)
            }
        }
    }
}

/// A meter started before `load::run`: it reads every subject when the
/// measured window opens (the generator starts its clock 50 ms after it is
/// called, then warms up), and again in [`Meter::finish`].
pub struct Meter {
    subjects: Vec<Subject>,
    first: JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl Meter {
    pub fn start(subjects: Vec<Subject>, warmup: Duration) -> Self {
        let s = subjects.clone();
        let first = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50) + warmup).await;
            let mut out = Vec::with_capacity(s.len());
            for subject in &s {
                out.push(subject.seconds().await?);
            }
            Ok(out)
        });
        Self { subjects, first }
    }

    /// CPU µs per request of each subject, `requests` being what the
    /// generator completed in the window.
    pub async fn finish(self, requests: u64) -> anyhow::Result<Vec<PerRequest>> {
        let first = self.first.await.context("CPU meter task panicked")??;
        let mut out = Vec::with_capacity(self.subjects.len());
        for (subject, before) in self.subjects.iter().zip(first) {
            let after = subject.seconds().await?;
            out.push(PerRequest {
                name: subject.name().to_owned(),
                micros: (after - before) * 1e6 / requests.max(1) as f64,
            });
        }
        Ok(out)
    }
}

/// `utime + stime` of `pid` (`None`: this process), in seconds.
fn process_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("unexpected {path}: {stat}"))
}

fn parse_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis (field 3 is index 0).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Redis's own account of its CPU (`INFO cpu`, every thread), in seconds.
async fn redis_seconds(node: &str) -> anyhow::Result<f64> {
    let info = redis_info(node, "cpu").await?;
    parse_info_cpu(&info).with_context(|| format!("unexpected INFO cpu from Redis at {node}"))
}

/// How many times the Redis servers at `urls` (`redis://host:port`) have
/// run `command` (lower case, e.g. `evalsha`), summed (`INFO commandstats`).
pub async fn redis_command_calls(urls: &[String], command: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for url in urls {
        let node = url.trim_start_matches("redis://").trim_end_matches('/');
        let info = redis_info(node, "commandstats").await?;
        total += testkit::redis_cluster::parse_commandstats(&info)
            .into_iter()
            .find_map(|(name, calls)| (name == command).then_some(calls))
            .unwrap_or(0);
    }
    Ok(total)
}

/// `INFO section` from the Redis at `node` (`host:port`), over a plain TCP
/// connection (RESP by hand: the bench has no Redis client).
async fn redis_info(node: &str, section: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(node)
        .await
        .with_context(|| format!("connecting to Redis at {node}"))?;
    s.write_all(format!("INFO {section}\r\n").as_bytes())
        .await?;
    // A bulk string: `$LEN\r\n` then LEN bytes and `\r\n`; a few kB.
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "Redis at {node} closed the connection during INFO");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(total) = bulk_len(&buf)
            && buf.len() >= total
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The full length of a complete RESP bulk string in `buf`, once its header is in.
fn bulk_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(buf.get(1..end)?).ok()?.parse().ok()?;
    Some(end + 2 + len + 2)
}

fn parse_info_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_command_name() {
        let stat =
            "1234 (mcp server) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat), Some(3.25));
    }

    #[test]
    fn info_cpu_sums_sys_and_user() {
        let info = "$120\r\n# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_info_cpu(info), Some(3.75));
        assert_eq!(bulk_len(b"$5\r\nhello\r\n"), Some(11));
        assert_eq!(bulk_len(b"$5"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(process_seconds(None).is_ok_and(|s| s >= 0.0));
    }
}
