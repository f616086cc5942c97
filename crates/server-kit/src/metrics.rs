//! Prometheus metrics shared by both servers.
//!
//! Each server process builds one [`Registry`] at start-up (no global
//! recorder: two servers started side by side in one test process keep their
//! own counts), registers its families, and serves the OpenMetrics text on a
//! listener of its own ([`serve`]) — `OAUTH_METRICS_BIND` / `MCP_METRICS_BIND`,
//! loopback by default and never routed through nginx.
//!
//! Label sets are bounded by construction: routes are the server's own
//! route table (anything else is `other`), statuses are HTTP codes, reasons
//! and limiters are `&'static str` from the audit schema. Recording an
//! observation allocates nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The prefix of every metric name.
pub const PREFIX: &str = "securemcp";
/// What `/metrics` answers with (Prometheus reads OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 0.5 ms … ~4 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 14)
}

/// A new registry whose metric names start with `securemcp_`.
pub fn registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// A histogram family with [`latency_buckets`].
pub fn latency_family<L>() -> Family<L, Histogram>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(|| Histogram::new(latency_buckets()))
}

/// `route` + `status` of one answered request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

/// One route.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

/// `securemcp_http_requests_total{route,status}` and
/// `securemcp_http_request_duration_seconds{route}`.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RouteStatus, Counter>,
    duration: Family<RouteLabel, Histogram>,
    routes: &'static [&'static str],
}

impl HttpMetrics {
    /// Registers both families; `routes` is the server's route table (each
    /// matched path as axum spells it).
    pub fn register(registry: &mut Registry, routes: &'static [&'static str]) -> Self {
        let requests = Family::<RouteStatus, Counter>::default();
        let duration = latency_family::<RouteLabel>();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by route",
            duration.clone(),
        );
        Self {
            requests,
            duration,
            routes,
        }
    }

    /// The bounded label of a matched path.
    pub fn route(&self, matched: Option<&str>) -> &'static str {
        matched
            .and_then(|m| self.routes.iter().find(|r| **r == m).copied())
            .unwrap_or("other")
    }

    /// Records one answered request.
    pub fn observe(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        self.duration
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }
}

/// axum middleware: counts and times every request (outermost layer, so
/// refusals by inner layers are counted under their route too).
pub async fn track(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let route = metrics.route(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// [`track`] as a tower layer (the oauth-server's outermost): the same
/// count and timing, without `from_fn`'s per-request clone of the state and
/// of the whole inner router, and its two boxes (issue 15: these wrappers
/// were a few % of a token request). One box per request remains.
#[derive(Clone)]
pub struct TrackLayer {
    metrics: Arc<HttpMetrics>,
}

impl TrackLayer {
    pub fn new(metrics: Arc<HttpMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            metrics: self.metrics.clone(),
            inner,
        }
    }
}

/// The service of [`TrackLayer`].
#[derive(Clone)]
pub struct Track<S> {
    metrics: Arc<HttpMetrics>,
    inner: S,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = self.metrics.route(
            req.extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            metrics.observe(
                route,
                response.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok(response)
        })
    }
}

/// `limiter` + `decision` of one rate-limit check.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimiterDecision {
    pub limiter: &'static str,
    pub decision: &'static str,
}

/// `securemcp_ratelimit_decisions_total{limiter,decision}` (`allowed`,
/// `limited`; `degraded` when the shared limiter was unreachable and the
/// failure mode decided).
#[derive(Debug, Clone, Default)]
pub struct RateLimitMetrics {
    decisions: Family<LimiterDecision, Counter>,
}

impl RateLimitMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self::default();
        registry.register(
            "ratelimit_decisions",
            "Rate-limit checks, by limiter and decision",
            me.decisions.clone(),
        );
        me
    }

    pub fn decided(&self, limiter: &'static str, decision: &'static str) {
        self.decisions
            .get_or_create(&LimiterDecision { limiter, decision })
            .inc();
    }
}

impl RateLimitMetrics {
    /// Records one check's answer: `degraded` when the limiter failed
    /// (closed mode) or its shared back end was down and the failure mode
    /// answered, else `allowed` / `limited`.
    pub fn record<E>(
        &self,
        limiter: &'static str,
        result: &Result<ratelimit::Decision, E>,
        degraded: bool,
    ) {
        let decision = match result {
            Err(_) => "degraded",
            Ok(_) if degraded => "degraded",
            Ok(d) if d.allowed => "allowed",
            Ok(_) => "limited",
        };
        self.decided(limiter, decision);
    }
}

/// A [`Limiter`](ratelimit::Limiter) that counts every decision under one
/// `limiter` label (built by
/// [`redis::build_limiter_metered`](crate::redis::build_limiter_metered)).
#[derive(Debug)]
pub struct MeteredLimiter {
    inner: Arc<dyn ratelimit::Limiter>,
    /// The failure-mode wrapper when the limiter is shared through Redis:
    /// its state says whether the failure mode answered.
    resilient: Option<Arc<ratelimit::ResilientLimiter>>,
    metrics: RateLimitMetrics,
    limiter: &'static str,
}

