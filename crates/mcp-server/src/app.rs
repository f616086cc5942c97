//! Start-up: build the state from a [`Config`], bind, serve, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auth::Verifier;
use prometheus_client::registry::Registry;
use server_kit::jwks::{JwksError, RemoteJwks, discover_jwks_uri};
use server_kit::metrics::{HttpMetrics, JwksMetrics, RateLimitMetrics, RedisMetrics};
use server_kit::ready::Readiness;
use server_kit::revocations::RevocationMirror;
use server_kit::store::{MemoryStore, RevocationStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::challenge::Challenges;
use crate::config::Config;
use crate::host_policy::HostPolicy;
use crate::limits::{CLIENT_LIMITER, Limits};
use crate::metrics::{LiveCollector, McpMetrics};
use crate::routes::protected_resource::{self, ProtectedResourceMetadata};
use crate::state::{AppState, AppStateParts};
use crate::store::MemoryCustomerStore;
use crate::{mcp, policy, router};

/// Unknown `kid`s trigger at most one JWKS refetch per this interval.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(10);
/// The JWKS is also refreshed on this period (learns removals).
const JWKS_REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Start-up retries while the authorization server is not reachable yet.
const DISCOVERY_ATTEMPTS: u32 = 10;

/// A built server, bound to its port, not yet serving.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    jwks: Arc<RemoteJwks>,
    shutdown: CancellationToken,
    connections: server_kit::serve::ConnectionLimits,
    /// The `MCP_METRICS_BIND` listener and its registry (`None`: off).
    metrics: Option<(TcpListener, Arc<Registry>)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Binds `config.bind` and builds the server.
    /// Also binds `config.metrics_bind` (the metrics listener).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot bind MCP_BIND={}", config.bind))?;
        Self::build_with_listener(config, listener).await
    }

    /// Builds the server on an already bound listener (tests bind port 0).
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        // Embedders build `Config` by hand: the allow-lists are checked here
        // too, before anything is fetched (an empty list would switch a check off).
        config.validate()?;
        let metrics_listener = server_kit::metrics::bind(config.metrics_bind)
            .await
            .with_context(|| {
                format!(
                    "cannot bind MCP_METRICS_BIND={}",
                    config
                        .metrics_bind
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                )
            })?;
        // One registry per process (no global recorder), built only when
        // metrics are on: with them off, nothing is counted.
        let mut registry = metrics_listener
            .as_ref()
            .map(|_| server_kit::metrics::registry());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;

        let jwks_url = match &config.jwks_url {
            Some(url) => url.clone(),
            None => discover_with_retries(&http, &config.issuer).await?,
        };
        let mut jwks = RemoteJwks::new(jwks_url.clone(), http, JWKS_REFETCH_COOLDOWN);
        if let Some(r) = registry.as_mut() {
            jwks = jwks.with_metrics(JwksMetrics::register(r));
        }
        let jwks = Arc::new(jwks);
        match jwks.refresh_now().await {
            Ok(n) => tracing::info!(url = %jwks_url, keys = n, "JWKS loaded"),
            // Keys are fetched again on the first unknown kid and periodically.
            Err(e) => {
                tracing::warn!(url = %jwks_url, error = %e, "initial JWKS fetch failed; will retry")
            }
        }
        let verifier = Arc::new(
            Verifier::new(config.issuer.clone(), &config.resource_url, jwks.clone())
                .with_cache(auth::verify::cache::DEFAULT_CAPACITY),
        );

        // The process's one Redis handle: the revocation set and the limiter
        // share it. It does not wait for Redis (a replica starts during an
        // outage) beyond the first probe, so the first requests of a replica
        // that starts with Redis up do not answer degraded.
        let shutdown = CancellationToken::new();
        let mut audit = AuditLog::default();
        if let Some(r) = registry.as_mut() {
            audit = audit.with_metrics(McpMetrics::register(r));
        }
        let audit = Arc::new(audit);
        let redis_settings = config.redis_settings();
        let redis_metrics = match registry.as_mut() {
            Some(r) if redis_settings.is_configured() => Some(RedisMetrics::register(r)),
            _ => None,
        };
        let redis = server_kit::redis::connect_metered(&redis_settings, redis_metrics)?;
        let mut readiness = Readiness::new(redis.clone());
        let revocations: Arc<dyn RevocationStore> = match &redis {
            Some(redis) => {
                redis.first_probe().await;
                let ring = audit.clone();
                let mirror = RevocationMirror::start(
                    redis.clone(),
                    config.revocation_max_staleness,
                    Arc::new(move |event| ring.record(event)),
                    shutdown.child_token(),
                );
                mirror.first_attempt().await;
                readiness = readiness.with_revocations(mirror.clone());
                Arc::new(mirror)
            }
            None => {
                tracing::warn!(
                    "neither REDIS_URL nor REDIS_CLUSTER_NODES is set: tokens revoked at the authorization server are not seen here"
                );
                Arc::new(MemoryStore::new())
            }
        };

        let host_policy = HostPolicy::new(&config.allowed_hosts, &config.allowed_origins)?;
        let metadata_url = protected_resource::url_for(&config.resource_url);
        let challenges = Challenges::new(&metadata_url, &policy::scopes_supported())
            .context("MCP_RESOURCE_URL cannot appear in a WWW-Authenticate header")?;
        let limit_metrics = registry.as_mut().map(RateLimitMetrics::register);
        let limiter = match &limit_metrics {
            Some(m) => server_kit::redis::build_limiter_metered(
                &config.rate_limit,
                redis.as_ref(),
                m.clone(),
                CLIENT_LIMITER,
            ),
            None => server_kit::redis::build_limiter(&config.rate_limit, redis.as_ref()),
        };
        let mut limits = Limits::new(limiter, &config.rate_limit, config.auth_failure_policy);
        if let Some(m) = limit_metrics {
            limits = limits.with_metrics(m);
        }
        let state = AppState::new(AppStateParts {
            verifier: verifier.clone(),
            revocations,
            customers: Arc::new(MemoryCustomerStore::seeded()),
            audit,
            host_policy,
            challenges,
            metadata: ProtectedResourceMetadata::new(&config.resource_url, &config.issuer),
            limits,
            revocation_fail_open: config.revocation_fail_open,
            readiness,
            max_result_bytes: config.max_result_bytes,
        });

        let sessions = state.rmcp_sessions().clone();
        let mcp = mcp::service(
            state.clone(),
            &config.allowed_hosts,
            &config.allowed_origins,
            shutdown.child_token(),
        );
        let http_metrics = registry.as_mut().map(|r| {
            r.register_collector(Box::new(LiveCollector::new(sessions, verifier)));
            Arc::new(HttpMetrics::register(
                r,
                router::metric_routes(&state.metadata().resource),
            ))
        });
        let router = router::router(state.clone(), mcp, http_metrics);
        let metrics = metrics_listener.zip(registry.map(Arc::new));
        Ok(Self {
            listener,
            router,
            state,
            jwks,
            shutdown,
            connections: config.connections,
            metrics,
        })
    }

    /// The bound metrics address (`None`: `MCP_METRICS_BIND` is empty).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (tests read the audit ring through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the server as SIGINT/SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or [`App::shutdown_token`] is cancelled,
    /// then closes MCP sessions and streams and drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            jwks,
            shutdown,
            connections,
            metrics,
            ..
        } = self;
        let addr = listener.local_addr().context("listener has no address")?;
        tracing::info!(%addr, "mcp-server listening");
        if let Some((metrics_listener, registry)) = metrics {
            if let Ok(addr) = metrics_listener.local_addr() {
                tracing::info!(%addr, "metrics listening (GET /metrics)");
            }
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let stopped = async move { stop.cancelled().await };
                if let Err(e) =
                    server_kit::metrics::serve(metrics_listener, registry, stopped).await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }

        let stop = shutdown.clone();
        tokio::spawn(
            jwks.refresh_periodically(JWKS_REFRESH_EVERY, async move { stop.cancelled().await }),
        );

        let signal = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = server_kit::shutdown::shutdown_signal() => signal.cancel(),
                () = signal.cancelled() => {}
            }
        });

        server_kit::serve::serve(
            listener,
            router,
            connections,
            crate::error::connection_answers(),
            shutdown,
        )
        .await;
        tracing::info!("mcp-server stopped");
        Ok(())
    }
}

async fn discover_with_retries(http: &reqwest::Client, issuer: &str) -> anyhow::Result<String> {
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=DISCOVERY_ATTEMPTS {
        match discover_jwks_uri(http, issuer).await {
            Ok(url) => return Ok(url),
            // A wrong issuer or document will not fix itself.
            Err(e @ (JwksError::IssuerMismatch { .. } | JwksError::NoJwksUri)) => {
                return Err(anyhow::anyhow!(e)
                    .context(format!("OAUTH_ISSUER={issuer}: metadata discovery failed")));
            }
            Err(e) if attempt == DISCOVERY_ATTEMPTS => {
                return Err(anyhow::anyhow!(e)
                    .context(format!("OAUTH_ISSUER={issuer}: metadata discovery failed")));
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "authorization server metadata not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    Err(anyhow::anyhow!(
        "OAUTH_ISSUER={issuer}: metadata discovery failed"
    ))
}
