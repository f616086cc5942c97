//! Typed configuration, read once at start-up from the environment (and `.env`).

use std::net::SocketAddr;
use std::time::Duration;

use auth::uri::normalize_issuer;
use ratelimit::{Policy, RateLimitConfig};
use secrecy::SecretString;
use server_kit::cli::EnvVar;
use server_kit::config::var_addr_or_off;
use server_kit::config::{ConfigError, load_dotenv, var, var_list, var_or, var_parsed};
use server_kit::limits::rate_limit_from_env;
use server_kit::redis::{DEFAULT_TIMEOUT as DEFAULT_REDIS_TIMEOUT, RedisSettings};
use server_kit::serve::ConnectionLimits;
use server_kit::telemetry::LogFormat;

use crate::host_policy::HostPolicy;
use crate::state::DEFAULT_MAX_RESULT_BYTES;

/// Hosts accepted in `Host` by default: loopback only (any port).
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// Browser origins accepted by default: loopback pages on any port.
pub const DEFAULT_ALLOWED_ORIGINS: &[&str] = &[
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

/// Default `REVOCATION_MAX_STALENESS_SECS`: the oauth-server's default
/// access-token lifetime (`OAUTH_TOKEN_TTL_SECS`), after which every token
/// the set could have missed a revocation of has expired anyway.
pub const DEFAULT_REVOCATION_MAX_STALENESS: Duration = Duration::from_secs(900);

/// Default `MCP_METRICS_BIND`.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9102);

/// mcp-server configuration.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `MCP_BIND` | `127.0.0.1:8000` | listen address |
/// | `MCP_RESOURCE_URL` | `http://localhost:8000/mcp` | public canonical URI of this resource: the required `aud`, the RFC 9728 `resource` |
/// | `OAUTH_ISSUER` | `http://localhost:8080` | the required `iss`: https (http only on loopback), normalised as the oauth-server writes it (`auth::uri::normalize_issuer`: `http://LOCALHOST:8080/` = `http://localhost:8080`) |
/// | `OAUTH_JWKS_URL` | discovered from the issuer's RFC 8414 metadata | where verification keys come from |
/// | `MCP_ALLOWED_HOSTS` | `localhost,127.0.0.1,::1` plus the host of `MCP_RESOURCE_URL` | `Host` allow-list (`host` = any port, `host:port` = that port) |
/// | `MCP_ALLOWED_ORIGINS` | `http(s)://localhost:*`, `127.0.0.1`, `[::1]` | `Origin` allow-list for browsers (`:*` = any port); requests without `Origin` pass |
/// | `REDIS_URL` | unset | shared revocation denylist (written by oauth-server) and rate limiter; unset = in memory |
/// | `REDIS_CLUSTER_NODES` | unset | seed nodes of a Redis Cluster (`redis://host:port`, comma list) for the same; set = cluster mode, `REDIS_URL` unused |
/// | `REDIS_TIMEOUT_MS` | `250` | connect and command timeout of the one Redis connection |
/// | `LOG_FORMAT` | `text` | `text` or `json` (one object per line) |
/// | `RUST_LOG` | `info` | tracing filter |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset | OTLP/HTTP collector; set turns traces on (`server_kit::telemetry`) |
/// | `OTEL_SERVICE_NAME` | `mcp-server` | `service.name` of the spans |
///
/// Rate limits (DESIGN.md §6):
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `RATE_LIMIT_PER_MINUTE` / `RATE_LIMIT_BURST` | `60` / `10` | per-client budget `rl:{client_id}` (shared by replicas through Redis) |
/// | `RATE_LIMIT_TOOL_CALL_COST` | `2` | units a `tools/call` costs (other requests cost 1) |
/// | `RATE_LIMIT_FAILURE_MODE` | `local` | when Redis fails: `local`, `open` or `closed` (503) |
/// | `RATE_LIMIT_REDIS_TIMEOUT_MS` | `100` | limiter timeout on Redis |
/// | `RATE_LIMIT_AUTH_FAILURES_PER_MINUTE` / `RATE_LIMIT_AUTH_FAILURES_BURST` | `30` / `10` | failed authentications per IP (`rl:ip:{addr}`, in-process) before that address gets 429 without its token being looked at |
/// | `TRUSTED_PROXIES` | unset | CIDRs whose `X-Forwarded-For` is believed (nginx) |
/// | `REVOCATION_FAILURE_MODE` | `closed` | when the in-memory revocation set has been out of step with Redis for longer than `REVOCATION_MAX_STALENESS_SECS` (or never synchronised): `closed` answers 503, `open` accepts the (signature-checked, short-lived) token and audits `mcp.revocation_unchecked` |
/// | `REVOCATION_MAX_STALENESS_SECS` | `900` (the default access-token lifetime) | how long a replica keeps serving from its in-memory revocation set while its Redis subscription is down, 0 to 86400 |
/// | `HTTP_HEADER_READ_TIMEOUT_SECS` / `HTTP_REQUEST_TIMEOUT_SECS` / `HTTP_IDLE_TIMEOUT_SECS` / `HTTP_MAX_CONNECTIONS` | `10` / `30` / `60` / `512` | connection hygiene (`server_kit::serve`) |
/// | `MCP_METRICS_BIND` | `127.0.0.1:9102` | Prometheus `GET /metrics` listener (separate from the API, never routed through nginx); empty turns it off |
/// | `MCP_MAX_RESULT_BYTES` | `524288` (512 KiB) | largest tool result (its JSON) sent; a larger one is a tool error (`isError: true`) saying so; 1024 to 16777216 |
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    /// `MCP_METRICS_BIND`; `None`: metrics off. [`Config::new`] binds port 0.
    pub metrics_bind: Option<SocketAddr>,
    /// Canonical form (auth::uri::canonical_resource).
    pub resource_url: String,
    pub issuer: String,
    pub jwks_url: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub redis_url: Option<SecretString>,
    /// `REDIS_CLUSTER_NODES`; not empty: cluster mode (`redis_url` unused).
    pub redis_cluster_nodes: Vec<SecretString>,
    /// `REDIS_TIMEOUT_MS`.
    pub redis_timeout: Duration,
    /// Per-client policy, tool-call cost, failure mode, trusted proxies.
    pub rate_limit: RateLimitConfig,
    /// Failed authentications tolerated per IP.
    pub auth_failure_policy: Policy,
    /// Accept tokens when the revocation store is unreachable.
    pub revocation_fail_open: bool,
    /// `REVOCATION_MAX_STALENESS_SECS`: how long the revocation set is
    /// trusted without its subscription.
    pub revocation_max_staleness: Duration,
    /// `MCP_MAX_RESULT_BYTES`: larger tool results become tool errors.
    pub max_result_bytes: usize,
    /// `HTTP_*`: header/request/idle timeouts and the connection cap.
    pub connections: ConnectionLimits,
    pub log_format: LogFormat,
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

    /// Reads and validates every variable; the error names the offending one.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        let bind = var_parsed("MCP_BIND", SocketAddr::from(([127, 0, 0, 1], 8000)))?;
        let metrics_bind = var_addr_or_off("MCP_METRICS_BIND", DEFAULT_METRICS_BIND)?;
        let resource_url = parse_resource(
            "MCP_RESOURCE_URL",
            &var_or("MCP_RESOURCE_URL", "http://localhost:8000/mcp"),
        )?;
        let issuer = parse_issuer(
            "OAUTH_ISSUER",
            &var_or("OAUTH_ISSUER", "http://localhost:8080"),
        )?;
        let jwks_url = match var("OAUTH_JWKS_URL") {
            None => None,
            Some(v) => Some(parse_http_url("OAUTH_JWKS_URL", &v)?.to_string()),
        };
        let allowed_hosts = match var("MCP_ALLOWED_HOSTS") {
            Some(_) => var_list("MCP_ALLOWED_HOSTS", &[])?,
            None => default_hosts(&resource_url),
        };
        let allowed_origins = var_list("MCP_ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS)?;
        let redis = RedisSettings::from_env()?;
        let log_format = var_parsed("LOG_FORMAT", LogFormat::Text)?;
        let rate_limit = rate_limit_from_env()?;
        let failures: u32 = var_parsed("RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", 30)?;
        let failure_burst: u32 = var_parsed("RATE_LIMIT_AUTH_FAILURES_BURST", 10)?;
        let auth_failure_policy = Policy::new(failures, failure_burst)
            .map_err(|e| ConfigError::new("RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", e.to_string()))?;
        let revocation_fail_open = match var_or("REVOCATION_FAILURE_MODE", "closed")
            .to_ascii_lowercase()
            .as_str()
        {
            "closed" => false,
            "open" => true,
            other => {
                return Err(ConfigError::new(
                    "REVOCATION_FAILURE_MODE",
                    format!("expected open or closed, got {other:?}"),
                ));
            }
        };
        let default_staleness = DEFAULT_REVOCATION_MAX_STALENESS.as_secs();
        let staleness: u64 = var_parsed("REVOCATION_MAX_STALENESS_SECS", default_staleness)?;
        if staleness > 86_400 {
            return Err(ConfigError::new(
                "REVOCATION_MAX_STALENESS_SECS",
                format!("must be between 0 and 86400 seconds, got {staleness}"),
            ));
        }
        let max_result_bytes: usize = var_parsed("MCP_MAX_RESULT_BYTES", DEFAULT_MAX_RESULT_BYTES)?;
        if !(1024..=16 * 1024 * 1024).contains(&max_result_bytes) {
            return Err(ConfigError::new(
                "MCP_MAX_RESULT_BYTES",
                format!("must be between 1024 and 16777216 bytes, got {max_result_bytes}"),
            ));
        }
        let config = Config {
            bind,
            metrics_bind,
            resource_url,
            issuer,
            jwks_url,
            allowed_hosts,
            allowed_origins,
            redis_url: redis.url,
            redis_cluster_nodes: redis.cluster_nodes,
            redis_timeout: redis.timeout,
            rate_limit,
            auth_failure_policy,
            revocation_fail_open,
            revocation_max_staleness: Duration::from_secs(staleness),
            max_result_bytes,
            connections: ConnectionLimits::from_env()?,
            log_format,
        };
        config.validate()?;
        Ok(config)
    }

    /// A configuration for `resource_url` and `issuer` with every other value
    /// at its default (tests and embedders adjust fields afterwards).
    pub fn new(resource_url: &str, issuer: &str) -> Result<Self, ConfigError> {
        let resource_url = parse_resource("MCP_RESOURCE_URL", resource_url)?;
        let issuer = parse_issuer("OAUTH_ISSUER", issuer)?;
        Ok(Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Port 0: parallel in-process servers never collide, and tests
            // scrape the bound address (`App::metrics_addr`).
            metrics_bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            allowed_hosts: default_hosts(&resource_url),
            allowed_origins: DEFAULT_ALLOWED_ORIGINS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            resource_url,
            issuer,
            jwks_url: None,
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            rate_limit: RateLimitConfig::default(),
            auth_failure_policy: Policy::new(30, 10)
                .map_err(|e| ConfigError::new("RATE_LIMIT_AUTH_FAILURES_BURST", e.to_string()))?,
            revocation_fail_open: false,
            revocation_max_staleness: DEFAULT_REVOCATION_MAX_STALENESS,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            connections: ConnectionLimits::default(),
            log_format: LogFormat::Text,
        })
    }

    /// Checks the allow-lists parse (the same rules rmcp applies) and that
    /// neither is empty (an empty list switches its check off).
    pub fn validate(&self) -> Result<(), ConfigError> {
        HostPolicy::new(&self.allowed_hosts, &self.allowed_origins).map(|_| ())
    }
}

