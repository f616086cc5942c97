//! `secure-mcp-bench`: measures the stack against its own physical ceilings
//! on the same machine, in the same run, and prints one table.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/secure-mcp-bench [--connections 32] [--duration 10] [--warmup 2] [--metrics on|off] [SCENARIO...]
//! target/release/secure-mcp-bench --help   # scenarios and environment variables
//! ```
//! Scenarios: `ceiling` (JWT sign/verify in process, a bare axum handler, and
//! rmcp alone — the MCP framework with a trivial tool and none of our layers,
//! a child process like the servers and metered like them — under the same
//! `tools/call` requests), `token-rs256`, `token-es256`,
//! `token-dev-argon2` (RS256 tokens for the three dev clients of
//! `config/clients.toml`, whose secrets are argon2id), `tools-call` (2026-07-28
//! stateless), `tools-call-session` (2025-11-25), `tools-call-redis`,
//! `cluster` (stateless `tools/call` with the limiter on a 3-master Redis
//! Cluster the bench starts, `REDIS_CLUSTER_NODES`; it also prints the Redis
//! commands per call, from the masters' `INFO commandstats`), and
//! `tls-token` / `tls-tools-call` (`tls` = both): the token endpoint (RS256)
//! and stateless `tools/call` through nginx with real TLS, in the deployment's
//! shape (the nginx template, one oauth-server, two mcp-server replicas; needs
//! nginx installed), and `sign-in`: sequential sign-ins at `/authorize`
//! (login + consent → code) and failed logins, a wrong password against an
//! unknown user, to show they cost the same. Default: all.
//! Every response is checked; any error makes the run exit non-zero.
//! `--metrics on` (the default, as the servers ship) gives each server a
//! Prometheus listener on a free loopback port and scrapes it after the load
//! (the server must have counted every completed request); `--metrics off`
//! starts them with `OAUTH_METRICS_BIND=` / `MCP_METRICS_BIND=` empty, to
//! price the counting (BENCHMARKS.md, issue 14).

mod ceiling;
mod cpu;
mod load;
mod signin;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auth::keys::Algorithm;
use bytes::Bytes;
use clap::Parser;
use clap::builder::PossibleValuesParser;
use http::{Request, StatusCode};
use http_body_util::Full;
use server_kit::cli::EnvVar;

/// Every scenario name the command line accepts (`tls` = both `tls-*`).
const SCENARIOS: &[&str] = &[
    "ceiling",
    "token-rs256",
    "token-es256",
    "token-dev-argon2",
    "tools-call",
    "tools-call-session",
    "tools-call-redis",
    "cluster",
    "tls-token",
    "tls-tools-call",
    "tls",
    "sign-in",
];

/// What runs without scenario arguments: all of them.
const DEFAULT_SCENARIOS: &[&str] = &[
    "ceiling",
    "token-rs256",
    "token-es256",
    "token-dev-argon2",
    "tools-call",
    "tools-call-session",
    "tools-call-redis",
    "cluster",
    "tls",
    "sign-in",
];

/// Every environment variable the bench reads (its own and testkit's, for
/// the Redis and nginx it starts), rendered by `--help`.
const ENV_VARS: &[EnvVar] = &[
    EnvVar::new(
        "BENCH_SERVER_LOG",
        "info",
        "RUST_LOG of the server processes (the servers' default); warn measures them \
         without their per-request audit lines (to price logging, not to publish)",
    ),
    EnvVar::new(
        testkit::redis::REDIS_SERVER_BIN_VAR,
        "redis-server on PATH",
        "the redis-server binary for tools-call-redis and cluster",
    ),
    EnvVar::new(
        testkit::redis_cluster::REDIS_CLI_BIN_VAR,
        "redis-cli on PATH",
        "the redis-cli binary that creates the cluster scenario's Redis Cluster",
    ),
    EnvVar::new(
        testkit::nginx::NGINX_BIN_VAR,
        "nginx on PATH, else /usr/sbin/nginx",
        "the nginx binary for the tls scenarios",
    ),
];

