//! Rate limiting for both servers (DESIGN.md §6): GCRA with one timestamp per
//! key, in memory or atomically in Redis, with a failure mode for when Redis
//! is down, the IETF `RateLimit` headers, and the client address to limit by.
//!
//! # Layout
//!
//! - [`policy`]: [`Policy`] (rate per minute + burst, validated) and
//!   [`Decision`] (allowed, remaining, retry/reset times).
//! - `gcra` (private): the algorithm as a pure function of (TAT, now, cost);
//!   `gcra.lua` is the same steps for Redis.
//! - [`limiter`]: the [`Limiter`] trait (`Arc<dyn Limiter>` in `AppState`)
//!   and [`LimiterError`].
//! - [`memory`]: [`MemoryLimiter`], sharded maps, no global lock; used alone
//!   without `REDIS_URL` and as the `local` fallback.
//! - [`redis`]: [`RedisLimiter`], one `EVALSHA` per check (the checks of a
//!   key that arrive while its call is in flight go out together as the
//!   next one; `batch`, private, tracks them), Redis server clock,
//!   keys expire when their bucket is full, reconnecting connection manager,
//!   short timeout.
//! - [`resilient`]: [`FailureMode`] and [`ResilientLimiter`] (Redis + what to
//!   do when it fails; logs `ratelimit.degraded` / `ratelimit.recovered`).
//! - [`headers`]: `Retry-After`, `RateLimit-Policy`, `RateLimit` values.
//! - [`mod@client_ip`]: [`TrustedProxies`] and [`client_ip()`]: the socket peer,
//!   or the `X-Forwarded-For` hop added by a trusted proxy.
//! - [`config`]: [`RateLimitConfig`] (read from `RATE_LIMIT_*` and `TRUSTED_PROXIES` by `server-kit`) and the limiter it builds.
//! - [`clock`]: the time seam ([`Clock`], [`ManualClock`] for tests).
//!
//! # Flow of a request (as the servers wire it)
//!
//! ```text
//! key = "rl:ip:{client_ip(peer, headers, &trusted)}"  (before auth, /token)
//!     | "rl:{client_id}"                               (after auth on /mcp)
//! cost = 1, or config.tool_call_cost for tools/call
//! match limiter.check(&key, cost, &policy).await {
//!     Ok(d) if d.allowed => headers::insert(..); handle the request
//!     Ok(d)              => headers::insert(..); 429
//!     Err(e)             => headers::insert_unavailable(..); 503  (closed mode)
//! }
//! ```
//!
//! # Semantics
//!
//! A key may spend `burst` units at once; one unit returns every
//! `60 s / rate_per_minute`; idle time never banks more than `burst`. A
//! denied request spends nothing and its `retry_after` is exact: waiting that
//! long is enough, a microsecond less is not. Both back ends run the same
//! steps on integer microseconds and return identical decisions (the test
//! suite runs against each and compares them).

mod batch;
pub mod client_ip;
pub mod clock;
pub mod config;
mod gcra;
pub mod headers;
pub mod limiter;
pub mod memory;
pub mod policy;
pub mod redis;
pub mod resilient;

pub use client_ip::{Cidr, CidrError, TrustedProxies, client_ip};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use config::RateLimitConfig;
pub use limiter::{Limiter, LimiterError};
pub use memory::MemoryLimiter;
pub use policy::{Decision, Policy, PolicyError};
pub use redis::{DEFAULT_REDIS_TIMEOUT, RedisLimiter};
pub use resilient::{DEFAULT_PROBE_INTERVAL, FailureMode, ParseFailureModeError, ResilientLimiter};
