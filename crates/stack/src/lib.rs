//! The one way to start the whole stack: an oauth-server, N mcp-server
//! replicas, optionally a Redis they share and nginx with TLS in front —
//! used by `quickstart`, every crate's integration tests, the end-to-end
//! tests (`tests/e2e`) and the bench.
//!
//! # Layout
//!
//! - this file: [`Stack::builder`] ([`StackBuilder`], every option) and
//!   [`Stack`] (the running stack, its URLs, servers and helpers).
//! - [`server`]: [`Server`], one running oauth-server ([`OauthServer`]) or
//!   mcp-server replica ([`Replica`]), in-process or a child process.
//! - [`registry`]: the client registry the oauth-server loads: a copy of
//!   `config/clients.toml` (the dev clients may also get tokens for the
//!   stack's resource URIs) plus the caller's extra [`Client`]s; and a copy
//!   of `config/users.toml` (alice and bob) as its users file.
//! - [`child`]: finding the built binaries and starting one on a free port.
//! - [`signin`]: a person at the `/authorize` pages without a browser (PKCE,
//!   login and consent forms, the redirect with the code).
//!
//! Fixtures come from `testkit`: [`testkit::RedisServer`] (a real
//! `redis-server`), [`testkit::Nginx`] (a real nginx rendered from
//! `nginx/secure-mcp.conf.template`, the template docker-compose uses) and
//! [`testkit::TestPki`] (the test CA).
//!
//! # Two modes
//!
//! - **In-process** ([`Mode::InProcess`], the default): each server is built
//!   with `App::build_with_listener` on a listener bound to `127.0.0.1:0` and
//!   runs as a task on the caller's tokio runtime. Tests read each app's
//!   `AppState` ([`Server::state`]: audit ring, keys) and override any field
//!   of the two `Config`s ([`StackBuilder::oauth_config`],
//!   [`StackBuilder::mcp_config`]). Dropping the [`Stack`] cancels every
//!   server's token; [`Stack::stop`] stops them gracefully and reports how.
//! - **Child processes** ([`Mode::ChildProcesses`]): the real `oauth-server`
//!   and `mcp-server` binaries (found next to the current executable, its
//!   parent folder, or `$CARGO_TARGET_DIR`), configured through their
//!   environment variables on free ports, ready when `GET /health` answers,
//!   killed on drop. What the bench measures (and their RSS,
//!   [`Server::rss_mib`]). Overrides are environment variables
//!   ([`StackBuilder::oauth_env`], [`StackBuilder::mcp_env`]).
//!
//! The order of start-up is the same in both: Redis → listeners (or free
//! ports) → nginx (it needs the upstream addresses; the servers need its
//! public ports for their URLs) → registry → oauth-server → replicas, which
//! fetch keys from the oauth-server directly (`OAUTH_JWKS_URL`, the internal
//! network of docker-compose).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let stack = stack::Stack::builder()
//!     .redis(stack::Redis::Start)
//!     .nginx()
//!     .client(stack::Client::with_secret("e2e", "e2e-secret").allowed_scopes(&["customer:read"]))
//!     .start()
//!     .await?;
//! let token = stack.token(("e2e", "e2e-secret"), None, None).await?;
//! let resp = stack.http().post(stack.mcp_url()).bearer_auth(token).send().await?;
//! # drop(resp);
//! # Ok(())
//! # }
//! ```
//!
//! A missing `redis-server` or `nginx` makes [`StackBuilder::start`] fail
//! with [`MissingService`] after testkit's loud `SKIPPED:` line (or panics
//! when `SECURE_MCP_REQUIRE_SERVICES=1`); tests use
//! [`StackBuilder::start_or_skip`], which returns `None` then.