/// Measures the stack against its own physical ceilings on the same machine,
/// in the same run, and prints one table. Every response is checked; any
/// error makes the run exit non-zero.
#[derive(Debug, Parser)]
#[command(
    name = "secure-mcp-bench",
    after_help = SCENARIO_HELP,
    after_long_help = format!("{SCENARIO_HELP}\n\n{}", server_kit::cli::env_help("Environment:", ENV_VARS)),
)]
struct Opts {
    /// Concurrent keep-alive connections.
    #[arg(short, long, default_value_t = 32)]
    connections: usize,
    /// Seconds measured per scenario.
    #[arg(short, long = "duration", value_name = "SECS", default_value = "10", value_parser = secs)]
    duration: Duration,
    /// Seconds of load before measuring.
    #[arg(short, long = "warmup", value_name = "SECS", default_value = "2", value_parser = secs)]
    warmup: Duration,
    /// The servers' Prometheus metrics: on (as they ship; each scenario's
    /// server is scraped after the load to prove it counted) or off
    /// (OAUTH_METRICS_BIND= and MCP_METRICS_BIND= empty: nothing counted).
    #[arg(long, value_enum, default_value_t = Metrics::On)]
    metrics: Metrics,
    /// Scenarios to run (default: all).
    #[arg(value_name = "SCENARIO", value_parser = PossibleValuesParser::new(SCENARIOS))]
    scenarios: Vec<String>,
}

const SCENARIO_HELP: &str = "\
Scenarios: ceiling (JWT sign/verify in process, a bare axum handler, and rmcp alone
under the same tools/call requests), token-rs256, token-es256, token-dev-argon2
(RS256 tokens for the argon2id dev clients of config/clients.toml), tools-call (2026-07-28
stateless), tools-call-session (2025-11-25), tools-call-redis, cluster (stateless
tools/call, limiter on a 3-master Redis Cluster; needs redis-server and redis-cli;
prints Redis commands per call), and tls-token /
tls-tools-call (tls = both): through nginx with TLS in the deployment's shape
(needs nginx: apt-get install -y nginx), sign-in (sequential logins at /authorize:
wrong password vs unknown user, and full sign-ins). Build first:
cargo build --release --workspace";

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("expected whole seconds: {e}"))
}

/// `--metrics`: the servers' Prometheus listeners on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Metrics {
    On,
    Off,
}

fn parse_args() -> Opts {
    let mut o = Opts::parse();
    if o.scenarios.is_empty() {
        o.scenarios = DEFAULT_SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    o
}

/// One row of the report.
struct Row {
    name: String,
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    errors: u64,
    /// Keep-alive connections the server closed and the generator reopened.
    reconnects: u64,
    rss: Option<f64>,
    ceiling: Option<(String, f64)>,
    /// CPU µs per request of each process (measured window only).
    cpu: Vec<cpu::PerRequest>,
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server RSS MiB | vs ceiling |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let rss = r.rss.map_or("-".into(), |v| format!("{v:.1}"));
        let ceil = r.ceiling.as_ref().map_or("-".into(), |(n, v)| {
            format!("{:.0}% of {n} ({v:.0}/s)", 100.0 * r.rps / v)
        });
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {rss} | {ceil} |",
            r.name, r.rps, r.p50, r.p90, r.p99, r.max, r.errors
        );
    }
    let metered: Vec<&Row> = rows.iter().filter(|r| !r.cpu.is_empty()).collect();
    if !metered.is_empty() {
        println!(
            "\nCPU per request (µs, utime+stime over the measured window / requests completed):\n"
        );
        println!("| scenario | CPU µs per request |");
        println!("|---|---|");
        for r in metered {
            let cells: Vec<String> = r
                .cpu
                .iter()
                .map(|c| format!("{} {:.1}", c.name, c.micros))
                .collect();
            println!("| {} | {} |", r.name, cells.join(", "));
        }
    }
    for r in rows.iter().filter(|r| r.reconnects > 0) {
        println!(
            "\n{}: the server closed {} keep-alive connections after a complete response \
             (nginx does after keepalive_requests, 1000 by default); each was reopened and its \
             handshake counted in that request's latency.",
            r.name, r.reconnects
        );
    }
}

fn row(name: &str, s: &load::Stats, rss: Option<f64>, ceiling: Option<(String, f64)>) -> Row {
    let ms = |q: f64| s.hist.value_at_quantile(q) as f64 / 1000.0;
    Row {
        name: name.into(),
        rps: s.rps(),
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        max: s.hist.max() as f64 / 1000.0,
        errors: s.errors,
        reconnects: s.reconnects,
        rss,
        ceiling,
        cpu: Vec::new(),
    }
}

