//! A real `nginx` in front of in-process servers, configured from the SAME
//! template docker-compose uses (`nginx/secure-mcp.conf.template`).
//!
//! The template is rendered with a small envsubst ([`render`]) that behaves
//! like the official image's entrypoint (only the given variables are
//! replaced, nginx's own `$variables` are left alone) and additionally
//! refuses a `${NGINX_*}` it was not given, so a renamed variable fails here
//! instead of at `docker-compose up`. The rendered snippet is included from a
//! throw-away `nginx.conf` (single process, logs and temp files in a temp
//! directory) and nginx runs as a child on two free loopback ports until the
//! fixture is dropped.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pki::PkiFiles;
use crate::{free_port, services};

/// Overrides where the fixture looks for the `nginx` binary.
pub const NGINX_BIN_VAR: &str = "NGINX_BIN";

/// The template shared with docker-compose.
pub const TEMPLATE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../nginx/secure-mcp.conf.template"
);

/// Prefix of every template variable.
pub const VAR_PREFIX: &str = "NGINX_";

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

/// A template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// `${NAME}` with the template prefix, but no value was given.
    Unset(String),
    /// A value was given for a name the template does not use.
    Unused(String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset(name) => write!(f, "template variable ${{{name}}} has no value"),
            Self::Unused(name) => write!(f, "{name} is not used by the template"),
        }
    }
}

impl std::error::Error for RenderError {}