pub mod child;
pub mod registry;
pub mod server;
pub mod signin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tempfile::TempDir;
use testkit::pki::PkiFiles;
use testkit::{Nginx, RedisServer, TestPki};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::keys::Algorithm;
pub use child::ChildOutput;
pub use registry::{ALICE, ANTHROPIC_CLIENT, BOB, Client, OPENAI_CLIENT, SECURE_CLIENT};
pub use server::{OauthServer, Replica, STOP_TIMEOUT, Server};

/// nginx connects to the servers from here; with nginx in front, only it may
/// set `X-Forwarded-For` (`TRUSTED_PROXIES`).
pub const NGINX_ADDR: &str = "127.0.0.1/32";

/// A service binary the stack needs is not installed (testkit printed a loud
/// `SKIPPED:` line).
#[derive(Debug, thiserror::Error)]
#[error("{0} is not installed; the stack was not started")]
pub struct MissingService(pub &'static str);

/// Which Redis the servers share.
#[derive(Debug, Clone, Default)]
pub enum Redis {
    /// None: in-memory stores and limiters.
    #[default]
    None,
    /// A fresh `redis-server` on a free port, owned by the stack.
    Start,
    /// This URL (e.g. a `testkit::RedisServer` the test stops and restarts).
    Url(String),
    /// A Redis Cluster reached through these seed nodes
    /// (`REDIS_CLUSTER_NODES`; e.g. a `testkit::RedisCluster` whose nodes
    /// the test kills).
    Cluster(Vec<String>),
}

/// In-process apps or child processes (see the crate docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    InProcess,
    ChildProcesses,
}

/// What a [`Front`] is handed: its public listener, the server behind it
/// (`http://ADDR`) and the stack's stop token.
#[derive(Debug)]
pub struct FrontListener {
    pub listener: TcpListener,
    pub upstream: String,
    pub stop: CancellationToken,
}

type FrontFn = Box<dyn FnOnce(FrontListener) + Send>;

/// A proxy the caller runs in front of a server (e.g. a fault-injecting or
/// TLS-terminating test proxy): the stack binds its listener, puts its URL
/// in the server's public URLs, and hands it over once the server runs.
pub struct Front {
    https: bool,
    spawn: FrontFn,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl Front {
    /// A plain-HTTP front at `http://127.0.0.1:PORT`.
    pub fn http(spawn: impl FnOnce(FrontListener) + Send + 'static) -> Front {
        Front {
            https: false,
            spawn: Box::new(spawn),
        }
    }

    /// A TLS front at `https://localhost:PORT`.
    pub fn https(spawn: impl FnOnce(FrontListener) + Send + 'static) -> Front {
        Front {
            https: true,
            spawn: Box::new(spawn),
        }
    }

    fn url(&self, port: u16) -> String {
        if self.https {
            format!("https://localhost:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        }
    }
}

type OauthOverride = Box<dyn FnOnce(&mut oauth_server::Config) + Send>;
type McpOverride = Box<dyn Fn(&mut mcp_server::Config) + Send + Sync>;

/// Options of a [`Stack`]; [`start`](Self::start) runs it.
pub struct StackBuilder {
    mode: Mode,
    redis: Redis,
    replicas: Option<usize>,
    nginx: bool,
    pki: Option<PkiFiles>,
    alg: Option<Algorithm>,
    dev_clients: bool,
    clients: Vec<Client>,
    resource: Option<String>,
    oauth_port: Option<u16>,
    keys_dir: Option<PathBuf>,
    oauth_config: Option<OauthOverride>,
    mcp_config: Option<McpOverride>,
    oauth_env: Vec<(String, String)>,
    mcp_env: Vec<(String, String)>,
    oauth_front: Option<Front>,
    mcp_front: Option<Front>,
    binaries: Option<PathBuf>,
    child_output: ChildOutput,
}

impl std::fmt::Debug for StackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackBuilder")
            .field("mode", &self.mode)
            .field("redis", &self.redis)
            .field("replicas", &self.replicas)
            .field("nginx", &self.nginx)
            .finish_non_exhaustive()
    }
}

impl StackBuilder {
    fn new() -> Self {
        StackBuilder {
            mode: Mode::InProcess,
            redis: Redis::None,
            replicas: None,
            nginx: false,
            pki: None,
            alg: None,
            dev_clients: true,
            clients: Vec::new(),
            resource: None,
            oauth_port: None,
            keys_dir: None,
            oauth_config: None,
            mcp_config: None,
            oauth_env: Vec::new(),
            mcp_env: Vec::new(),
            oauth_front: None,
            mcp_front: None,
            binaries: None,
            child_output: ChildOutput::Null,
        }
    }

