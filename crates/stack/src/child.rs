//! Child-process mode: finding the built server binaries and starting one
//! on a chosen address, ready when its `GET /health` answers 200.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a child gets to answer `GET /health`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The binary `name`: in `dir` when given, else next to the current
/// executable (the bench is a sibling of the servers), in its parent (test
/// executables live in `target/<profile>/deps`), or in
/// `$CARGO_TARGET_DIR/{release,debug}`.
pub fn binary(name: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = dir {
        candidates.push(dir.to_owned());
    } else {
        let exe = std::env::current_exe().context("locating the current executable")?;
        if let Some(here) = exe.parent() {
            candidates.push(here.to_owned());
            if let Some(up) = here.parent() {
                candidates.push(up.to_owned());
            }
        }
        if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
            let target = PathBuf::from(target);
            candidates.push(target.join("release"));
            candidates.push(target.join("debug"));
        }
    }
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    if let Some(path) = candidates
        .iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "{file} not found (looked in {}): build it first, e.g. `cargo build --release --workspace` \
         or `cargo build -p oauth-server -p mcp-server`",
        looked.join(", ")
    )
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChildOutput {
    /// Discarded (what the bench measures: logging costs nothing but the write).
    #[default]
    Null,
    /// `NAME.log` in the stack's folder; its tail is quoted when start-up fails.
    File,
    /// The parent's stdout/stderr.
    Inherit,
}

/// Starts `bin` in `cwd` with only `PATH` and `env` set, and waits until
/// `http://addr/health` answers 200.
pub async fn spawn(
    label: &str,
    bin: &Path,
    cwd: &Path,
    env: &[(String, String)],
    addr: SocketAddr,
    output: ChildOutput,
) -> anyhow::Result<Child> {
    let log = cwd.join(format!("{label}.log"));
    let mut cmd = Command::new(bin);
    // Nothing inherited (no REDIS_URL, no RUST_LOG from the caller's shell),
    // and a folder without .env: only what the stack sets.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd)
        .stdin(Stdio::null());
    match output {
        ChildOutput::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        ChildOutput::Inherit => {}
        ChildOutput::File => {
            let file = std::fs::File::create(&log)
                .with_context(|| format!("creating {}", log.display()))?;
            cmd.stdout(file.try_clone()?).stderr(file);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("HTTP client")?;
    let url = format!("http://{addr}/health");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{label} exited with {status} before it was healthy{}",
                tail(&log)
            );
        }
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{label} did not become healthy on {addr} within {READY_TIMEOUT:?}{}",
                tail(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a child's log, when it was written to a file.
fn tail(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "\n--- {} ---\n{}",
        log.display(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

/// Resident set size of `pid` in MiB (Linux `/proc`).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
