//! oauth-server configuration, read once from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use auth::keys::Algorithm;
use auth::scope::ScopeSet;
use auth::uri::{canonical_resource, normalize_issuer};
use ratelimit::{Policy, RateLimitConfig};
use secrecy::SecretString;
use server_kit::cli::EnvVar;
use server_kit::config::{ConfigError, var, var_list, var_or, var_parsed};
use server_kit::limits::rate_limit_from_env;
use server_kit::redis::{DEFAULT_TIMEOUT as DEFAULT_REDIS_TIMEOUT, RedisSettings};
use server_kit::telemetry::LogFormat;

use crate::registration::{
    DEFAULT_SCOPES as DEFAULT_REGISTRATION_SCOPES, InitialAccessToken, RegistrationConfig,
    RegistrationMode,
};

/// Local MCP resource URI (DESIGN.md §2).
pub const DEFAULT_RESOURCE: &str = "http://localhost:8000/mcp";

/// Where the users file is looked for when `OAUTH_USERS_FILE` is unset.
pub const DEFAULT_USERS_FILE: &str = "config/users.toml";

/// Every setting of the oauth-server. Variables (default in brackets):
///
/// | variable | meaning |
/// |---|---|
/// | `OAUTH_BIND` [127.0.0.1:8080] | listen address |
/// | `OAUTH_METRICS_BIND` [127.0.0.1:9101] | Prometheus `/metrics` listener (its own port, never behind nginx); empty = off |
/// | `OAUTH_ISSUER` [http://localhost:8080] | public issuer URL; https, or http on loopback; normalised (`auth::uri::normalize_issuer`) before it goes into `iss` and the metadata |
/// | `OAUTH_KEYS_DIR` [keys] | signing keys (PEM); generated 0600 when empty |
/// | `OAUTH_CLIENTS_FILE` [config/clients.toml] | client registry |
/// | `OAUTH_USERS_FILE` [config/users.toml] | people who sign in at /authorize; the default file may be missing (no users), a file named here must exist |
/// | `OAUTH_TOKEN_TTL_SECS` [900] | access-token lifetime, 60..=3600 |
/// | `OAUTH_SIGNING_ALG` [RS256] | RS256, ES256 or EdDSA |
/// | `OAUTH_RESOURCES` [http://localhost:8000/mcp] | audiences this server may issue tokens for |
/// | `OAUTH_KEYS_RELOAD_SECS` [30] | how often the keys folder is re-read (picks up `keys rotate`) |
/// | `OAUTH_REFRESH_TTL_SECS` [2592000] | absolute lifetime of a refresh-token family (30 days), ≥ 60 |
/// | `OAUTH_REFRESH_IDLE_SECS` [604800] | idle lifetime of a refresh token (7 days), renewed on each rotation; 60..=`OAUTH_REFRESH_TTL_SECS` |
/// | `REDIS_URL` [unset] | shared revocation/replay store; unset = in memory |
/// | `REDIS_CLUSTER_NODES` [unset] | seed nodes of a Redis Cluster (`redis://host:port`, comma list); set = cluster mode, `REDIS_URL` unused |
/// | `REDIS_TIMEOUT_MS` [250] | connect/command timeout for Redis |
/// | `OAUTH_RATE_LIMIT_PER_MINUTE` [120] | per-IP and per-client budget on /token, /revoke, /introspect |
/// | `OAUTH_RATE_LIMIT_BURST` [20] | burst of that budget |
/// | `OAUTH_FAILED_AUTH_COST` [5] | units a failed client authentication costs its IP |
/// | `HTTP_HEADER_READ_TIMEOUT_SECS` / `HTTP_REQUEST_TIMEOUT_SECS` / `HTTP_IDLE_TIMEOUT_SECS` / `HTTP_MAX_CONNECTIONS` [10 / 30 / 60 / 512] | connection hygiene (`server_kit::serve`) |
/// | `OAUTH_ARGON2_THREADS` [2] | dedicated threads for argon2id verifications (1..=64); memory ≤ threads × 19 MiB while busy, 0 after 5 s idle |
/// | `RATE_LIMIT_FAILURE_MODE` [local] | local, open or closed when Redis fails |
/// | `RATE_LIMIT_REDIS_TIMEOUT_MS` [100] | limiter timeout on Redis |
/// | `TRUSTED_PROXIES` [unset] | CIDRs whose X-Forwarded-For is believed |
/// | `LOG_FORMAT` [text] | text or json |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` [unset] | OTLP/HTTP collector; set turns traces on (`server_kit::telemetry`) |
/// | `OTEL_SERVICE_NAME` [oauth-server] | `service.name` of the spans |
/// | `OAUTH_REGISTRATION` [open] | RFC 7591 `POST /register`: open, token (needs `OAUTH_REGISTRATION_TOKEN`) or off |
/// | `OAUTH_REGISTRATION_TOKEN` [unset] | the initial access token (Bearer) of `token` mode; a secret, ≥ 16 characters |
/// | `OAUTH_REGISTRATION_SCOPES` [customer:read ticket:create account:calculate, narrowed to the registry's scopes] | the most a registered or metadata-document client may get; a set value must name only scopes the registry has |
/// | `OAUTH_REGISTRATION_MAX` [10000] | cap on live registrations (each lives 90 days) |
/// | `OAUTH_REGISTRATION_PER_HOUR` [10] | registrations per hour per IP (also the burst) |
/// | `OAUTH_CIMD_ALLOWED_HOSTS` [unset] | hosts (`host` or `host:port`) whose client metadata documents may be on private/loopback addresses |
/// | `SSL_CERT_FILE` [unset] | extra CA certificates (PEM) trusted when fetching client metadata documents |
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// `OAUTH_METRICS_BIND`: the `/metrics` listener; `None` = off.
    pub metrics_bind: Option<SocketAddr>,
    pub issuer: String,
    pub keys_dir: PathBuf,
    pub clients_file: PathBuf,
    /// `OAUTH_USERS_FILE`: the people who may sign in at /authorize.
    pub users_file: PathBuf,
    /// Whether `users_file` was named explicitly (then it must exist; the
    /// default may be missing, meaning no users).
    pub users_file_required: bool,
    pub token_ttl: Duration,
    pub signing_alg: Algorithm,
    pub resources: Vec<String>,
    pub keys_reload_interval: Duration,
    /// Absolute lifetime of a refresh-token family (from the code exchange).
    pub refresh_ttl: Duration,
    /// Idle lifetime of a refresh token: unused this long, it is dead.
    pub refresh_idle: Duration,
    pub redis_url: Option<SecretString>,
    /// `REDIS_CLUSTER_NODES`; not empty: cluster mode (`redis_url` unused).
    pub redis_cluster_nodes: Vec<SecretString>,
    pub redis_timeout: Duration,
    /// Failure mode, Redis timeout and trusted proxies (shared `RATE_LIMIT_*`).
    pub rate_limit: RateLimitConfig,
    /// Budget per IP (before auth) and per client (after auth).
    pub oauth_policy: Policy,
    pub failed_auth_cost: u32,
    /// `OAUTH_ARGON2_THREADS`: the argon2id verification pool.
    pub argon2_threads: usize,
    /// `HTTP_*`: header/request/idle timeouts and the connection cap.
    pub connections: server_kit::serve::ConnectionLimits,
    pub log_format: LogFormat,
    /// Dynamic registration and client metadata documents.
    pub registration: RegistrationConfig,
}