    /// In-process (default) or child processes.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Shorthand for `mode(Mode::ChildProcesses)`.
    pub fn child_processes(self) -> Self {
        self.mode(Mode::ChildProcesses)
    }

    /// Which Redis both servers use (default: none, in-memory stores).
    pub fn redis(mut self, redis: Redis) -> Self {
        self.redis = redis;
        self
    }

    /// Number of mcp-server replicas (default 1; 2 with nginx, whose
    /// template has two MCP upstreams). 0 starts only the oauth-server.
    pub fn mcp_replicas(mut self, n: usize) -> Self {
        self.replicas = Some(n);
        self
    }

    /// nginx with TLS in front (issuer `https://localhost:PORT`, resource
    /// `https://localhost:PORT/mcp`), a fresh test CA unless
    /// [`certs`](Self::certs) are given; the servers trust `X-Forwarded-For`
    /// from [`NGINX_ADDR`] only.
    pub fn nginx(mut self) -> Self {
        self.nginx = true;
        self
    }

    /// nginx's certificate and the CA clients trust (default: a fresh
    /// [`TestPki`]).
    pub fn certs(mut self, pki: PkiFiles) -> Self {
        self.pki = Some(pki);
        self
    }

    /// The oauth-server's signing algorithm (default: its own, RS256).
    pub fn signing_alg(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// Leave the dev clients of `config/clients.toml` out of the registry.
    pub fn without_dev_clients(mut self) -> Self {
        self.dev_clients = false;
        self
    }

    /// Adds a client to the registry.
    pub fn client(mut self, client: Client) -> Self {
        self.clients.push(client);
        self
    }

    /// Adds clients to the registry.
    pub fn clients(mut self, clients: impl IntoIterator<Item = Client>) -> Self {
        self.clients.extend(clients);
        self
    }

    /// The mcp-server's canonical resource URI (its `aud`), when it is not
    /// the URL clients use (default: [`Stack::mcp_url`]).
    pub fn resource(mut self, uri: &str) -> Self {
        self.resource = Some(uri.to_owned());
        self
    }

    /// The oauth-server's port (default: a free one), to start "the same"
    /// server again after a stop.
    pub fn oauth_port(mut self, port: u16) -> Self {
        self.oauth_port = Some(port);
        self
    }

    /// The oauth-server's key folder (default: `keys/` in the stack's
    /// temporary folder).
    pub fn keys_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.keys_dir = Some(dir.into());
        self
    }

    /// Adjusts the oauth-server's `Config` after the stack filled it in
    /// (in-process mode).
    pub fn oauth_config(
        mut self,
        f: impl FnOnce(&mut oauth_server::Config) + Send + 'static,
    ) -> Self {
        self.oauth_config = Some(Box::new(f));
        self
    }

    /// Adjusts each replica's `Config` after the stack filled it in
    /// (in-process mode).
    pub fn mcp_config(
        mut self,
        f: impl Fn(&mut mcp_server::Config) + Send + Sync + 'static,
    ) -> Self {
        self.mcp_config = Some(Box::new(f));
        self
    }