impl MeteredLimiter {
    pub fn new(
        inner: Arc<dyn ratelimit::Limiter>,
        resilient: Option<Arc<ratelimit::ResilientLimiter>>,
        metrics: RateLimitMetrics,
        limiter: &'static str,
    ) -> Self {
        Self {
            inner,
            resilient,
            metrics,
            limiter,
        }
    }
}

#[async_trait::async_trait]
impl ratelimit::Limiter for MeteredLimiter {
    async fn check(
        &self,
        key: &str,
        cost: u32,
        policy: &ratelimit::Policy,
    ) -> Result<ratelimit::Decision, ratelimit::LimiterError> {
        let result = self.inner.check(key, cost, policy).await;
        let degraded = self.resilient.as_ref().is_some_and(|r| r.is_degraded());
        self.metrics.record(self.limiter, &result, degraded);
        result
    }
}

/// `outcome` of one JWKS refresh.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// `securemcp_jwks_refreshes_total{outcome}` (`ok` / `error`): every fetch
/// of the remote JWKS (start-up, periodic, unknown `kid`).
#[derive(Debug, Clone, Default)]
pub struct JwksMetrics {
    refreshes: Family<OutcomeLabel, Counter>,
}

impl JwksMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self::default();
        registry.register(
            "jwks_refreshes",
            "Fetches of the authorization server's JWKS, by outcome",
            me.refreshes.clone(),
        );
        me
    }

    pub fn refreshed(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.refreshes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// `securemcp_redis_up` (1 while Redis answers, 0 while it does not; only
/// registered when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set) and
/// `securemcp_redis_command_duration_seconds`. Given to
/// [`redis::connect_metered`](crate::redis::connect_metered): the gauge
/// follows the circuit breaker and every command, pipeline, script and
/// limiter check through the handle is timed (the prober's probes are not,
/// so counts follow traffic only; a limiter check's time includes its wait
/// for the batch ahead of it on the same key).
#[derive(Debug, Clone)]
pub struct RedisMetrics {
    up: Gauge,
    duration: Histogram,
}

impl RedisMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self {
            up: Gauge::default(),
            duration: Histogram::new(latency_buckets()),
        };
        registry.register(
            "redis_up",
            "1 while Redis answers, 0 while it does not",
            me.up.clone(),
        );
        registry.register(
            "redis_command_duration_seconds",
            "Time of each Redis command or script",
            me.duration.clone(),
        );
        me
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub fn observe(&self, seconds: f64) {
        self.duration.observe(seconds);
    }
}

/// The OpenMetrics text of `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(registry): State<Arc<Registry>>| async move {
                (
                    [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    encode(&registry),
                )
                    .into_response()
            }),
        )
        .with_state(registry);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener (`None`: metrics off).
pub async fn bind(addr: Option<SocketAddr>) -> std::io::Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_with_the_prefix_and_bounded_routes() {
        let mut registry = registry();
        let http = HttpMetrics::register(&mut registry, &["/token", "/mcp"]);
        let limits = RateLimitMetrics::register(&mut registry);
        assert_eq!(http.route(Some("/token")), "/token");
        assert_eq!(http.route(Some("/secret/../x")), "other");
        assert_eq!(http.route(None), "other");
        http.observe("/token", 200, 0.001);
        http.observe("/token", 200, 0.002);
        http.observe("/token", 401, 0.001);
        limits.decided("client", "allowed");
        let text = encode(&registry);
        assert!(
            text.contains(r#"securemcp_http_requests_total{route="/token",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"securemcp_http_requests_total{route="/token",status="401"} 1"#));
        assert!(
            text.contains(r#"securemcp_http_request_duration_seconds_count{route="/token"} 3"#)
        );
        assert!(text.contains(
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"} 1"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn metered_limiter_counts_allowed_and_limited_and_jwks_outcomes() {
        use ratelimit::{Limiter, Policy};
        let mut registry = registry();
        let limits = RateLimitMetrics::register(&mut registry);
        let jwks = JwksMetrics::register(&mut registry);
        let limiter = MeteredLimiter::new(
            Arc::new(ratelimit::MemoryLimiter::new()),
            None,
            limits.clone(),
            "client",
        );
        let policy = Policy::new(60, 2).unwrap();
        for _ in 0..3 {
            limiter.check("k", 1, &policy).await.unwrap();
        }
        limits.record::<()>("client", &Err(()), false);
        jwks.refreshed(true);
        jwks.refreshed(false);
        jwks.refreshed(true);
        let text = encode(&registry);
        for line in [
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="allowed"} 2"#,
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="limited"} 1"#,
            r#"securemcp_ratelimit_decisions_total{limiter="client",decision="degraded"} 1"#,
            r#"securemcp_jwks_refreshes_total{outcome="ok"} 2"#,
            r#"securemcp_jwks_refreshes_total{outcome="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
    }
}