async fn token_scenario(
    alg: Algorithm,
    o: &Opts,
    sign_ceiling: Option<f64>,
) -> anyhow::Result<Row> {
    let stack = stack::start(alg, false, stack::Store::Memory).await?;
    let (make, check) = stack::token_requests(&stack.oauth().addr().to_string());
    token_load(
        &stack,
        make,
        check,
        &format!("token-{alg}"),
        &format!("token {alg} (client_secret_basic)"),
        sign_ceiling.map(|v| (format!("{alg} sign, all cores"), v)),
        o,
    )
    .await
}

/// `token-dev-argon2`: the token endpoint as the three dev clients (argon2id
/// secrets), round robin.
async fn dev_token_scenario(o: &Opts, ceiling: Option<f64>) -> anyhow::Result<Row> {
    let stack = stack::start_with_dev_clients().await?;
    let (make, check) = stack::dev_token_requests(&stack.oauth().addr().to_string());
    token_load(
        &stack,
        make,
        check,
        "token-dev-argon2",
        "token RS256, dev clients (argon2id secrets, 3 clients)",
        ceiling.map(|v| ("RS256 sign, all cores".to_owned(), v)),
        o,
    )
    .await
}

/// The load of a token scenario on `stack`'s oauth-server, metered; the
/// server must have counted every completed request, and its RSS is read
/// after the load.
async fn token_load(
    stack: &stack::Stack,
    make: load::MakeRequest,
    check: load::Check,
    scenario: &str,
    name: &str,
    ceiling: Option<(String, f64)>,
    o: &Opts,
) -> anyhow::Result<Row> {
    let addr = stack.oauth().addr();
    let meter = cpu::Meter::start(
        meter_subjects(stack.oauth().pid(), "oauth-server", None),
        o.warmup,
    );
    let stats = load::run(
        load::Target {
            addr,
            tls: None,
            make,
            check,
        },
        o.connections,
        o.warmup,
        o.duration,
    )
    .await?;
    report_first_error(scenario, &stats);
    stack::check_counted(scenario, "oauth-server", stack.metrics.oauth, stats.ok).await?;
    let mut r = row(name, &stats, stack.oauth().rss_mib(), ceiling);
    r.cpu = meter.finish(stats.ok + stats.errors).await?;
    Ok(r)
}

/// The server under load, the generator and (when there is one) Redis.
fn meter_subjects(pid: Option<u32>, server: &str, redis_url: Option<&str>) -> Vec<cpu::Subject> {
    let mut subjects: Vec<cpu::Subject> = cpu::Subject::process(server, pid).into_iter().collect();
    subjects.push(cpu::Subject::generator());
    if let Some(url) = redis_url {
        subjects.push(cpu::Subject::redis("redis", [url]));
    }
    subjects
}

fn report_first_error(name: &str, stats: &load::Stats) {
    if let Some(e) = &stats.first_error {
        eprintln!("{name}: first error: {e}");
    }
}