impl Config {
    /// The Redis this server uses (`REDIS_URL` or `REDIS_CLUSTER_NODES`).
    pub fn redis_settings(&self) -> RedisSettings {
        RedisSettings {
            url: self.redis_url.clone(),
            cluster_nodes: self.redis_cluster_nodes.clone(),
            timeout: self.redis_timeout,
        }
    }

    /// Reads and validates every variable; the error names the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let ttl: u64 = var_parsed("OAUTH_TOKEN_TTL_SECS", 900)?;
        if !(60..=3600).contains(&ttl) {
            return Err(ConfigError::new(
                "OAUTH_TOKEN_TTL_SECS",
                "must be between 60 and 3600 seconds",
            ));
        }
        let issuer = validate_issuer(&var_or("OAUTH_ISSUER", "http://localhost:8080"))
            .map_err(|m| ConfigError::new("OAUTH_ISSUER", m))?;
        let resources = var_list("OAUTH_RESOURCES", &[DEFAULT_RESOURCE])?
            .iter()
            .map(|r| {
                canonical_resource(r)
                    .map_err(|e| ConfigError::new("OAUTH_RESOURCES", format!("{r:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reload: u64 = var_parsed("OAUTH_KEYS_RELOAD_SECS", 30)?;
        let (refresh_ttl, refresh_idle) = refresh_lifetimes(
            var_parsed("OAUTH_REFRESH_TTL_SECS", DEFAULT_REFRESH_TTL_SECS)?,
            var_parsed("OAUTH_REFRESH_IDLE_SECS", DEFAULT_REFRESH_IDLE_SECS)?,
        )?;
        let rate_limit = rate_limit_from_env()?;
        let redis = RedisSettings::from_env()?;
        let per_minute: u32 = var_parsed("OAUTH_RATE_LIMIT_PER_MINUTE", 120)?;
        let burst: u32 = var_parsed("OAUTH_RATE_LIMIT_BURST", 20)?;
        let oauth_policy = Policy::new(per_minute, burst).map_err(|e| {
            ConfigError::new(
                "OAUTH_RATE_LIMIT_PER_MINUTE/OAUTH_RATE_LIMIT_BURST",
                e.to_string(),
            )
        })?;
        let failed_auth_cost: u32 = var_parsed("OAUTH_FAILED_AUTH_COST", 5)?;
        if failed_auth_cost == 0 || failed_auth_cost > burst {
            return Err(ConfigError::new(
                "OAUTH_FAILED_AUTH_COST",
                "must be between 1 and OAUTH_RATE_LIMIT_BURST",
            ));
        }
        let argon2_threads: usize =
            var_parsed("OAUTH_ARGON2_THREADS", crate::argon::DEFAULT_THREADS)?;
        if !(1..=64).contains(&argon2_threads) {
            return Err(ConfigError::new(
                "OAUTH_ARGON2_THREADS",
                format!("must be between 1 and 64, got {argon2_threads}"),
            ));
        }
        let users_file = server_kit::config::var("OAUTH_USERS_FILE");
        Ok(Self {
            bind: var_parsed("OAUTH_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            metrics_bind: metrics_bind_from_env()?,
            issuer,
            keys_dir: PathBuf::from(var_or("OAUTH_KEYS_DIR", "keys")),
            clients_file: PathBuf::from(var_or("OAUTH_CLIENTS_FILE", "config/clients.toml")),
            users_file_required: users_file.is_some(),
            users_file: PathBuf::from(users_file.unwrap_or_else(|| DEFAULT_USERS_FILE.to_owned())),
            token_ttl: Duration::from_secs(ttl),
            signing_alg: var_parsed("OAUTH_SIGNING_ALG", Algorithm::RS256)?,
            resources,
            keys_reload_interval: Duration::from_secs(reload.max(1)),
            refresh_ttl,
            refresh_idle,
            redis_url: redis.url,
            redis_cluster_nodes: redis.cluster_nodes,
            redis_timeout: redis.timeout,
            rate_limit,
            oauth_policy,
            failed_auth_cost,
            argon2_threads,
            connections: server_kit::serve::ConnectionLimits::from_env()?,
            log_format: var_parsed("LOG_FORMAT", LogFormat::Text)?,
            registration: registration_from_env()?,
        })
    }

    /// Defaults for tests and embedding: everything as documented, with the
    /// given folders; `bind` is ignored by `App::build_with_listener`.
    pub fn with_paths(
        issuer: &str,
        keys_dir: PathBuf,
        clients_file: PathBuf,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Tests and embedders: a free loopback port (parallel servers
            // never collide); `App::metrics_addr` says which.
            metrics_bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            issuer: validate_issuer(issuer).map_err(|m| ConfigError::new("OAUTH_ISSUER", m))?,
            keys_dir,
            clients_file,
            // Embedders and tests name their users file (`stack` does).
            users_file: PathBuf::from(DEFAULT_USERS_FILE),
            users_file_required: false,
            token_ttl: Duration::from_secs(900),
            signing_alg: Algorithm::RS256,
            resources: vec![DEFAULT_RESOURCE.to_owned()],
            keys_reload_interval: Duration::from_secs(30),
            refresh_ttl: Duration::from_secs(DEFAULT_REFRESH_TTL_SECS),
            refresh_idle: Duration::from_secs(DEFAULT_REFRESH_IDLE_SECS),
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            rate_limit: RateLimitConfig::default(),
            oauth_policy: Policy::new(120, 20)
                .map_err(|e| ConfigError::new("OAUTH_RATE_LIMIT_BURST", e.to_string()))?,
            failed_auth_cost: 5,
            argon2_threads: crate::argon::DEFAULT_THREADS,
            connections: server_kit::serve::ConnectionLimits::default(),
            log_format: LogFormat::Text,
            registration: RegistrationConfig::defaults(),
        })
    }

    /// The token endpoint URL (also an accepted client-assertion `aud`).
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }
}

/// Where `/metrics` listens when `OAUTH_METRICS_BIND` is unset.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9101);

/// `OAUTH_METRICS_BIND`: unset = the default, set but empty = off.
fn metrics_bind_from_env() -> Result<Option<SocketAddr>, ConfigError> {
    parse_metrics_bind(std::env::var("OAUTH_METRICS_BIND").ok().as_deref())
}

/// The value of `OAUTH_METRICS_BIND` (`None`: unset).
fn parse_metrics_bind(value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    match value.map(str::trim) {
        None => Ok(Some(DEFAULT_METRICS_BIND)),
        Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| {
            ConfigError::new(
                "OAUTH_METRICS_BIND",
                format!("invalid value {v:?}: {e} (host:port, or empty for off)"),
            )
        }),
    }
}

/// Refresh-token family lifetime: 30 days.
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;
/// Refresh-token idle lifetime: 7 days.
pub const DEFAULT_REFRESH_IDLE_SECS: u64 = 7 * 24 * 3600;

/// Both refresh lifetimes at least a minute (a shorter one only makes
/// clients sign in again), and idle within absolute (a longer idle
/// lifetime would never apply).
fn refresh_lifetimes(ttl: u64, idle: u64) -> Result<(Duration, Duration), ConfigError> {
    if ttl < 60 {
        return Err(ConfigError::new(
            "OAUTH_REFRESH_TTL_SECS",
            "must be at least 60 seconds",
        ));
    }
    if idle < 60 || idle > ttl {
        return Err(ConfigError::new(
            "OAUTH_REFRESH_IDLE_SECS",
            "must be between 60 seconds and OAUTH_REFRESH_TTL_SECS",
        ));
    }
    Ok((Duration::from_secs(ttl), Duration::from_secs(idle)))
}

/// RFC 8414 §2 through the one issuer rule both servers and the clients
/// share ([`normalize_issuer`]): https (http only on loopback), no query or
/// fragment, one canonical spelling.
pub fn validate_issuer(raw: &str) -> Result<String, String> {
    normalize_issuer(raw).map_err(|e| e.to_string())
}

/// `OAUTH_REGISTRATION*`, `OAUTH_CIMD_ALLOWED_HOSTS`, `SSL_CERT_FILE`. The
/// scopes are checked against the registry's in `App::build`.
fn registration_from_env() -> Result<RegistrationConfig, ConfigError> {
    let defaults = RegistrationConfig::defaults();
    let mode = match var_or("OAUTH_REGISTRATION", "open").trim() {
        "open" => RegistrationMode::Open,
        "off" => RegistrationMode::Off,
        "token" => {
            let token = var("OAUTH_REGISTRATION_TOKEN").ok_or_else(|| {
                ConfigError::new(
                    "OAUTH_REGISTRATION_TOKEN",
                    "is required when OAUTH_REGISTRATION=token",
                )
            })?;
            if token.trim().chars().count() < 16 {
                return Err(ConfigError::new(
                    "OAUTH_REGISTRATION_TOKEN",
                    "must be at least 16 characters (generate one with `oauth-server generate-secret`)",
                ));
            }
            RegistrationMode::Token(InitialAccessToken::new(token.trim()))
        }
        other => {
            return Err(ConfigError::new(
                "OAUTH_REGISTRATION",
                format!("invalid value {other:?}: expected open, token or off"),
            ));
        }
    };
    let scopes = match var("OAUTH_REGISTRATION_SCOPES") {
        None => None,
        Some(v) => {
            let set = ScopeSet::try_from_tokens(v.split([' ', ',']).filter(|s| !s.is_empty()))
                .map_err(|e| ConfigError::new("OAUTH_REGISTRATION_SCOPES", e.to_string()))?;
            if set.is_empty() {
                return Err(ConfigError::new(
                    "OAUTH_REGISTRATION_SCOPES",
                    format!(
                        "{v:?} names no scope: list scopes, unset it for the default, \
                         or set OAUTH_REGISTRATION=off"
                    ),
                ));
            }
            Some(set)
        }
    };
    let max_clients: u64 = var_parsed("OAUTH_REGISTRATION_MAX", defaults.max_clients)?;
    if max_clients == 0 {
        return Err(ConfigError::new(
            "OAUTH_REGISTRATION_MAX",
            "must be at least 1 (use OAUTH_REGISTRATION=off to stop registrations)",
        ));
    }
    let per_hour: u32 = var_parsed("OAUTH_REGISTRATION_PER_HOUR", defaults.per_hour)?;
    if !(1..=10_000).contains(&per_hour) {
        return Err(ConfigError::new(
            "OAUTH_REGISTRATION_PER_HOUR",
            "must be between 1 and 10000",
        ));
    }
    let cimd_allowed_hosts = var_list("OAUTH_CIMD_ALLOWED_HOSTS", &[])?
        .into_iter()
        .map(|h| {
            if h.contains("://") || h.contains('/') || h.contains('@') {
                Err(ConfigError::new(
                    "OAUTH_CIMD_ALLOWED_HOSTS",
                    format!("{h:?}: entries are a host or host:port, not a URL"),
                ))
            } else {
                Ok(h.to_ascii_lowercase())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = RegistrationConfig {
        mode,
        scopes,
        max_clients,
        per_hour,
        cimd_allowed_hosts,
        extra_ca_file: var("SSL_CERT_FILE").map(PathBuf::from),
        cimd_timeout: defaults.cimd_timeout,
    };
    config
        .rate_policy()
        .map_err(|e| ConfigError::new("OAUTH_REGISTRATION_PER_HOUR", e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_rules() {
        assert_eq!(
            validate_issuer("http://localhost:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            validate_issuer("https://auth.example.com").unwrap(),
            "https://auth.example.com"
        );
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("https://a.example?x=1").is_err());
        assert!(validate_issuer("https://a.example#f").is_err());
        assert!(validate_issuer("localhost:8080").is_err());
        assert_eq!(
            validate_issuer("http://LOCALHOST:8080").unwrap(),
            "http://localhost:8080"
        );
    }

    #[test]
    fn metrics_bind_default_empty_and_invalid() {
        assert_eq!(parse_metrics_bind(None), Ok(Some(DEFAULT_METRICS_BIND)));
        assert_eq!(
            DEFAULT_METRICS_BIND,
            "127.0.0.1:9101".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parse_metrics_bind(Some("")), Ok(None));
        assert_eq!(parse_metrics_bind(Some("  ")), Ok(None));
        assert_eq!(
            parse_metrics_bind(Some("0.0.0.0:9200")),
            Ok(Some(SocketAddr::from(([0, 0, 0, 0], 9200))))
        );
        let e = parse_metrics_bind(Some("localhost")).unwrap_err();
        assert_eq!(e.var, "OAUTH_METRICS_BIND");
        assert!(e.message.starts_with("invalid value \"localhost\""), "{e}");
    }

    #[test]
    fn refresh_lifetime_rules() {
        let (ttl, idle) = refresh_lifetimes(3600, 60).unwrap();
        assert_eq!((ttl.as_secs(), idle.as_secs()), (3600, 60));
        assert!(refresh_lifetimes(3600, 3600).is_ok());
        let e = refresh_lifetimes(59, 59).unwrap_err();
        assert!(e.to_string().contains("OAUTH_REFRESH_TTL_SECS"), "{e}");
        for (ttl, idle) in [(3600, 59), (3600, 3601)] {
            let e = refresh_lifetimes(ttl, idle).unwrap_err();
            assert!(e.to_string().contains("OAUTH_REFRESH_IDLE_SECS"), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}

/// Every environment variable `oauth-server` reads, with its default and
/// meaning: the single source of `oauth-server --help` (the test below keeps
/// it in step with [`Config::from_env`]).
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar::new("OAUTH_BIND", "127.0.0.1:8080", "listen address"),
    EnvVar::new(
        "OAUTH_METRICS_BIND",
        "127.0.0.1:9101",
        "Prometheus /metrics listener (own port, not behind nginx); empty = off",
    ),
    EnvVar::new(
        "OAUTH_ISSUER",
        "http://localhost:8080",
        "public issuer URL; https, or http on loopback; normalised (lower-case host, no \
         trailing slash) before it goes into `iss` and the metadata",
    ),
    EnvVar::new(
        "OAUTH_KEYS_DIR",
        "keys",
        "signing keys (PEM); one is generated (0600) when the folder is empty",
    ),
    EnvVar::new(
        "OAUTH_CLIENTS_FILE",
        "config/clients.toml",
        "client registry",
    ),
    EnvVar::new(
        "OAUTH_USERS_FILE",
        DEFAULT_USERS_FILE,
        "people who sign in at /authorize (argon2id hashes, allowed scopes); the default \
         may be missing (no users, a warning), a file named here must exist",
    ),
    EnvVar::new(
        "OAUTH_TOKEN_TTL_SECS",
        "900",
        "access-token lifetime in seconds, 60 to 3600",
    ),
    EnvVar::new("OAUTH_SIGNING_ALG", "RS256", "RS256, ES256 or EdDSA"),
    EnvVar::new(
        "OAUTH_RESOURCES",
        DEFAULT_RESOURCE,
        "audiences (MCP resource URIs) this server may issue tokens for, comma-separated",
    ),
    EnvVar::new(
        "OAUTH_KEYS_RELOAD_SECS",
        "30",
        "how often the keys folder is re-read (picks up `keys rotate`)",
    ),
    EnvVar::new(
        "OAUTH_REFRESH_TTL_SECS",
        "2592000",
        "absolute lifetime of a refresh-token family in seconds (30 days), at least 60",
    ),
    EnvVar::new(
        "OAUTH_REFRESH_IDLE_SECS",
        "604800",
        "idle lifetime of a refresh token in seconds (7 days), renewed on each rotation; \
         60 to OAUTH_REFRESH_TTL_SECS",
    ),
    EnvVar::new(
        "REDIS_URL",
        "",
        "shared revocation/replay store and rate limiter; unset = in memory",
    ),
    EnvVar::new(
        "REDIS_CLUSTER_NODES",
        "",
        "seed nodes of a Redis Cluster (redis://host:port, comma-separated) for the same stores \
         and limiter; set = cluster mode and REDIS_URL is not used",
    ),
    EnvVar::new(
        "REDIS_TIMEOUT_MS",
        "250",
        "connect/command timeout of the Redis connection in ms, 1 to 60000",
    ),
    EnvVar::new(
        "OAUTH_RATE_LIMIT_PER_MINUTE",
        "120",
        "per-IP and per-client budget on /token, /revoke and /introspect",
    ),
    EnvVar::new("OAUTH_RATE_LIMIT_BURST", "20", "burst of that budget"),
    EnvVar::new(
        "OAUTH_FAILED_AUTH_COST",
        "5",
        "units a failed client authentication costs its IP, 1 to OAUTH_RATE_LIMIT_BURST",
    ),
    EnvVar::new(
        "HTTP_HEADER_READ_TIMEOUT_SECS",
        "10",
        "seconds a client has to send a request's headers (also the keep-alive idle limit \
         between requests); the connection is closed beyond it, 1 to 3600",
    ),
    EnvVar::new(
        "HTTP_REQUEST_TIMEOUT_SECS",
        "30",
        "seconds from a request's headers to its response head, body included; 408 beyond, \
         1 to 3600",
    ),
    EnvVar::new(
        "HTTP_IDLE_TIMEOUT_SECS",
        "60",
        "a connection on which no byte moves for this long is closed, 1 to 3600",
    ),
    EnvVar::new(
        "HTTP_MAX_CONNECTIONS",
        "512",
        "open connections at most; one more gets 503 (Retry-After: 1) and is closed",
    ),
    EnvVar::new(
        "OAUTH_ARGON2_THREADS",
        "2",
        "dedicated threads for argon2id verifications (client secrets, passwords), 1 to 64; \
         each uses one buffer of the hash's memory cost (19 MiB for the defaults), \
         given back after 5 s without a verification",
    ),
    EnvVar::new(
        "RATE_LIMIT_FAILURE_MODE",
        "local",
        "when Redis fails: local (in-memory limiter), open (allow) or closed (503)",
    ),
    EnvVar::new(
        "RATE_LIMIT_REDIS_TIMEOUT_MS",
        "100",
        "limiter timeout on Redis in ms, 1 to 10000",
    ),
    EnvVar::new(
        "TRUSTED_PROXIES",
        "",
        "comma-separated CIDRs/addresses whose X-Forwarded-For is believed (nginx)",
    ),
    EnvVar::new(
        "RATE_LIMIT_PER_MINUTE",
        "60",
        "mcp-server's per-client budget; validated here too (both servers may share one \
         .env) but unused: /token uses OAUTH_RATE_LIMIT_PER_MINUTE",
    ),
    EnvVar::new(
        "RATE_LIMIT_BURST",
        "10",
        "mcp-server's burst; validated here too, unused",
    ),
    EnvVar::new(
        "RATE_LIMIT_TOOL_CALL_COST",
        "2",
        "mcp-server's tools/call cost; validated here too, unused",
    ),
    EnvVar::new(
        "OAUTH_REGISTRATION",
        "open",
        "RFC 7591 dynamic registration at POST /register (public clients only): open, token \
         (callers present OAUTH_REGISTRATION_TOKEN as a Bearer token) or off (404)",
    ),
    EnvVar::new(
        "OAUTH_REGISTRATION_TOKEN",
        "",
        "the initial access token of OAUTH_REGISTRATION=token (a secret, at least 16 characters)",
    ),
    EnvVar::new(
        "OAUTH_REGISTRATION_SCOPES",
        DEFAULT_REGISTRATION_SCOPES,
        "the most a registered or client-metadata-document client may get (space-separated, \
         each a scope some registry client has; the default is narrowed to the registry's)",
    ),
    EnvVar::new(
        "OAUTH_REGISTRATION_MAX",
        "10000",
        "cap on live dynamic registrations (each lives 90 days); beyond it /register answers 503",
    ),
    EnvVar::new(
        "OAUTH_REGISTRATION_PER_HOUR",
        "10",
        "registrations per hour per IP, 1 to 10000 (also the burst); more are answered 429",
    ),
    EnvVar::new(
        "OAUTH_CIMD_ALLOWED_HOSTS",
        "",
        "comma-separated hosts (host or host:port) whose client metadata documents may be \
         fetched from private, loopback or other non-public addresses",
    ),
    EnvVar::new(
        "SSL_CERT_FILE",
        "",
        "extra CA certificates (PEM) trusted, besides the webpki roots, when fetching client \
         metadata documents",
    ),
    EnvVar::new("LOG_FORMAT", "text", "text, or json (one object per line)"),
    EnvVar::new(
        "RUST_LOG",
        "info",
        "tracing filter (rmcp=warn is added unless it names rmcp)",
    ),
    EnvVar::new("NO_COLOR", "", "set: no colours in text logs on a terminal"),
    EnvVar::new(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OTLP/HTTP collector base URL (spans to {it}/v1/traces); set turns traces on",
    ),
    EnvVar::new(
        "OTEL_SERVICE_NAME",
        "oauth-server",
        "service.name of this process's spans",
    ),
];

#[cfg(test)]
mod env_vars_tests {
    /// `--help`'s table lists exactly what this file reads, and
    /// docs/configuration.md lists every one of them.
    #[test]
    fn env_vars_match_what_is_read_and_the_reference() {
        assert_eq!(
            server_kit::cli::env_table_problems(
                include_str!("config.rs"),
                super::ENV_VARS,
                include_str!("../../../docs/configuration.md"),
                "oauth-server",
            ),
            Vec::<String>::new()
        );
    }
}