/// envsubst: replaces `${NAME}` and `$NAME` for every `NAME` in `vars`
/// (nothing else, like `envsubst "$defined_vars"` in the nginx image).
///
/// Fails on a `${NGINX_*}` reference without a value and on a value the
/// template never uses.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len());
    let mut used = BTreeSet::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, braced) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], true),
                None => ("", true),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], false)
            }
        };
        let is_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let consumed = if braced { name.len() + 2 } else { name.len() };
        match vars.iter().find(|(n, _)| is_name && *n == name) {
            Some((n, value)) => {
                out.push_str(value);
                used.insert(*n);
                rest = &after[consumed..];
            }
            None if braced && is_name && name.starts_with(VAR_PREFIX) => {
                return Err(RenderError::Unset(name.to_owned()));
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if let Some((name, _)) = vars.iter().find(|(n, _)| !used.contains(n)) {
        return Err(RenderError::Unused((*name).to_owned()));
    }
    Ok(out)
}

/// The `${NGINX_*}` names a template uses, sorted.
pub fn template_variables(template: &str) -> BTreeSet<String> {
    template
        .split("${")
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .filter(|name| name.starts_with(VAR_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Reads [`TEMPLATE_PATH`].
///
/// # Panics
///
/// When the file cannot be read.
pub fn template() -> String {
    fs::read_to_string(TEMPLATE_PATH)
        .unwrap_or_else(|e| panic!("testkit: cannot read {TEMPLATE_PATH}: {e}"))
}

/// The servers behind nginx.
#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    pub oauth: SocketAddr,
    pub mcp: [SocketAddr; 2],
}

/// The template's variables for a test: listen on 127.0.0.1 ports, proxy to
/// `upstreams`, serve `tls`.
pub fn test_vars(
    oauth_port: u16,
    mcp_port: u16,
    upstreams: &Upstreams,
    tls: &PkiFiles,
) -> Vec<(&'static str, String)> {
    vec![
        ("NGINX_OAUTH_LISTEN", format!("127.0.0.1:{oauth_port}")),
        ("NGINX_MCP_LISTEN", format!("127.0.0.1:{mcp_port}")),
        ("NGINX_OAUTH_UPSTREAM", upstreams.oauth.to_string()),
        ("NGINX_MCP_UPSTREAM_1", upstreams.mcp[0].to_string()),
        ("NGINX_MCP_UPSTREAM_2", upstreams.mcp[1].to_string()),
        ("NGINX_TLS_CERT", tls.cert.display().to_string()),
        ("NGINX_TLS_KEY", tls.key.display().to_string()),
    ]
}

/// An `nginx` child process serving the rendered template on two free
/// loopback ports (OAuth front, MCP front); killed on drop.
pub struct Nginx {
    oauth_port: u16,
    mcp_port: u16,
    child: Option<Child>,
    // Last, so the directory outlives the process writing into it.
    dir: TempDir,
}

impl fmt::Debug for Nginx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nginx")
            .field("oauth_port", &self.oauth_port)
            .field("mcp_port", &self.mcp_port)
            .finish_non_exhaustive()
    }
}

impl Nginx {
    /// Renders the template for `upstreams` and `tls`, starts nginx and
    /// waits until both fronts accept connections.
    ///
    /// Returns `None` (after a loud `SKIPPED:` line) when nginx is not
    /// installed, unless [`services_required`](crate::services_required).
    ///
    /// # Panics
    ///
    /// When nginx is installed but does not start (the message carries its
    /// error log) or the template does not render.
    pub fn start(upstreams: &Upstreams, tls: &PkiFiles) -> Option<Nginx> {
        let binary = find_nginx()?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-nginx-")
            .tempdir()
            .unwrap_or_else(|e| panic!("testkit: cannot create a temp dir for nginx: {e}"));
        for sub in ["logs", "tmp"] {
            fs::create_dir_all(dir.path().join(sub))
                .unwrap_or_else(|e| panic!("testkit: cannot create nginx {sub} dir: {e}"));
        }
        let template = template();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let (oauth_port, mcp_port) = (free_port(), free_port());
            if oauth_port == mcp_port {
                continue;
            }
            let snippet = render(&template, &test_vars(oauth_port, mcp_port, upstreams, tls))
                .unwrap_or_else(|e| panic!("testkit: {TEMPLATE_PATH}: {e}"));
            let conf = write_config(dir.path(), &snippet);
            match spawn(&binary, dir.path(), &conf, [oauth_port, mcp_port]) {
                Ok(child) => {
                    return Some(Nginx {
                        oauth_port,
                        mcp_port,
                        child: Some(child),
                        dir,
                    });
                }
                Err(e) => failures.push(format!("ports {oauth_port}/{mcp_port}: {e}")),
            }
        }
        panic!(
            "testkit: nginx failed to start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Port of the OAuth front (8443 in docker-compose).
    pub fn oauth_port(&self) -> u16 {
        self.oauth_port
    }

    /// Port of the MCP front (8001 in docker-compose).
    pub fn mcp_port(&self) -> u16 {
        self.mcp_port
    }

    /// `https://localhost:PORT`: the public issuer URL behind this nginx.
    pub fn oauth_url(&self) -> String {
        format!("https://localhost:{}", self.oauth_port)
    }

    /// `https://localhost:PORT/mcp`: the public MCP resource URL.
    pub fn mcp_url(&self) -> String {
        format!("https://localhost:{}/mcp", self.mcp_port)
    }

    /// The rendered template (what `conf.d/secure-mcp.conf` would hold).
    pub fn rendered(&self) -> String {
        fs::read_to_string(self.dir.path().join("secure-mcp.conf")).unwrap_or_default()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The access log so far, one line per request:
    /// `PORT METHOD URI STATUS upstream=ADDR[, ADDR] sid="Mcp-Session-Id as sent"`.
    /// nginx writes a line when the request completes.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// True while nginx runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills nginx (single process, so nothing is left behind). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nginx binary: `NGINX_BIN`, `PATH`, or Debian's `/usr/sbin/nginx`
/// (not on a normal user's `PATH`). `None` after the skip-or-fail rule.
pub fn find_nginx() -> Option<PathBuf> {
    if let Some(path) = services::find_binary("nginx", NGINX_BIN_VAR) {
        return Some(path);
    }
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if std::env::var_os(NGINX_BIN_VAR).is_none() && sbin.is_file() {
        return Some(sbin);
    }
    services::missing(
        "nginx",
        NGINX_BIN_VAR,
        "Debian/Ubuntu: apt-get install nginx",
    )
}

/// The main configuration around the snippet: one process in the
/// foreground, every path inside `dir`.
fn write_config(dir: &Path, snippet: &str) -> PathBuf {
    let d = dir.display();
    fs::write(dir.join("secure-mcp.conf"), snippet)
        .unwrap_or_else(|e| panic!("testkit: cannot write the nginx config: {e}"));
    let main = format!(
        r#"# testkit: throw-away main configuration around nginx/secure-mcp.conf.template
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    log_format secure_mcp_test '$server_port $request_method $uri $status upstream=$upstream_addr sid="$http_mcp_session_id"';
    access_log {d}/logs/access.log secure_mcp_test;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/secure-mcp.conf;
}}
"#
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, main).unwrap_or_else(|e| panic!("testkit: cannot write nginx.conf: {e}"));
    path
}

fn spawn(binary: &Path, dir: &Path, conf: &Path, ports: [u16; 2]) -> Result<Child, String> {
    let error_log = dir.join("logs/error.log");
    let _ = fs::remove_file(&error_log);
    // nginx writes its pid file only after it has bound every listen socket
    // (it retries a busy port for ~2.5 s before giving up), so the file, not
    // an accepted connection, says the ports are nginx's: a port taken by
    // another process between `free_port` and nginx's bind also accepts.
    let pid_file = dir.join("nginx.pid");
    let _ = fs::remove_file(&pid_file);
    let mut child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(&error_log)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot spawn {}: {e}", binary.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "nginx exited with {status}\n--- error.log ---\n{}",
                fs::read_to_string(&error_log).unwrap_or_default()
            ));
        }
        let ours = fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == child.id().to_string());
        let listening = ours
            && ports.iter().all(|p| {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *p));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
        if listening {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "not listening within {READY_TIMEOUT:?}\n--- error.log ---\n{}",
                fs::read_to_string(&error_log).unwrap_or_default()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    }

    #[test]
    fn replaces_only_given_names_and_leaves_nginx_variables() {
        let t =
            "listen ${NGINX_A} ssl; proxy_set_header Host $host:$server_port; x $NGINX_A; ${host}";
        let out = render(t, &vars(&[("NGINX_A", "8443")])).unwrap();
        assert_eq!(
            out,
            "listen 8443 ssl; proxy_set_header Host $host:$server_port; x 8443; ${host}"
        );
    }

    #[test]
    fn refuses_unset_and_unused_variables() {
        assert_eq!(
            render("listen ${NGINX_B};", &[]),
            Err(RenderError::Unset("NGINX_B".into()))
        );
        assert_eq!(
            render("listen 1;", &vars(&[("NGINX_C", "x")])),
            Err(RenderError::Unused("NGINX_C".into()))
        );
        // A lone or trailing `$` is text.
        assert_eq!(render("a $ b $", &[]).unwrap(), "a $ b $");
    }

    #[test]
    fn lists_template_variables() {
        let names = template_variables("${NGINX_A} ${NGINX_B} ${host} ${NGINX_A}");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["NGINX_A", "NGINX_B"]
        );
    }

    #[test]
    fn the_shared_template_renders_with_the_test_variables() {
        let up = Upstreams {
            oauth: SocketAddr::from(([127, 0, 0, 1], 1)),
            mcp: [
                SocketAddr::from(([127, 0, 0, 1], 2)),
                SocketAddr::from(([127, 0, 0, 1], 3)),
            ],
        };
        let tls = PkiFiles {
            ca: "/x/ca.pem".into(),
            cert: "/x/server.pem".into(),
            key: "/x/server-key.pem".into(),
        };
        let out = render(&template(), &test_vars(10, 11, &up, &tls)).unwrap();
        assert!(out.contains("listen 127.0.0.1:10 ssl"));
        assert!(out.contains("server 127.0.0.1:3 backup;"));
        assert!(!out.contains("${"), "unrendered variable left in:\n{out}");
    }
}