fn default_hosts(resource_url: &str) -> Vec<String> {
    let mut hosts: Vec<String> = DEFAULT_ALLOWED_HOSTS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    // The public name of the resource is, by definition, a Host clients use.
    if let Some(host) = url::Url::parse(resource_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

fn parse_http_url(name: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value.trim())
        .map_err(|e| ConfigError::new(name, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(name, "must be an absolute http(s) URL"));
    }
    Ok(url)
}

fn parse_resource(name: &str, value: &str) -> Result<String, ConfigError> {
    parse_http_url(name, value)?;
    auth::uri::canonical_resource(value.trim()).map_err(|e| ConfigError::new(name, e.to_string()))
}

/// The issuer in the one spelling the oauth-server writes into `iss`, so
/// `http://localhost:8080/` here matches tokens from `http://LOCALHOST:8080`.
fn parse_issuer(name: &str, value: &str) -> Result<String, ConfigError> {
    normalize_issuer(value).map_err(|e| ConfigError::new(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_add_the_public_resource_host() {
        let c = Config::new("https://mcp.example.com/mcp", "https://auth.example.com").unwrap();
        assert_eq!(
            c.allowed_hosts,
            vec!["localhost", "127.0.0.1", "::1", "mcp.example.com"]
        );
        let c = Config::new("http://localhost:8000/mcp", "http://localhost:8080").unwrap();
        assert_eq!(c.allowed_hosts, vec!["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn issuer_is_normalised_like_the_oauth_server_writes_it() {
        for spelling in [
            "http://localhost:8080/",
            "http://LOCALHOST:8080",
            "http://localhost:8080",
        ] {
            let c = Config::new("http://localhost:8000/mcp", spelling).unwrap();
            assert_eq!(c.issuer, "http://localhost:8080", "{spelling}");
        }
        let e = Config::new("http://localhost:8000/mcp", "http://auth.example.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_ISSUER: must use https (http is only allowed for localhost)"
        );
    }

    #[test]
    fn rejects_bad_urls_naming_the_variable() {
        let e = Config::new("ftp://x/mcp", "http://localhost:8080").unwrap_err();
        assert_eq!(e.var, "MCP_RESOURCE_URL");
        let e = Config::new("http://localhost:8000/mcp", "http://localhost:8080?x=1").unwrap_err();
        assert_eq!(e.var, "OAUTH_ISSUER");
        let e = Config::new("not a url", "http://localhost:8080").unwrap_err();
        assert_eq!(e.var, "MCP_RESOURCE_URL");
    }
}

/// Every environment variable `mcp-server` reads, with its default and
/// meaning: the single source of `mcp-server --help` (the test below keeps it
/// in step with [`Config::from_env`]).
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar::new("MCP_BIND", "127.0.0.1:8000", "listen address"),
    EnvVar::new(
        "MCP_METRICS_BIND",
        "127.0.0.1:9102",
        "Prometheus `GET /metrics` listener (separate from the API); empty turns it off",
    ),
    EnvVar::new(
        "MCP_RESOURCE_URL",
        "http://localhost:8000/mcp",
        "public canonical URI of this resource: the required `aud`, the RFC 9728 `resource`",
    ),
    EnvVar::new(
        "OAUTH_ISSUER",
        "http://localhost:8080",
        "the authorization server, the required `iss`: https (http only on loopback), \
         normalised as the oauth-server writes it (http://LOCALHOST:8080/ = http://localhost:8080)",
    ),
    EnvVar::new(
        "OAUTH_JWKS_URL",
        "discovered from the issuer's RFC 8414 metadata",
        "where verification keys come from",
    ),
    EnvVar::new(
        "MCP_ALLOWED_HOSTS",
        "localhost,127.0.0.1,::1 and the host of MCP_RESOURCE_URL",
        "Host allow-list (`host` = any port, `host:port` = that port)",
    ),
    EnvVar::new(
        "MCP_ALLOWED_ORIGINS",
        "http(s)://localhost:*, 127.0.0.1:*, [::1]:*",
        "Origin allow-list for browsers (`:*` = any port); requests without Origin pass",
    ),
    EnvVar::new(
        "REDIS_URL",
        "",
        "shared revocation denylist (written by oauth-server) and rate limiter; \
         unset = no shared denylist, in-memory limiter",
    ),
    EnvVar::new(
        "REDIS_CLUSTER_NODES",
        "",
        "seed nodes of a Redis Cluster (redis://host:port, comma-separated) for the same \
         denylist and limiter; set = cluster mode and REDIS_URL is not used",
    ),
    EnvVar::new(
        "REDIS_TIMEOUT_MS",
        "250",
        "connect/command timeout of the Redis connection in ms, 1 to 60000",
    ),
    EnvVar::new(
        "RATE_LIMIT_PER_MINUTE",
        "60",
        "per-client budget `rl:{client_id}` (shared by replicas through Redis), 1 to 60000000",
    ),
    EnvVar::new(
        "RATE_LIMIT_BURST",
        "10",
        "units a client may spend at once, 1 to 1000000",
    ),
    EnvVar::new(
        "RATE_LIMIT_TOOL_CALL_COST",
        "2",
        "units a tools/call costs (other requests cost 1), 1 to RATE_LIMIT_BURST",
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
        "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE",
        "30",
        "failed authentications per IP (`rl:ip:{addr}`, in-process) before that address \
         gets 429 without its token being looked at",
    ),
    EnvVar::new(
        "RATE_LIMIT_AUTH_FAILURES_BURST",
        "10",
        "burst of that budget",
    ),
    EnvVar::new(
        "TRUSTED_PROXIES",
        "",
        "comma-separated CIDRs/addresses whose X-Forwarded-For is believed (nginx)",
    ),
    EnvVar::new(
        "REVOCATION_FAILURE_MODE",
        "closed",
        "when the in-memory revocation set has been out of step with Redis for longer than \
         REVOCATION_MAX_STALENESS_SECS (or never synchronised): closed answers 503, open \
         accepts the (signature-checked, short-lived) token and audits mcp.revocation_unchecked",
    ),
    EnvVar::new(
        "REVOCATION_MAX_STALENESS_SECS",
        "900",
        "how long a replica serves from its in-memory revocation set while its Redis \
         subscription is down (default: the default access-token lifetime), 0 to 86400",
    ),
    EnvVar::new(
        "MCP_MAX_RESULT_BYTES",
        "524288",
        "largest tool result (its JSON) sent, 1024 to 16777216; a larger one becomes a tool \
         error (isError: true) that says so",
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
        "mcp-server",
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
                "mcp-server",
            ),
            Vec::<String>::new()
        );
    }
}
