//! The oauth-server's Prometheus metrics (`OAUTH_METRICS_BIND`, served by
//! [`server_kit::metrics::serve`] on a listener of its own).
//!
//! Built once in `App::build` into [`OAuthMetrics`] (cheap handles in the
//! `AppState`, no globals). Label values are bounded and recording allocates
//! nothing: routes come from [`ROUTES`], grant types and authentication
//! methods are `&'static str`, and `client_id` is one of the static
//! registry's ids (an `Arc<str>` made at start-up) or `dynamic` for every
//! registered / metadata-document client. A failed authentication is never
//! labelled with the client id it claimed.
//!
//! | family | labels | meaning |
//! |---|---|---|
//! | `securemcp_http_requests_total` | route, status | requests answered |
//! | `securemcp_http_request_duration_seconds` | route | request → response head |
//! | `securemcp_tokens_issued_total` | grant_type, client_id | access tokens signed |
//! | `securemcp_client_auth_failures_total` | method | failed client authentications, by the method attempted |
//! | `securemcp_login_failures_total` | — | failed sign-ins at /authorize (`auth.login` failures) |
//! | `securemcp_signing_keys` | — | keys published in the JWKS |
//! | `securemcp_ratelimit_decisions_total` | limiter, decision | rate-limit checks |
//! | `securemcp_redis_up`, `securemcp_redis_command_duration_seconds` | — | only with `REDIS_URL` or `REDIS_CLUSTER_NODES` |

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use server_kit::metrics::{HttpMetrics, RateLimitMetrics, RedisMetrics};

use crate::clients;

/// Every route of [`crate::router::router`], as axum spells the matched
/// path (anything else is counted as `other`).
pub const ROUTES: &[&str] = &[
    "/token",
    "/revoke",
    "/register",
    "/introspect",
    "/authorize",
    "/.well-known/oauth-authorization-server",
    "/jwks",
    "/.well-known/jwks.json",
    "/health",
    "/ready",
];

/// The `client_id` label of every client not in the static registry.
pub const DYNAMIC_CLIENT: &str = "dynamic";

/// A `client_id` label value: shared, never copied per request.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ClientLabel(Arc<str>);

impl EncodeLabelValue for ClientLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant_type: &'static str,
    client_id: ClientLabel,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// Every metric of one oauth-server process.
pub struct OAuthMetrics {
    registry: Arc<Registry>,
    pub http: Arc<HttpMetrics>,
    pub ratelimit: RateLimitMetrics,
    /// Present when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set.
    pub redis: Option<RedisMetrics>,
    tokens: Family<TokenLabels, Counter>,
    auth_failures: Family<MethodLabel, Counter>,
    login_failures: Counter,
    signing_keys: Gauge,
    static_ids: HashSet<Arc<str>>,
    dynamic: ClientLabel,
}

impl OAuthMetrics {
    /// Registers every family; `registry` names the clients that get their
    /// own `client_id` label value.
    pub fn new(registry: &clients::Registry, with_redis: bool) -> Self {
        let mut r = server_kit::metrics::registry();
        let http = Arc::new(HttpMetrics::register(&mut r, ROUTES));
        let ratelimit = RateLimitMetrics::register(&mut r);
        let redis = with_redis.then(|| RedisMetrics::register(&mut r));
        let tokens = Family::<TokenLabels, Counter>::default();
        r.register(
            "tokens_issued",
            "Access tokens issued, by grant type and client (dynamic: registered or metadata-document clients)",
            tokens.clone(),
        );
        let auth_failures = Family::<MethodLabel, Counter>::default();
        r.register(
            "client_auth_failures",
            "Failed client authentications, by the method attempted",
            auth_failures.clone(),
        );
        let login_failures = Counter::default();
        r.register(
            "login_failures",
            "Failed sign-ins at /authorize",
            login_failures.clone(),
        );
        let signing_keys = Gauge::default();
        r.register(
            "signing_keys",
            "Signing keys currently published in the JWKS",
            signing_keys.clone(),
        );
        Self {
            registry: Arc::new(r),
            http,
            ratelimit,
            redis,
            tokens,
            auth_failures,
            login_failures,
            signing_keys,
            static_ids: registry.ids().map(Arc::from).collect(),
            dynamic: ClientLabel(Arc::from(DYNAMIC_CLIENT)),
        }
    }

    /// What the metrics listener serves.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// One access token signed for `client_id` by `grant_type`.
    pub fn token_issued(&self, grant_type: &'static str, client_id: &str) {
        let client_id = match self.static_ids.get(client_id) {
            Some(id) => ClientLabel(id.clone()),
            None => self.dynamic.clone(),
        };
        self.tokens
            .get_or_create(&TokenLabels {
                grant_type,
                client_id,
            })
            .inc();
    }

    /// One failed client authentication attempted with `method`.
    pub fn client_auth_failed(&self, method: &'static str) {
        self.auth_failures
            .get_or_create(&MethodLabel { method })
            .inc();
    }

    /// One failed sign-in at /authorize.
    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    /// The number of keys the JWKS publishes now.
    pub fn set_signing_keys(&self, n: usize) {
        self.signing_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