    /// An environment variable for the oauth-server child (child-process mode).
    pub fn oauth_env(mut self, name: &str, value: &str) -> Self {
        self.oauth_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// An environment variable for every mcp-server child (child-process mode).
    pub fn mcp_env(mut self, name: &str, value: &str) -> Self {
        self.mcp_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A proxy in front of the oauth-server: the issuer becomes its URL.
    pub fn oauth_front(mut self, front: Front) -> Self {
        self.oauth_front = Some(front);
        self
    }

    /// A proxy in front of replica 0: [`Stack::mcp_url`] becomes its URL.
    pub fn mcp_front(mut self, front: Front) -> Self {
        self.mcp_front = Some(front);
        self
    }

    /// Where the server binaries are (child-process mode; default: see
    /// [`child::binary`]).
    pub fn binaries_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.binaries = Some(dir.into());
        self
    }

    /// Where the children's output goes (default: discarded).
    pub fn child_output(mut self, output: ChildOutput) -> Self {
        self.child_output = output;
        self
    }

    /// Starts the stack; `None` when a service binary is missing (after
    /// testkit's loud `SKIPPED:` line).
    ///
    /// # Panics
    ///
    /// On any other start-up failure (for tests: a failed start is a failed
    /// test).
    pub async fn start_or_skip(self) -> Option<Stack> {
        match self.start().await {
            Ok(stack) => Some(stack),
            Err(e) if e.is::<MissingService>() => None,
            Err(e) => panic!("stack: {e:#}"),
        }
    }

    /// Starts the stack (see the crate docs for the order).
    pub async fn start(self) -> anyhow::Result<Stack> {
        let in_process = self.mode == Mode::InProcess;
        if !in_process && (self.oauth_config.is_some() || self.mcp_config.is_some()) {
            bail!(
                "Config overrides need in-process mode; use oauth_env/mcp_env for child processes"
            );
        }
        if in_process && !(self.oauth_env.is_empty() && self.mcp_env.is_empty()) {
            bail!(
                "environment overrides need child-process mode; use oauth_config/mcp_config in-process"
            );
        }
        let replicas = self.replicas.unwrap_or(if self.nginx { 2 } else { 1 });
        if self.nginx && replicas != 2 {
            bail!(
                "nginx/secure-mcp.conf.template has two MCP upstreams: start 2 replicas, not {replicas}"
            );
        }
        if replicas == 0 && self.mcp_front.is_some() {
            bail!("an MCP front needs at least one replica");
        }
        let dir = tempfile::Builder::new()
            .prefix("secure-mcp-stack-")
            .tempdir()
            .context("temporary folder")?;

        let (redis, redis_url) = match &self.redis {
            Redis::None | Redis::Cluster(_) => (None, None),
            Redis::Url(url) => (None, Some(url.clone())),
            Redis::Start => {
                let server = RedisServer::start().ok_or(MissingService("redis-server"))?;
                let url = server.url();
                (Some(server), Some(url))
            }
        };
        let cluster_nodes = match &self.redis {
            Redis::Cluster(nodes) => nodes.clone(),
            _ => Vec::new(),
        };
        let redis_env = RedisEnv {
            url: redis_url.as_deref(),
            cluster_nodes: &cluster_nodes,
        };

        // Addresses first: nginx needs the upstreams, the servers need
        // nginx's (public) ports for their URLs.
        let oauth_bind = Bind::new(in_process, self.oauth_port).await?;
        let mut mcp_binds = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            mcp_binds.push(Bind::new(in_process, None).await?);
        }
        if !in_process {
            let mut ports: Vec<u16> = mcp_binds.iter().map(|b| b.addr.port()).collect();
            ports.push(oauth_bind.addr.port());
            ports.sort_unstable();
            ports.dedup();
            if ports.len() != replicas + 1 {
                bail!("free_port returned the same port twice; start again");
            }
        }
        let oauth_addr = oauth_bind.addr;
        let oauth_front = match self.oauth_front {
            Some(front) => Some((front, bind_loopback().await?)),
            None => None,
        };
        let mcp_front = match self.mcp_front {
            Some(front) => Some((front, bind_loopback().await?)),
            None => None,
        };

        let (nginx, pki) = if self.nginx {
            let pki = match self.pki {
                Some(pki) => pki,
                None => TestPki::generate().write_to(dir.path()),
            };
            let upstreams = testkit::nginx::Upstreams {
                oauth: oauth_addr,
                mcp: [mcp_binds[0].addr, mcp_binds[1].addr],
            };
            let nginx = Nginx::start(&upstreams, &pki).ok_or(MissingService("nginx"))?;
            (Some(nginx), Some(pki))
        } else {
            (None, self.pki)
        };

        let issuer = match (&nginx, &oauth_front) {
            (Some(n), _) => n.oauth_url(),
            (None, Some((front, l))) => front.url(l.local_addr()?.port()),
            (None, None) => format!("http://{oauth_addr}"),
        };
        let mcp_url = match (&nginx, &mcp_front, mcp_binds.first()) {
            (Some(n), _, _) => Some(n.mcp_url()),
            (None, Some((front, l)), _) => {
                Some(format!("{}/mcp", front.url(l.local_addr()?.port())))
            }
            (None, None, Some(b)) => Some(format!("http://{}/mcp", b.addr)),
            (None, None, None) => None,
        };
        let resource = self.resource.clone().or_else(|| mcp_url.clone());
        let mut resources: Vec<String> = mcp_url.iter().chain(resource.iter()).cloned().collect();
        resources.dedup();

        let clients_file = dir.path().join("clients.toml");
        std::fs::write(
            &clients_file,
            registry::render(self.dev_clients, &resources, &self.clients),
        )
        .context("writing the client registry")?;
        let users_file = dir.path().join("users.toml");
        std::fs::write(&users_file, registry::DEV_USERS).context("writing the users file")?;
        let keys_dir = self.keys_dir.unwrap_or_else(|| dir.path().join("keys"));
        let trusted = nginx.is_some().then_some(NGINX_ADDR);
        let stop = CancellationToken::new();
        let jwks_url = format!("http://{oauth_addr}/jwks");

        let oauth = if in_process {
            let mut config =
                oauth_server::Config::with_paths(&issuer, keys_dir.clone(), clients_file.clone())?;
            if !resources.is_empty() {
                config.resources = resources.clone();
            }
            config.users_file = users_file.clone();
            config.users_file_required = true;
            if let Some(alg) = self.alg {
                config.signing_alg = alg;
            }
            config.redis_url = redis_url.clone().map(Into::into);
            config.redis_cluster_nodes = cluster_nodes.iter().cloned().map(Into::into).collect();
            if let Some(t) = trusted {
                config.rate_limit.trusted_proxies = ratelimit::TrustedProxies::parse(t)
                    .map_err(|e| anyhow!("TRUSTED_PROXIES: {e}"))?;
            }
            if let Some(f) = self.oauth_config {
                f(&mut config);
            }
            let app = oauth_server::App::build_with_listener(config, oauth_bind.into_listener()?)
                .await
                .context("starting the oauth-server")?;
            let state = app.state().clone();
            let token = CancellationToken::new();
            let metrics = app.metrics_addr();
            let handle = tokio::spawn(app.run_until(token.clone().cancelled_owned()));
            Server::in_process("oauth-server", oauth_addr, state, token, handle)
                .with_metrics_addr(metrics)
        } else {
            let mut env = vec![
                ("OAUTH_BIND".to_owned(), oauth_addr.to_string()),
                // Child stacks run side by side: no fixed metrics port.
                ("OAUTH_METRICS_BIND".to_owned(), String::new()),
                ("OAUTH_ISSUER".to_owned(), issuer.clone()),
                ("OAUTH_KEYS_DIR".to_owned(), keys_dir.display().to_string()),
                (
                    "OAUTH_CLIENTS_FILE".to_owned(),
                    clients_file.display().to_string(),
                ),
                (
                    "OAUTH_USERS_FILE".to_owned(),
                    users_file.display().to_string(),
                ),
            ];
            if !resources.is_empty() {
                env.push(("OAUTH_RESOURCES".to_owned(), resources.join(",")));
            }
            if let Some(alg) = self.alg {
                env.push(("OAUTH_SIGNING_ALG".to_owned(), alg.as_str().to_owned()));
            }
            shared_env(&mut env, &redis_env, trusted);
            env.extend(self.oauth_env.iter().cloned());
            let bin = child::binary("oauth-server", self.binaries.as_deref())?;
            let child = child::spawn(
                "oauth-server",
                &bin,
                dir.path(),
                &env,
                oauth_addr,
                self.child_output,
            )
            .await?;
            Server::child("oauth-server", oauth_addr, child)
        };
        if let Some((front, listener)) = oauth_front {
            (front.spawn)(FrontListener {
                listener,
                upstream: format!("http://{oauth_addr}"),
                stop: stop.clone(),
            });
        }

        let mut servers = Vec::with_capacity(replicas);
        let mcp_bin = if in_process || replicas == 0 {
            None
        } else {
            Some(child::binary("mcp-server", self.binaries.as_deref())?)
        };
        if let Some(resource) = &resource {
            for (i, bind) in mcp_binds.into_iter().enumerate() {
                let addr = bind.addr;
                let server = match &mcp_bin {
                    None => {
                        let mut config = mcp_server::Config::new(resource, &issuer)?;
                        config.jwks_url = Some(jwks_url.clone());
                        config.redis_url = redis_url.clone().map(Into::into);
                        config.redis_cluster_nodes =
                            cluster_nodes.iter().cloned().map(Into::into).collect();
                        if let Some(t) = trusted {
                            config.rate_limit.trusted_proxies = ratelimit::TrustedProxies::parse(t)
                                .map_err(|e| anyhow!("TRUSTED_PROXIES: {e}"))?;
                        }
                        if let Some(f) = &self.mcp_config {
                            f(&mut config);
                        }
                        let app =
                            mcp_server::App::build_with_listener(config, bind.into_listener()?)
                                .await
                                .with_context(|| format!("starting mcp-server replica {i}"))?;
                        let state = app.state().clone();
                        let token = app.shutdown_token();
                        let metrics = app.metrics_addr();
                        let handle = tokio::spawn(app.run_until_stopped());
                        Server::in_process("mcp-server", addr, state, token, handle)
                            .with_metrics_addr(metrics)
                    }
                    Some(bin) => {
                        let mut env = vec![
                            ("MCP_BIND".to_owned(), addr.to_string()),
                            ("MCP_RESOURCE_URL".to_owned(), resource.clone()),
                            ("OAUTH_ISSUER".to_owned(), issuer.clone()),
                            ("OAUTH_JWKS_URL".to_owned(), jwks_url.clone()),
                            // Off: replicas and parallel tests would all
                            // bind the default 9102 (mcp_env may turn it on).
                            ("MCP_METRICS_BIND".to_owned(), String::new()),
                        ];
                        shared_env(&mut env, &redis_env, trusted);
                        env.extend(self.mcp_env.iter().cloned());
                        let child = child::spawn(
                            &format!("mcp-server-{i}"),
                            bin,
                            dir.path(),
                            &env,
                            addr,
                            self.child_output,
                        )
                        .await?;
                        Server::child("mcp-server", addr, child)
                    }
                };
                servers.push(server);
            }
        }
        if let (Some((front, listener)), Some(first)) = (mcp_front, servers.first()) {
            (front.spawn)(FrontListener {
                listener,
                upstream: first.base_url(),
                stop: stop.clone(),
            });
        }

        let http = http_builder(pki.as_ref())?.build().context("HTTP client")?;
        Ok(Stack {
            nginx,
            replicas: servers,
            oauth,
            redis,
            issuer,
            resource,
            mcp_url,
            resources,
            redis_url,
            pki,
            keys_dir,
            clients_file,
            http,
            stop,
            dir,
        })
    }
}

/// The Redis both servers use, as their variables.
struct RedisEnv<'a> {
    url: Option<&'a str>,
    cluster_nodes: &'a [String],
}

