//! One running server of a stack: an in-process app (a tokio task with its
//! own stop token) or a child process, stopped on drop either way.

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a graceful stop may take before it counts as failed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The oauth-server of a stack.
pub type OauthServer = Server<oauth_server::state::AppState>;
/// One mcp-server replica of a stack.
pub type Replica = Server<mcp_server::state::AppState>;

/// A running server; `S` is its `AppState` (in-process mode only).
pub struct Server<S> {
    name: &'static str,
    addr: SocketAddr,
    /// The bound metrics listener (in-process mode, when on).
    metrics: Option<SocketAddr>,
    run: Run<S>,
}

enum Run<S> {
    InProcess {
        state: S,
        stop: CancellationToken,
        handle: Mutex<Option<JoinHandle<anyhow::Result<()>>>>,
    },
    Child(Mutex<Option<Child>>),
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("in_process", &matches!(self.run, Run::InProcess { .. }))
            .finish_non_exhaustive()
    }
}

impl<S> Server<S> {
    pub(crate) fn in_process(
        name: &'static str,
        addr: SocketAddr,
        state: S,
        stop: CancellationToken,
        handle: JoinHandle<anyhow::Result<()>>,
    ) -> Self {
        Server {
            name,
            addr,
            metrics: None,
            run: Run::InProcess {
                state,
                stop,
                handle: Mutex::new(Some(handle)),
            },
        }
    }

    pub(crate) fn child(name: &'static str, addr: SocketAddr, child: Child) -> Self {
        Server {
            name,
            addr,
            metrics: None,
            run: Run::Child(Mutex::new(Some(child))),
        }
    }

    /// The address the server itself listens on (behind any front).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Records the bound metrics address (`App::metrics_addr`).
    pub(crate) fn with_metrics_addr(mut self, metrics: Option<SocketAddr>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics listener (`GET /metrics`): in-process servers bind it on
    /// port 0; `None` when off or in child-process mode (off unless the
    /// test's env turns it on).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// `http://ADDR`: the server directly, bypassing any front.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The app's state (in-process mode; `None` for a child process).
    pub fn state(&self) -> Option<&S> {
        match &self.run {
            Run::InProcess { state, .. } => Some(state),
            Run::Child(_) => None,
        }
    }

    /// The child's process id (child-process mode).
    pub fn pid(&self) -> Option<u32> {
        match &self.run {
            Run::InProcess { .. } => None,
            Run::Child(c) => lock(c).as_ref().map(Child::id),
        }
    }

    /// Resident set size of the child in MiB (child-process mode, Linux).
    pub fn rss_mib(&self) -> Option<f64> {
        self.pid().and_then(crate::child::rss_mib)
    }

    /// Stops the server and waits until it is gone: in-process as SIGTERM
    /// would (graceful, at most [`STOP_TIMEOUT`], its result reported); a
    /// child is killed. Stopping twice is a no-op.
    pub async fn stop(&self) -> anyhow::Result<()> {
        match &self.run {
            Run::InProcess { stop, handle, .. } => {
                stop.cancel();
                let Some(handle) = lock(handle).take() else {
                    return Ok(());
                };
                match tokio::time::timeout(STOP_TIMEOUT, handle).await {
                    Ok(Ok(result)) => {
                        result.with_context(|| format!("the {} stopped with an error", self.name))
                    }
                    Ok(Err(e)) => Err(anyhow!("the {} task failed: {e}", self.name)),
                    Err(_) => Err(anyhow!(
                        "the {} ({}) did not finish its graceful shutdown within {STOP_TIMEOUT:?}",
                        self.name,
                        self.addr
                    )),
                }
            }
            Run::Child(child) => {
                if let Some(mut c) = lock(child).take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Ok(())
            }
        }
    }
}

impl<S> Drop for Server<S> {
    fn drop(&mut self) {
        match &self.run {
            Run::InProcess { stop, .. } => stop.cancel(),
            Run::Child(child) => {
                if let Some(mut c) = lock(child).take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

/// A poisoned lock only means another thread panicked mid-stop; the data
/// (an optional handle) is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