/// `tools/call` against a real mcp-server: stateless (2026-07-28) or
/// session (2025-11-25), in-memory or Redis limiter.
async fn tools_scenario(
    name: &str,
    session: bool,
    store: stack::Store,
    o: &Opts,
    ceiling: Option<(String, f64)>,
) -> anyhow::Result<Row> {
    // The default signing algorithm (OAUTH_SIGNING_ALG=RS256): RSA verifies ~3x faster than ECDSA.
    let stack = stack::start(Algorithm::RS256, true, store).await?;
    let mcp = stack.mcp().context("mcp-server not started")?;
    let token = stack.token.as_deref().context("no token")?;
    let make = if session {
        stack::session_calls(mcp.addr(), token, o.connections).await?
    } else {
        stack::stateless_call(mcp.addr(), token)
    };
    let check: load::Check = Arc::new(stack::tool_ok);
    // One request by hand first: a misconfigured scenario fails loudly.
    let (status, body) = stack::one_request(mcp.addr(), make(0)).await?;
    if !stack::tool_ok(status, &body) {
        bail!(
            "{name}: first call failed: {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
    }
    let mut subjects = meter_subjects(mcp.pid(), "mcp-server", stack.inner.redis_url());
    if let Some(cluster) = &stack.cluster {
        let urls = cluster.urls();
        subjects.push(cpu::Subject::redis(
            "redis cluster (all nodes)",
            urls.iter().map(String::as_str),
        ));
    }
    let meter = cpu::Meter::start(subjects, o.warmup);
    // The limiter's script runs in the measured window (read when it opens,
    // as the CPU meter does): fewer than one per call when a busy client's
    // checks go out in batches.
    let redis_urls = stack.redis_urls();
    let scripts_before = {
        let (urls, warmup) = (redis_urls.clone(), o.warmup);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50) + warmup).await;
            cpu::redis_command_calls(&urls, "evalsha").await
        })
    };
    let stats = load::run(
        load::Target {
            addr: mcp.addr(),
            tls: None,
            make: make.clone(),
            check,
        },
        o.connections,
        o.warmup,
        o.duration,
    )
    .await?;
    report_first_error(name, &stats);
    let rss = mcp.rss_mib();
    let cpu = meter.finish(stats.ok + stats.errors).await?;
    if !redis_urls.is_empty() {
        let before = scripts_before
            .await
            .context("script counter task panicked")??;
        let scripts = cpu::redis_command_calls(&redis_urls, "evalsha").await? - before;
        let calls = stats.ok + stats.errors;
        println!(
            "{name}: under load, {:.3} limiter script runs (EVALSHA) per tools/call: {:.1} \
             checks per run ({scripts} runs for {calls} calls in the measured window)",
            scripts as f64 / calls.max(1) as f64,
            calls as f64 / scripts.max(1) as f64,
        );
    }
    if let Some(cluster) = &stack.cluster {
        // Counted apart from the timed load, on a known number of calls.
        let before = cluster.command_calls();
        for i in 0..COUNTED_CALLS {
            let (status, body) = stack::one_request(mcp.addr(), make(i)).await?;
            if !stack::tool_ok(status, &body) {
                bail!("{name}: counted call {i} failed: {status}");
            }
        }
        print_commands_per_call(name, &before, &cluster.command_calls(), COUNTED_CALLS);
    }
    stack::check_counted(name, "mcp-server", stack.metrics.mcp, stats.ok).await?;
    let mut r = row(name, &stats, rss, ceiling);
    r.cpu = cpu;
    Ok(r)
}

/// Sequential calls after the load whose Redis commands are counted.
const COUNTED_CALLS: usize = 2000;

/// The Redis commands the cluster's masters ran per call over `calls`
/// sequential calls, by command: what one `tools/call` costs the cluster,
/// for capacity planning (background traffic — the probe's `PING` every
/// 5 s, the subscription — is inside the count, and negligible).
fn print_commands_per_call(
    name: &str,
    before: &[(String, u64)],
    after: &[(String, u64)],
    calls: usize,
) {
    let calls = calls.max(1) as f64;
    let mut total = 0u64;
    let mut parts = Vec::new();
    for (cmd, n) in after {
        let was = before.iter().find(|(c, _)| c == cmd).map_or(0, |(_, n)| *n);
        let delta = n.saturating_sub(was);
        // The diff's own INFO calls are not the load's.
        if delta > 0 && cmd != "info" {
            total += delta;
            parts.push(format!("{cmd} {:.3}", delta as f64 / calls));
        }
    }
    println!(
        "{name}: {:.3} Redis commands per tools/call on the cluster's masters over {calls} \
         sequential calls (one check at a time, so no batching: a client's worst case), as \
         INFO commandstats counts them (a script's own commands included: one EVALSHA round \
         trip runs TIME, GET, SET) ({})",
        total as f64 / calls,
        parts.join(", ")
    );
}