/// Variables both server binaries read the same way.
fn shared_env(env: &mut Vec<(String, String)>, redis: &RedisEnv<'_>, trusted: Option<&str>) {
    if let Some(url) = redis.url {
        env.push(("REDIS_URL".to_owned(), url.to_owned()));
    }
    if !redis.cluster_nodes.is_empty() {
        env.push((
            "REDIS_CLUSTER_NODES".to_owned(),
            redis.cluster_nodes.join(","),
        ));
    }
    if let Some(t) = trusted {
        env.push(("TRUSTED_PROXIES".to_owned(), t.to_owned()));
    }
}

/// A server's address: a bound listener (in-process) or a free port (a
/// child binds it itself).
struct Bind {
    addr: SocketAddr,
    listener: Option<TcpListener>,
}

impl Bind {
    async fn new(in_process: bool, port: Option<u16>) -> anyhow::Result<Bind> {
        if in_process {
            let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
                .await
                .with_context(|| format!("binding 127.0.0.1:{}", port.unwrap_or(0)))?;
            Ok(Bind {
                addr: listener.local_addr()?,
                listener: Some(listener),
            })
        } else {
            let port = port.unwrap_or_else(testkit::free_port);
            Ok(Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                listener: None,
            })
        }
    }

    fn into_listener(self) -> anyhow::Result<TcpListener> {
        self.listener
            .ok_or_else(|| anyhow!("no listener bound for {}", self.addr))
    }
}

