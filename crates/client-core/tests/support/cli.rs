//! Running a client binary as a user would: a clean environment, a fresh
//! working directory (so no stray `.env`), stdin optional, bounded in time.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout lines parsed as JSON (for `--json`).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Runs `bin args…` with only `vars` (plus PATH) in its environment. Logins
/// go to a file in the working directory unless `vars` say otherwise, so no
/// run sees the machine's keyring or another run's login.
pub async fn run(bin: &str, args: &[&str], vars: &[(String, String)], stdin: Option<&str>) -> Run {
    let cwd = tempfile::tempdir().unwrap();
    run_in(cwd.path(), bin, args, vars, stdin).await
}

/// Like [`run`] in the working directory `cwd`.
pub async fn run_in(
    cwd: &std::path::Path,
    bin: &str,
    args: &[&str],
    vars: &[(String, String)],
    stdin: Option<&str>,
) -> Run {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OAUTH_TOKEN_STORE", "file")
        .env("OAUTH_TOKEN_STORE_FILE", cwd.join("logins.json"))
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the client did not finish within 90 s")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
