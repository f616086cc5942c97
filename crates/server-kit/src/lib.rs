//! What the oauth-server and the mcp-server do the same way, written once.
//!
//! `auth` holds the protocol rules and stays free of I/O; this crate is the
//! server plumbing around them. Neither client binary links it.
//!
//! # Layout
//! - [`cli`]: exit codes and the `--help` table of environment variables.
//! - [`config`]: `.env` loading, the env helpers and the one [`ConfigError`]
//!   every server variable is reported with (`VAR: what is wrong`).
//! - [`limits`]: the shared `RATE_LIMIT_*` / `TRUSTED_PROXIES` settings.
//! - [`redis`]: `REDIS_URL` / `REDIS_CLUSTER_NODES` / `REDIS_TIMEOUT_MS` and
//!   the one lazy Redis handle per process (one Redis or a Redis Cluster;
//!   background reconnect, circuit breaker) that the stores, the kv and the
//!   rate limiter share.
//! - [`store`]: revocation and replay stores (in memory and Redis); the
//!   revocation channel.
//! - [`ready`]: the `GET /ready` report (Redis, revocation subscription).
//! - [`revocations`]: a resource server's in-memory revoked set, fed by the
//!   revocation channel and rescanned on every reconnect.
//! - [`kv`]: an expiring key/value store with atomic take (memory and Redis)
//!   for the oauth-server's codes, refresh tokens, consents and registrations.
//! - [`jwks`]: the remote JWKS cache a resource server verifies with
//!   (discovery through RFC 8414, rate-limited refetch on unknown `kid`).
//! - [`telemetry`]: `LOG_FORMAT` / `RUST_LOG` tracing set-up (log lines
//!   written by a writer thread), OpenTelemetry traces.
//! - [`shutdown`]: the one SIGINT/SIGTERM future.
//! - [`serve`]: the one serve loop: header-read, request and idle timeouts,
//!   a connection cap (`HTTP_*`), an accept loop that survives fd exhaustion.
//! - [`healthcheck`]: the `healthcheck` subcommand's probe of `GET /health`.
//!
//! # Start-up of a server
//! `config::load_dotenv()` → the server's `Config::from_env()` (built from
//! these helpers, [`limits::rate_limit_from_env`] and
//! [`redis::RedisSettings::from_env`]) → `telemetry::init` (keep its guard) →
//! `App::build` (one [`redis::connect`] shared by every store and the
//! limiter; it returns at once and connects in the background) → serve
//! until [`shutdown::shutdown_signal`].

pub mod cli;
pub mod config;
pub mod healthcheck;
pub mod jwks;
pub mod kv;
pub mod limits;
pub mod metrics;
pub mod ready;
pub mod redis;
pub mod revocations;
pub mod serve;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use config::ConfigError;