async fn bind_loopback() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")
}

/// An HTTP client for the stack: with TLS in front it trusts only the
/// test CA and reaches `localhost` on 127.0.0.1 (nginx listens there only).
fn http_builder(pki: Option<&PkiFiles>) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(20));
    if let Some(pki) = pki {
        let pem =
            std::fs::read(&pki.ca).with_context(|| format!("reading {}", pki.ca.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem).context("the test CA")?;
        builder = builder
            .tls_certs_only([ca])
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    Ok(builder)
}

/// A running stack; everything stops on drop.
pub struct Stack {
    // Dropped in this order: nginx first, so no request reaches a stopped
    // upstream; the folder last, so it outlives every process writing to it.
    nginx: Option<Nginx>,
    replicas: Vec<Replica>,
    oauth: OauthServer,
    redis: Option<RedisServer>,
    issuer: String,
    resource: Option<String>,
    mcp_url: Option<String>,
    resources: Vec<String>,
    redis_url: Option<String>,
    pki: Option<PkiFiles>,
    keys_dir: PathBuf,
    clients_file: PathBuf,
    http: reqwest::Client,
    stop: CancellationToken,
    dir: TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("issuer", &self.issuer)
            .field("mcp_url", &self.mcp_url)
            .field("resource", &self.resource)
            .field("oauth", &self.oauth)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Stack {
    /// Every option, with defaults: in-process, one replica, no Redis, no
    /// nginx, the dev clients.
    pub fn builder() -> StackBuilder {
        StackBuilder::new()
    }

    /// The issuer (`iss`): nginx's or the oauth front's URL, else
    /// `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `{issuer}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// Where clients send MCP requests: nginx's or the MCP front's URL, else
    /// replica 0's; empty without replicas.
    pub fn mcp_url(&self) -> &str {
        self.mcp_url.as_deref().unwrap_or_default()
    }

    /// The mcp-server's canonical resource URI (the tokens' `aud`); the
    /// same as [`mcp_url`](Self::mcp_url) unless the builder set one.
    pub fn resource(&self) -> &str {
        self.resource.as_deref().unwrap_or_default()
    }

    /// The resource URIs the oauth-server issues tokens for
    /// ([`mcp_url`](Self::mcp_url) and [`resource`](Self::resource)).
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The oauth-server.
    pub fn oauth(&self) -> &OauthServer {
        &self.oauth
    }

    /// The oauth-server's state (in-process mode).
    pub fn oauth_state(&self) -> Option<&oauth_server::state::AppState> {
        self.oauth.state()
    }

    /// The mcp-server replicas.
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Replica `i`, if there is one.
    pub fn replica(&self, i: usize) -> Option<&Replica> {
        self.replicas.get(i)
    }

    /// `http://127.0.0.1:PORT/mcp` of replica `i`, bypassing any front.
    pub fn replica_url(&self, i: usize) -> Option<String> {
        self.replicas
            .get(i)
            .map(|r| format!("{}/mcp", r.base_url()))
    }

    /// Replica 0's state (in-process mode).
    pub fn mcp_state(&self) -> Option<&mcp_server::state::AppState> {
        self.replicas.first().and_then(Server::state)
    }

    /// nginx, when in front.
    pub fn nginx(&self) -> Option<&Nginx> {
        self.nginx.as_ref()
    }

    /// The Redis the stack started ([`Redis::Start`]), e.g. to stop it.
    pub fn redis_server(&mut self) -> Option<&mut RedisServer> {
        self.redis.as_mut()
    }

    /// The Redis URL both servers use.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// nginx's certificate files and the CA (with nginx or given certs).
    pub fn pki(&self) -> Option<&PkiFiles> {
        self.pki.as_ref()
    }

    /// The test CA's PEM file (with nginx or given certs).
    pub fn ca_pem(&self) -> Option<&Path> {
        self.pki.as_ref().map(|p| p.ca.as_path())
    }

    /// The oauth-server's key folder.
    pub fn keys_dir(&self) -> &Path {
        &self.keys_dir
    }

    /// The registry file the oauth-server loaded.
    pub fn clients_file(&self) -> &Path {
        &self.clients_file
    }

    /// The stack's temporary folder (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The concatenated logs `names` (files in [`dir`](Self::dir), as
    /// [`ChildOutput::File`] writes them), read again until `done` holds for
    /// them or 10 s have passed (then returned as they are, for the caller's
    /// assertion to show). The servers write log lines from a writer thread
    /// (`server_kit::telemetry`), so a line can land a moment after the
    /// answer of the request that logged it.
    pub async fn logs_until(&self, names: &[&str], done: impl Fn(&str) -> bool) -> String {
        let read = || {
            names
                .iter()
                .map(|n| std::fs::read_to_string(self.dir().join(n)).unwrap_or_default())
                .collect::<String>()
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = read();
            if done(&log) || tokio::time::Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// An HTTP client for the stack (trusting only the test CA with nginx;
    /// 20 s timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A builder for more clients like [`http`](Self::http) (e.g. from
    /// another local address).
    pub fn http_builder(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        http_builder(self.pki.as_ref())
    }

    /// An access token for `client` (client_credentials,
    /// client_secret_basic) from the public token endpoint, with `scope`
    /// and `resource` when given.
    pub async fn token(
        &self,
        client: (&str, &str),
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(s) = scope {
            form.append_pair("scope", s);
        }
        if let Some(r) = resource {
            form.append_pair("resource", r);
        }
        let resp = self
            .http
            .post(self.token_url())
            .basic_auth(client.0, Some(client.1))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .context("POST /token")?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.context("token response")?;
        if status != reqwest::StatusCode::OK {
            bail!("token request for {} failed: {status} {body}", client.0);
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no access_token in {body}"))
    }

    /// Stops every replica, then the oauth-server, gracefully (in-process)
    /// or by killing them; reports the first server that did not stop
    /// cleanly. Dropping the stack stops them too, without waiting.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        for r in &self.replicas {
            if let Err(e) = r.stop().await {
                errors.push(format!("{e:#}"));
            }
        }
        if let Err(e) = self.oauth.stop().await {
            errors.push(format!("{e:#}"));
        }
        self.stop.cancel();
        if let Some(n) = &mut self.nginx {
            n.stop();
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }
}
