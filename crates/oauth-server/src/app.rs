//! Start-up: build state from config, bind, serve, stop gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use auth::verify::Verifier;
use server_kit::kv::{KvStore, MemoryKv, RedisKv};
use server_kit::ready::Readiness;
use server_kit::store::{MemoryStore, RedisStore, ReplayStore, RevocationStore};
use tokio::net::TcpListener;

use crate::argon::{ClientSecrets, PasswordCheck};
use crate::clients::Registry;
use crate::codes::Codes;
use crate::config::Config;
use crate::directory::ClientDirectory;
use crate::keystore::KeyStore;
use crate::limits::Limits;
use crate::metrics::OAuthMetrics;
use crate::refresh::RefreshTokens;
use crate::router::router;
use crate::routes::metadata;
use crate::state::{AppState, Inner};
use crate::users::{FileUsers, UsersFile};

/// A built, bound, not-yet-running server.
pub struct App {
    listener: TcpListener,
    /// `OAUTH_METRICS_BIND` (`None`: metrics off).
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl App {
    /// Binds `config.bind` and builds the app.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("OAUTH_BIND: cannot listen on {}", config.bind))?;
        Self::build_with_listener(config, listener).await
    }

    /// Builds the app on an already bound listener (tests bind port 0 first
    /// so the issuer URL can name the port).
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let registry = Registry::load(&config.clients_file)
            .map_err(anyhow::Error::msg)
            .context("OAUTH_CLIENTS_FILE")?;
        if registry.is_empty() {
            tracing::warn!(file = %config.clients_file.display(), "client registry is empty: no client can get a token");
        }
        let keys = KeyStore::open(&config.keys_dir, config.signing_alg)
            .map_err(anyhow::Error::msg)
            .context("OAUTH_KEYS_DIR")?;
        // The process's one Redis handle: the stores and the limiter share
        // it. It does not wait for Redis (the server starts during an outage)
        // beyond the first probe, so a server that starts with Redis up does
        // not answer its first requests degraded.
        // Metrics first: the Redis handle times its commands and keeps
        // `securemcp_redis_up` in step with its circuit breaker.
        let redis_settings = config.redis_settings();
        let metrics = Arc::new(OAuthMetrics::new(&registry, redis_settings.is_configured()));
        let redis = server_kit::redis::connect_metered(&redis_settings, metrics.redis.clone())?;
        if let Some(redis) = &redis {
            redis.first_probe().await;
        }
        let readiness = Readiness::new(redis.clone());
        let (revocations, replays, kv): (
            Arc<dyn RevocationStore>,
            Arc<dyn ReplayStore>,
            Arc<dyn KvStore>,
        ) = match &redis {
            Some(redis) => {
                let store = Arc::new(RedisStore::new(redis.clone()));
                (store.clone(), store, Arc::new(RedisKv::new(redis.clone())))
            }
            None => {
                let store = Arc::new(MemoryStore::new());
                (store.clone(), store, Arc::new(MemoryKv::new()))
            }
        };
        // A redemption record lives as long as anything issued from its
        // code: the refresh family's absolute lifetime (access tokens are shorter).
        let codes = Codes::new(kv.clone(), config.refresh_ttl.max(config.token_ttl));
        let refresh = RefreshTokens::new(kv.clone(), config.refresh_ttl, config.refresh_idle);
        let limiter = server_kit::redis::build_limiter(&config.rate_limit, redis.as_ref());
        metrics.set_signing_keys(keys.ring().keys.len());
        let metrics_listener = server_kit::metrics::bind(config.metrics_bind)
            .await
            .with_context(|| {
                format!(
                    "OAUTH_METRICS_BIND: cannot listen on {}",
                    config
                        .metrics_bind
                        .map_or_else(String::new, |a| a.to_string())
                )
            })?;
        let limits = Limits::new(
            metrics.clone(),
            limiter,
            config.oauth_policy,
            config.failed_auth_cost,
            config.rate_limit.trusted_proxies.clone(),
        );
        let own_tokens = Verifier::for_issuer_own_tokens(config.issuer.clone(), keys.verify_keys());
        let revocable_tokens =
            Verifier::for_issuer_own_tokens(config.issuer.clone(), keys.verify_keys())
                .with_leeway(auth::verify::DEFAULT_LEEWAY_SECS);
        let known_scopes = registry.all_scopes();
        let reg = &config.registration;
        let policy = crate::registration::PublicClientPolicy {
            scopes: reg
                .effective_scopes(&known_scopes)
                .map_err(anyhow::Error::msg)
                .context("OAUTH_REGISTRATION_SCOPES")?,
            resources: config.resources.clone(),
        };
        let documents = crate::cimd::MetadataDocuments::new(
            policy.clone(),
            &reg.cimd_allowed_hosts,
            reg.extra_ca_file.as_deref(),
            reg.cimd_timeout,
        )
        .map_err(anyhow::Error::msg)
        .context("SSL_CERT_FILE")?;
        let registrations =
            crate::registration::Registrations::new(kv.clone(), policy, reg.max_clients);
        let metadata_body = metadata::document(&config, &registry);
        let passwords = PasswordCheck::new(config.argon2_threads)
            .context("cannot start the argon2 verification threads")?;
        let users = load_users(&config, passwords.clone()).await?;
        // One argon2id hash (the dummy), on the argon2 threads.
        let secrets = ClientSecrets::for_registry(&registry, passwords.clone())
            .await
            .map_err(anyhow::Error::msg)
            .context("OAUTH_CLIENTS_FILE")?;
        let rsa_signing = crate::signer::SigningPool::per_core()
            .context("cannot start the RSA signing threads")?;
        let state = AppState::new(Inner {
            config,
            known_scopes,
            clients: ClientDirectory::with_sources(registry, secrets, registrations, documents),
            codes,
            refresh,
            kv,
            keys,
            own_tokens,
            revocable_tokens,
            revocations,
            replays,
            metadata_body,
            limits,
            users,
            passwords,
            readiness,
            metrics,
            metrics_addr: metrics_listener.as_ref().and_then(|l| l.local_addr().ok()),
            rsa_signing,
        });
        Ok(Self {
            listener,
            metrics_listener,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where `/metrics` is served (`None` when `OAUTH_METRICS_BIND` is empty).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(server_kit::shutdown::shutdown_signal())
            .await
    }

    /// Serves until `stop` resolves, then drains in-flight requests.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let metrics_addr = self.metrics_addr();
        let Self {
            listener,
            metrics_listener,
            state,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let reload = tokio::spawn(reload_keys(state.clone(), stop_rx.clone()));
        let metrics = metrics_listener.map(|listener| {
            let mut stop = stop_rx.clone();
            tokio::spawn(server_kit::metrics::serve(
                listener,
                state.metrics.registry(),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        });
        tracing::info!(
            %addr,
            metrics = %metrics_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            issuer = %state.config.issuer,
            alg = %state.config.signing_alg,
            kid = state.keys.ring().signing.kid(),
            clients = state.clients.registry().len(),
            users = state.users.len(),
            store = match (&state.config.redis_url, state.config.redis_cluster_nodes.is_empty()) {
                (_, false) => "redis-cluster",
                (Some(_), true) => "redis",
                (None, true) => "memory",
            },
            "oauth-server listening"
        );
        let connections = state.config.connections;
        server_kit::serve::serve(
            listener,
            router(state),
            connections,
            crate::error::OAuthError::connection_answers(),
            server_kit::serve::token_from(stop),
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = reload.await;
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "metrics listener failed"),
                Err(e) => tracing::warn!(error = %e, "metrics task failed"),
            }
        }
        tracing::info!("oauth-server stopped");
        Ok(())
    }
}

/// `OAUTH_USERS_FILE`: the default file may be missing (no users, a
/// warning); a file named explicitly must exist.
async fn load_users(config: &Config, passwords: PasswordCheck) -> anyhow::Result<Arc<FileUsers>> {
    let path = config.users_file.clone();
    let file = if !config.users_file_required && !path.exists() {
        tracing::warn!(file = %path.display(), "no users file: nobody can sign in at /authorize (set OAUTH_USERS_FILE)");
        UsersFile::default()
    } else {
        UsersFile::load(&path)
            .map_err(anyhow::Error::msg)
            .context("OAUTH_USERS_FILE")?
    };
    // Building hashes the dummy password once (argon2id, on the argon2 threads).
    let users = FileUsers::new(file, passwords)
        .await
        .map_err(anyhow::Error::msg)
        .context("OAUTH_USERS_FILE")?;
    Ok(Arc::new(users))
}

/// Picks up `keys rotate` from another process without a restart.
async fn reload_keys(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.keys_reload_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let keys_state = state.clone();
        // Directory reads are blocking I/O: keep them off the async workers.
        match tokio::task::spawn_blocking(move || keys_state.keys.reload()).await {
            Ok(Ok(true)) => state.metrics.set_signing_keys(state.keys.ring().keys.len()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "keys reload failed; keeping current keys"),
            Err(e) => tracing::warn!(error = %e, "keys reload task failed"),
        }
    }
}
