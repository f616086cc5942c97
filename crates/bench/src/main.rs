//! `secure-mcp-bench`: measures the stack against its own physical ceilings
//! on the same machine, in the same run, and prints one table.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/secure-mcp-bench [--connections 32] [--duration 10] [--warmup 2] [SCENARIO...]
//! ```
//! Scenarios: `ceiling`, `token-rs256`, `token-es256`, `tools-call` (2026-07-28
//! stateless), `tools-call-session` (2025-11-25), `tools-call-redis` (default: all).
//! Every response is checked; any error makes the run exit non-zero.

mod ceiling;
mod load;
mod servers;
mod stack;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use auth::keys::Algorithm;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

struct Opts {
    connections: usize,
    duration: Duration,
    warmup: Duration,
    scenarios: Vec<String>,
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        connections: 32,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        scenarios: vec![],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--connections" | "-c" => o.connections = usize::try_from(num("--connections")?)?,
            "--duration" | "-d" => o.duration = Duration::from_secs(num("--duration")?),
            "--warmup" | "-w" => o.warmup = Duration::from_secs(num("--warmup")?),
            "-h" | "--help" => {
                println!(
                    "usage: secure-mcp-bench [--connections N] [--duration SECS] [--warmup SECS] [ceiling|token-rs256|token-es256|tools-call|tools-call-session|tools-call-redis ...]"
                );
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option {s}"),
            s => o.scenarios.push(s.to_owned()),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = [
            "ceiling",
            "token-rs256",
            "token-es256",
            "tools-call",
            "tools-call-session",
            "tools-call-redis",
        ]
        .map(String::from)
        .to_vec();
    }
    Ok(o)
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
    rss: Option<f64>,
    ceiling: Option<(String, f64)>,
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
        rss,
        ceiling,
    }
}

async fn token_scenario(
    alg: Algorithm,
    o: &Opts,
    sign_ceiling: Option<f64>,
) -> anyhow::Result<Row> {
    let stack = stack::start(alg.as_str(), false, false).await?;
    let addr = stack.oauth.addr;
    let auth_header = stack::basic_auth();
    let host = addr.to_string();
    let make: load::MakeRequest = Arc::new(move |_| {
        Request::post("/token")
            .header(http::header::HOST, &host)
            .header(http::header::AUTHORIZATION, &auth_header)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from_static(
                b"grant_type=client_credentials",
            )))
            .unwrap_or_default()
    });
    let check: load::Check = Arc::new(|status, body| {
        status == StatusCode::OK && stack::contains(body, b"\"access_token\"")
    });
    let stats = load::run(
        load::Target { addr, make, check },
        o.connections,
        o.warmup,
        o.duration,
    )
    .await?;
    report_first_error(&format!("token-{alg}"), &stats);
    let name = format!("token {alg} (client_secret_basic)");
    Ok(row(
        &name,
        &stats,
        stack.oauth.rss_mib(),
        sign_ceiling.map(|v| (format!("{alg} sign, all cores"), v)),
    ))
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
    redis: bool,
    o: &Opts,
    ceiling: Option<f64>,
) -> anyhow::Result<Row> {
    // The default signing algorithm (OAUTH_SIGNING_ALG=RS256): RSA verifies ~3x faster than ECDSA.
    let stack = stack::start("RS256", true, redis).await?;
    let mcp = stack.mcp.as_ref().context("mcp-server not started")?;
    let token = stack.token.as_deref().context("no token")?;
    let make = if session {
        stack::session_calls(mcp.addr, token, o.connections).await?
    } else {
        stack::stateless_call(mcp.addr, token)
    };
    let check: load::Check = Arc::new(stack::tool_ok);
    // One request by hand first: a misconfigured scenario fails loudly.
    let (status, body) = stack::one_request(mcp.addr, make(0)).await?;
    if !stack::tool_ok(status, &body) {
        bail!(
            "{name}: first call failed: {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
    }
    let stats = load::run(
        load::Target {
            addr: mcp.addr,
            make,
            check,
        },
        o.connections,
        o.warmup,
        o.duration,
    )
    .await?;
    report_first_error(name, &stats);
    Ok(row(
        name,
        &stats,
        mcp.rss_mib(),
        ceiling.map(|v| ("bare axum".to_owned(), v)),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "secure-mcp-bench: {} connections, {}s warm-up, {}s per scenario, {cores} cores",
        o.connections,
        o.warmup.as_secs(),
        o.duration.as_secs()
    );
    let mut rows = Vec::new();
    let mut sign_ceiling = std::collections::HashMap::new();
    let want = |s: &str| o.scenarios.iter().any(|x| x == s);
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
            load::Target { addr, make, check },
            o.connections,
            o.warmup,
            o.duration,
        )
        .await?;
        rows.push(row("ceiling: bare axum, 720 B body", &stats, None, None));
    }
    for (name, alg) in [
        ("token-rs256", Algorithm::RS256),
        ("token-es256", Algorithm::ES256),
    ] {
        if want(name) {
            rows.push(token_scenario(alg, &o, sign_ceiling.get(&alg).copied()).await?);
        }
    }
    let axum_ceiling = rows
        .first()
        .filter(|r| r.name.starts_with("ceiling"))
        .map(|r| r.rps);
    for (name, session, redis) in [
        ("tools-call", false, false),
        ("tools-call-session", true, false),
        ("tools-call-redis", false, true),
    ] {
        if want(name) {
            rows.push(tools_scenario(name, session, redis, &o, axum_ceiling).await?);
        }
    }
    print_table(&rows);
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        bail!("{errors} requests failed: the figures above are not valid");
    }
    Ok(())
}
