//! End-to-end tests of the TLS deployment (issue 6), started by `stack`:
//! real nginx from `nginx/secure-mcp.conf.template`, real TLS with a test
//! CA, real Redis, the real servers in-process, two MCP replicas; the built
//! binaries as child processes (`child_processes`); plus checks of the
//! deployment files (certificate script, docker-compose.yml, Dockerfile,
//! Taskfile) with real tools; and a real browser (headless Chromium over
//! WebDriver) signing in through the login and consent pages.
//!
//! `official_sdks` runs the pinned official MCP SDKs (TypeScript, Python)
//! against a stack. `redis_cluster` runs the stack on a real Redis Cluster
//! (3 masters + 3 replicas) and kills a master under load. `chaos` stops
//! Redis, the oauth-server and one replica under load.
//!
//! Missing nginx/redis-server/openssl/docker-compose/hadolint/task/chromium
//! (and the SDKs in `.tools/`) skip loudly, or fail when `SECURE_MCP_REQUIRE_SERVICES=1` (CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_login;
mod chaos;
mod child_processes;
mod clients;
mod deploy_files;
mod forwarded;
mod helpers;
mod issuer_spelling;
mod mcp;
mod metrics;
mod oauth;
mod official_sdks;
mod redis_cluster;
mod signin_tls;
mod tls;
mod tools;
mod traces;
mod upstreams;