/// rmcp alone ([`ceiling::RmcpAlone`], a child process like the servers)
/// under the same requests as the `tools-call` scenarios: stateless, then
/// one session per connection; its CPU per call metered as theirs is.
async fn rmcp_ceilings(o: &Opts) -> anyhow::Result<[Row; 2]> {
    let rmcp = ceiling::RmcpAlone::spawn()?;
    let addr = rmcp.addr();
    // No authorization server here: rmcp ignores the header, but the
    // requests stay byte-for-byte the shape of the real scenario.
    let token = "x".repeat(720);
    let mut out = Vec::new();
    for session in [false, true] {
        let make = if session {
            stack::session_calls(addr, &token, o.connections).await?
        } else {
            stack::stateless_call(addr, &token)
        };
        let (status, body) = stack::one_request(addr, make(0)).await?;
        if !stack::tool_ok(status, &body) {
            bail!(
                "rmcp ceiling: first call failed: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(400)])
            );
        }
        let meter = cpu::Meter::start(
            meter_subjects(Some(rmcp.pid()), "rmcp alone", None),
            o.warmup,
        );
        let stats = load::run(
            load::Target {
                addr,
                tls: None,
                make,
                check: Arc::new(stack::tool_ok),
            },
            o.connections,
            o.warmup,
            o.duration,
        )
        .await?;
        report_first_error("rmcp ceiling", &stats);
        let name = if session {
            "ceiling: rmcp alone, tools/call in a 2025-11-25 session"
        } else {
            "ceiling: rmcp alone, stateless 2026-07-28 tools/call"
        };
        let mut r = row(name, &stats, None, None);
        r.cpu = meter.finish(stats.ok + stats.errors).await?;
        out.push(r);
    }
    let [a, b]: [Row; 2] = out
        .try_into()
        .map_err(|_| anyhow::anyhow!("two rows expected"))?;
    Ok([a, b])
}

/// One TLS scenario through `front` (a port of `stack`'s nginx): a checked
/// request by hand, then the load; errors are reported with nginx's log.
async fn via_nginx(
    stack: &stack::NginxStack,
    front: std::net::SocketAddr,
    name: &str,
    make: load::MakeRequest,
    check: load::Check,
    o: &Opts,
) -> anyhow::Result<load::Stats> {
    first_call(name, front, &stack.tls, &make, &check).await?;
    let stats = load::run(
        load::Target {
            addr: front,
            tls: Some(stack.tls.clone()),
            make,
            check,
        },
        o.connections,
        o.warmup,
        o.duration,
    )
    .await?;
    report_first_error(name, &stats);
    report_nginx_errors(name, &stats, stack.inner.nginx());
    Ok(stats)
}

/// `tls-token` and/or `tls-tools-call`: the same requests as `token-rs256`
/// and `tools-call`, but through nginx with TLS (one stack for both rows).
/// Each row's ceiling is its direct (no TLS, no nginx) figure of this run when
/// that scenario ran, else the in-process ceiling.
async fn tls_scenarios(
    token: bool,
    tools: bool,
    o: &Opts,
    direct: &Directs,
) -> anyhow::Result<Vec<Row>> {
    let stack = stack::start_behind_nginx(Algorithm::RS256).await?;
    println!(
        "\ntls: nginx (nginx/secure-mcp.conf.template) on {} (OAuth) and {} (MCP); negotiated: {}",
        stack.oauth_front,
        stack.mcp_front,
        stack.tls.describe(stack.mcp_front).await?
    );
    let mut rows = Vec::new();
    if token {
        let (make, check) = stack::token_requests(&stack.oauth_host);
        let name = "tls-token";
        let stats = via_nginx(&stack, stack.oauth_front, name, make, check, o).await?;
        let ceiling = match (direct.token_rs256, direct.rs256_sign) {
            (Some(v), _) => Some(("direct token-rs256 (no TLS)".to_owned(), v)),
            (None, Some(v)) => Some(("RS256 sign, all cores".to_owned(), v)),
            (None, None) => None,
        };
        rows.push(row(
            "tls-token RS256 via nginx TLS (client_secret_basic)",
            &stats,
            stack.inner.oauth().rss_mib(),
            ceiling,
        ));
    }
    if tools {
        let make = stack::stateless_call_to(&stack.mcp_host, &stack.token);
        let check: load::Check = Arc::new(stack::tool_ok);
        let name = "tls-tools-call";
        let stats = via_nginx(&stack, stack.mcp_front, name, make, check, o).await?;
        let ceiling = match (direct.tools_call, direct.bare_axum) {
            (Some(v), _) => Some(("direct tools-call (no TLS)".to_owned(), v)),
            (None, Some(v)) => Some(("bare axum".to_owned(), v)),
            (None, None) => None,
        };
        // Both replicas serve the load; the RSS target is per process, so
        // the larger of the two is reported.
        let rss = stack
            .inner
            .replicas()
            .iter()
            .filter_map(::stack::Server::rss_mib)
            .reduce(f64::max);
        rows.push(row(
            "tls-tools-call via nginx TLS (2026-07-28, 2 replicas, RSS of the larger)",
            &stats,
            rss,
            ceiling,
        ));
    }
    Ok(rows)
}

