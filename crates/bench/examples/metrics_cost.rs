//! The Prometheus work one `tools/call` adds with metrics on, alone in a
//! loop: what `--metrics on|off` cannot resolve on a noisy machine
//! (BENCHMARKS.md, issue 14). Per request, as mcp-server does it: the
//! `track` layer (route lookup, two clock reads, a `{route,status}` counter
//! and a `{route}` histogram), the tool's `{tool,outcome}` counter and
//! `{tool}` histogram (same shapes, here a second `HttpMetrics`), and two
//! rate-limit decisions. Token-cache counts are read at scrape time and cost
//! nothing per request.
//!
//! ```text
//! cargo run --release -p bench --example metrics_cost
//! ```

use std::time::Instant;

use server_kit::metrics::{HttpMetrics, RateLimitMetrics, registry};

const ROUTES: &[&str] = &["/mcp", "/health", "/ready"];
const TOOLS: &[&str] = &["get_customer_info"];
const PER_THREAD: u32 = 5_000_000;

fn one_request(http: &HttpMetrics, tool: &HttpMetrics, limits: &RateLimitMetrics) {
    let started = Instant::now();
    let route = http.route(std::hint::black_box(Some("/mcp")));
    let tool_started = Instant::now();
    limits.decided("client", "allowed");
    limits.decided("ip", "allowed");
    tool.observe(
        "get_customer_info",
        200,
        tool_started.elapsed().as_secs_f64(),
    );
    http.observe(route, 200, started.elapsed().as_secs_f64());
}

fn main() {
    for threads in [1u32, 2] {
        let mut r = registry();
        let http = HttpMetrics::register(&mut r, ROUTES);
        let tool = HttpMetrics::register(&mut r, TOOLS);
        let limits = RateLimitMetrics::register(&mut r);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        one_request(&http, &tool, &limits);
                    }
                });
            }
        });
        // Every thread ran the whole time: CPU = wall x threads.
        let cpu_ns = start.elapsed().as_nanos() as f64 * f64::from(threads);
        println!(
            "{threads} thread(s): {:.0} ns of CPU per request",
            cpu_ns / f64::from(PER_THREAD * threads)
        );
    }
}
