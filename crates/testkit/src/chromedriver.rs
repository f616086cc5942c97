//! A real `chromedriver` (Debian's `chromium-driver`) driving headless
//! `chromium`, for browser tests over WebDriver.
//!
//! The fixture only starts the driver and says how to launch the browser
//! ([`ChromeDriver::capabilities`]); the test brings its own WebDriver client
//! (`fantoccini`), so testkit stays free of one.
//!
//! chromedriver starts one browser per session, and a browser outlives a
//! killed driver. The driver therefore runs in its own process group and
//! the whole group is killed on drop, so a test that panics before closing
//! its session leaves no Chromium behind; browser profiles live in the
//! fixture's temporary directory for the same reason.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use std::{fmt, fs};

use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::{free_port, services};

/// Overrides where the fixture looks for the `chromedriver` binary.
pub const CHROMEDRIVER_BIN_VAR: &str = "CHROMEDRIVER_BIN";
/// Overrides where the fixture looks for the `chromium` binary.
pub const CHROMIUM_BIN_VAR: &str = "CHROMIUM_BIN";

const INSTALL_HINT: &str = "Debian/Ubuntu: apt-get install chromium chromium-driver";
/// chromedriver answers `/status` within a second or two; a loaded CI box
/// shared with a build may need more.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 5;

/// How a browser session launched through [`ChromeDriver::capabilities`]
/// behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Browser {
    /// Whether pages may run JavaScript. `false` sets Chrome's managed
    /// content setting (`profile.managed_default_content_settings.javascript
    /// = 2`), which blocks every page script as a locked-down browser would;
    /// WebDriver commands still work.
    pub javascript: bool,
}

impl Default for Browser {
    fn default() -> Self {
        Browser { javascript: true }
    }
}

/// A `chromedriver` owned by one test on a free loopback port (it accepts
/// local connections only), killed with every browser it started on drop.
pub struct ChromeDriver {
    port: u16,
    browser: PathBuf,
    child: Child,
    profiles: AtomicUsize,
    // Declared last so the directory outlives the processes writing into it.
    dir: TempDir,
}

impl fmt::Debug for ChromeDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChromeDriver")
            .field("port", &self.port)
            .field("browser", &self.browser)
            .finish_non_exhaustive()
    }
}

impl ChromeDriver {
    /// Starts `chromedriver` and waits until `GET /status` reports it ready.
    ///
    /// Returns `None` (after a loud `SKIPPED:` line on stderr) when
    /// `chromedriver` or `chromium` is not installed, unless
    /// [`services_required`](crate::services_required), which panics instead.
    ///
    /// # Panics
    ///
    /// When the binaries exist but no driver could be started: a broken
    /// environment, never a reason to skip. The message carries its log.
    pub fn start() -> Option<ChromeDriver> {
        let Some(driver) = services::find_binary("chromedriver", CHROMEDRIVER_BIN_VAR) else {
            return services::missing("chromedriver", CHROMEDRIVER_BIN_VAR, INSTALL_HINT);
        };
        let Some(browser) = services::find_binary("chromium", CHROMIUM_BIN_VAR) else {
            return services::missing("chromium", CHROMIUM_BIN_VAR, INSTALL_HINT);
        };
        let dir = tempfile::Builder::new()
            .prefix("testkit-chromedriver-")
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create a temp dir for chromedriver: {e}"));
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match spawn_on(&driver, port, dir.path()) {
                Ok(child) => {
                    return Some(ChromeDriver {
                        port,
                        browser,
                        child,
                        profiles: AtomicUsize::new(0),
                        dir,
                    });
                }
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!(
            "testkit: chromedriver failed to start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// The WebDriver endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `chromium` binary sessions launch.
    pub fn browser_binary(&self) -> &Path {
        &self.browser
    }

    /// W3C capabilities for a new session: headless Chromium
    /// (`--headless=new`), `--no-sandbox` (CI runs as root, where Chrome's
    /// sandbox cannot start), no GPU, a fresh profile in the fixture's
    /// directory (no cookies or remembered consent from an earlier
    /// session), and JavaScript on or off per `browser`.
    pub fn capabilities(&self, browser: Browser) -> Map<String, Value> {
        let n = self.profiles.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.path().join(format!("profile-{n}"));
        let mut options = json!({
            "binary": self.browser.display().to_string(),
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                // Containers often mount a small /dev/shm; Chrome then crashes on big pages.
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if !browser.javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        caps
    }

    /// The last lines of chromedriver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("chromedriver.log"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Starts chromedriver on `port` in a new process group and waits until it
/// reports ready.
fn spawn_on(driver: &Path, port: u16, dir: &Path) -> Result<Child, String> {
    let log = dir.join("chromedriver.log");
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot spawn {}: {e}", driver.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = String::from("never answered");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "chromedriver exited early with {status}\n--- log ---\n{}",
                log_tail(&log)
            ));
        }
        match ready(port) {
            Ok(true) => return Ok(child),
            Ok(false) => last_error = "/status says not ready".to_owned(),
            Err(e) => last_error = e,
        }
        thread::sleep(Duration::from_millis(50));
    }
    kill_group(&mut child);
    Err(format!(
        "no ready answer on port {port} within {READY_TIMEOUT:?}: {last_error}\n--- log ---\n{}",
        log_tail(&log)
    ))
}

/// `GET /status` over plain HTTP/1.1: `value.ready`.
fn ready(port: u16) -> Result<bool, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    let io_timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(io_timeout)
        .and_then(|()| stream.set_write_timeout(io_timeout))
        .map_err(|e| format!("socket options: {e}"))?;
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    // chromedriver says `Connection: close` but keeps the socket open:
    // read exactly Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut length = None;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or("no Content-Length in the /status answer")?;
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    let body = String::from_utf8_lossy(&body);
    let status: Value =
        serde_json::from_str(&body).map_err(|e| format!("/status is not JSON ({e}): {body:?}"))?;
    Ok(status["value"]["ready"] == json!(true))
}

/// SIGKILL to the driver's process group (the driver and every browser it
/// started), then reaps the driver.
fn kill_group(child: &mut Child) {
    // Each may fail only because the processes are already gone.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