/// After a failed request, nginx's own account of it (its error log).
fn report_nginx_errors(name: &str, stats: &load::Stats, nginx: Option<&testkit::Nginx>) {
    let Some(nginx) = nginx.filter(|_| stats.errors > 0) else {
        return;
    };
    let log = nginx.error_log();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["[warn]", "[error]", "[crit]", "[alert]", "[emerg]"]
                .iter()
                .any(|lvl| l.contains(lvl))
        })
        .collect();
    for line in &problems[problems.len().saturating_sub(10)..] {
        eprintln!("{name}: nginx: {line}");
    }
}

/// Figures of this run that the TLS rows are compared with.
#[derive(Default)]
struct Directs {
    rs256_sign: Option<f64>,
    token_rs256: Option<f64>,
    bare_axum: Option<f64>,
    tools_call: Option<f64>,
}

/// One request by hand before the load: a misconfigured scenario fails
/// loudly with the server's answer.
async fn first_call(
    name: &str,
    addr: std::net::SocketAddr,
    tls: &load::Tls,
    make: &load::MakeRequest,
    check: &load::Check,
) -> anyhow::Result<()> {
    let (status, _, body) = stack::one_request_with_headers(addr, Some(tls), make(0)).await?;
    if !check(status, &body) {
        bail!(
            "{name}: first request failed: {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The child of the rmcp-alone ceiling (ceiling::RmcpAlone), not a bench run.
    if std::env::args().nth(1).as_deref() == Some(ceiling::SERVE_RMCP_ALONE) {
        return ceiling::serve_bare_rmcp().await;
    }
    let o = parse_args();
    stack::set_metrics(o.metrics == Metrics::On);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "secure-mcp-bench: {} connections, {}s warm-up, {}s per scenario, {cores} cores, metrics {}",
        o.connections,
        o.warmup.as_secs(),
        o.duration.as_secs(),
        if o.metrics == Metrics::On {
            "on"
        } else {
            "off"
        }
    );
    let mut rows = Vec::new();
    let mut sign_ceiling = std::collections::HashMap::new();
    let mut direct = Directs::default();
    // rmcp alone: [stateless, session] req/s, when `ceiling` ran.
    let mut rmcp_ceiling: [Option<f64>; 2] = [None, None];
    let want = |s: &str| {
        o.scenarios
            .iter()
            .any(|x| x == s || (x == "tls" && s.starts_with("tls-")))
    };
    if want("ceiling") {
        println!("\nIn-process JWT ceilings (pre-parsed keys, ops/s):");
        println!(
            "| alg | sign 1 core | sign {cores} cores | verify 1 core | verify {cores} cores |"
        );
        println!("|---|---:|---:|---:|---:|");
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let [s1, sn, v1, vn] = ceiling::sign_verify(alg, cores, Duration::from_millis(1500))?;
            println!("| {alg} | {s1:.0} | {sn:.0} | {v1:.0} | {vn:.0} |");
            sign_ceiling.insert(alg, sn);
        }
        let body = Bytes::from(vec![b'x'; 720]);
        let addr = ceiling::bare_axum(body, cores)?;
        let make: load::MakeRequest = Arc::new(move |_| {
            Request::post("/")
                .header(http::header::HOST, "localhost")
                .body(Full::new(Bytes::from_static(
                    b"grant_type=client_credentials",
                )))
                .unwrap_or_default()
        });
        let check: load::Check = Arc::new(|s, _| s == StatusCode::OK);
        let stats = load::run(
            load::Target {
                addr,
                tls: None,
                make,
                check,
            },
            o.connections,
            o.warmup,
            o.duration,
        )
        .await?;
        rows.push(row("ceiling: bare axum, 720 B body", &stats, None, None));
        let [stateless, session] = rmcp_ceilings(&o).await?;
        rmcp_ceiling = [Some(stateless.rps), Some(session.rps)];
        rows.push(stateless);
        rows.push(session);
    }
    for (name, alg) in [
        ("token-rs256", Algorithm::RS256),
        ("token-es256", Algorithm::ES256),
    ] {
        if want(name) {
            let r = token_scenario(alg, &o, sign_ceiling.get(&alg).copied()).await?;
            if alg == Algorithm::RS256 {
                direct.token_rs256 = Some(r.rps);
            }
            rows.push(r);
        }
    }
    if want("token-dev-argon2") {
        let ceiling = sign_ceiling.get(&Algorithm::RS256).copied();
        rows.push(dev_token_scenario(&o, ceiling).await?);
    }
    let axum_ceiling = rows
        .first()
        .filter(|r| r.name.starts_with("ceiling"))
        .map(|r| r.rps);
    for (name, session, store) in [
        ("tools-call", false, stack::Store::Memory),
        ("tools-call-session", true, stack::Store::Memory),
        ("tools-call-redis", false, stack::Store::Redis),
        ("cluster", false, stack::Store::Cluster),
    ] {
        if want(name) {
            // The same requests against rmcp with none of our layers is the
            // honest ceiling; bare axum when that was not measured.
            let ceiling = match rmcp_ceiling[usize::from(session)] {
                Some(v) => Some((
                    format!(
                        "rmcp alone, {}",
                        if session { "session" } else { "stateless" }
                    ),
                    v,
                )),
                None => axum_ceiling.map(|v| ("bare axum".to_owned(), v)),
            };
            let r = tools_scenario(name, session, store, &o, ceiling).await?;
            if name == "tools-call" {
                direct.tools_call = Some(r.rps);
            }
            rows.push(r);
        }
    }
    let (tls_token, tls_tools) = (want("tls-token"), want("tls-tools-call"));
    if tls_token || tls_tools {
        direct.rs256_sign = sign_ceiling.get(&Algorithm::RS256).copied();
        direct.bare_axum = axum_ceiling;
        rows.extend(tls_scenarios(tls_token, tls_tools, &o, &direct).await?);
    }
    if !rows.is_empty() {
        print_table(&rows);
    }
    if want("sign-in") {
        let rounds = 40;
        let (samples, rss) = signin::run(rounds).await?;
        println!(
            "\nSign-in at /authorize ({rounds} rounds, sequential; each attempt a fresh browser: GET + login POST):"
        );
        println!("| attempt | p50 ms | p90 ms | max ms |");
        println!("|---|---:|---:|---:|");
        for s in &samples {
            println!(
                "| {} | {:.2} | {:.2} | {:.2} |",
                s.name,
                s.quantile(0.5),
                s.quantile(0.9),
                s.quantile(1.0)
            );
        }
        if let [wrong, unknown, ..] = samples.as_slice() {
            let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MiB"));
            println!(
                "\nunknown user vs wrong password, p50: {:+.2} ms ({:+.1} %); oauth-server RSS after: {}, {} once its argon2 threads were idle for {} s",
                unknown.quantile(0.5) - wrong.quantile(0.5),
                100.0 * (unknown.quantile(0.5) / wrong.quantile(0.5) - 1.0),
                mib(rss.after),
                mib(rss.idle),
                oauth_server::argon::KEEP_IDLE.as_secs()
            );
        }
    }
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bail!("{errors} requests failed: the figures above are not valid");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        Opts::command().debug_assert();
    }

    #[test]
    fn keeps_its_options_and_scenarios() {
        let o = Opts::try_parse_from([
            "b",
            "-c",
            "8",
            "--duration",
            "3",
            "-w",
            "1",
            "tls",
            "ceiling",
        ])
        .unwrap();
        assert_eq!(o.connections, 8);
        assert_eq!(o.duration, Duration::from_secs(3));
        assert_eq!(o.warmup, Duration::from_secs(1));
        assert_eq!(o.scenarios, ["tls", "ceiling"]);
        assert_eq!(o.metrics, Metrics::On, "on by default, as the servers ship");
        let o = Opts::try_parse_from(["b", "--metrics", "off", "tools-call"]).unwrap();
        assert_eq!(o.metrics, Metrics::Off);
        assert!(Opts::try_parse_from(["b", "--metrics", "no"]).is_err());
        let o = Opts::try_parse_from(["b"]).unwrap();
        assert_eq!(
            (o.connections, o.duration.as_secs(), o.warmup.as_secs()),
            (32, 10, 2)
        );
        assert!(Opts::try_parse_from(["b", "nope"]).is_err());
        assert!(Opts::try_parse_from(["b", "-d", "x"]).is_err());
        assert!(DEFAULT_SCENARIOS.iter().all(|s| SCENARIOS.contains(s)));
    }
}
