//! Dev-only fixtures shared by every crate's integration tests.
//!
//! Tests use *real* components (DESIGN.md, CONVENTIONS.md "Tests"): each test
//! that needs Redis starts its own `redis-server` on a free loopback port and
//! the fixture kills it on drop, so tests never share state or depend on a
//! service that happens to be running on the machine.
//!
//! # Layout
//!
//! - [`services`]: finding service binaries and deciding what a missing one
//!   means: a hard failure in CI (`SECURE_MCP_REQUIRE_SERVICES=1`), a loud
//!   skip elsewhere.
//! - [`ports`]: [`free_port`], an unused loopback TCP port.
//! - [`redis`]: [`RedisServer`], a child `redis-server` process that can be
//!   stopped and restarted on the same port to simulate an outage.
//! - [`redis_cluster`]: [`RedisCluster`], a real Redis Cluster (3 masters +
//!   3 replicas by default) whose nodes a test can kill to show a failover.
//!
//! - [`nginx`]: [`Nginx`], a child `nginx` configured from the deployment's
//!   own template (`nginx/secure-mcp.conf.template`) rendered with the
//!   test's ports, upstreams and certificates.
//! - [`pki`]: [`TestPki`], a throw-away CA and server certificate (rcgen);
//!   [`TestCa`], certificates for chosen names.
//! - [`chromedriver`]: [`ChromeDriver`], a child `chromedriver` driving
//!   headless `chromium` (Debian's `chromium-driver`), for browser tests.
//!
//! # Typical use
//!
//! ```no_run
//! let Some(redis) = testkit::RedisServer::start() else {
//!     return; // skipped loudly (or panicked when services are required)
//! };
//! let url = redis.url(); // redis://127.0.0.1:PORT
//! # drop(url);
//! ```

pub mod chromedriver;
pub mod llm;
pub mod nginx;
pub mod pki;
pub mod ports;
pub mod redis;
pub mod redis_cluster;
pub mod services;

pub use chromedriver::ChromeDriver;
pub use nginx::Nginx;
pub use pki::{TestCa, TestPki};
pub use ports::free_port;
pub use redis::RedisServer;
pub use redis_cluster::RedisCluster;
pub use services::{REQUIRE_SERVICES_VAR, services_required};
