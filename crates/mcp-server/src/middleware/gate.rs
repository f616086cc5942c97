//! [`McpGate`]: the `/mcp` checks folded into one tower service in front of
//! rmcp (issue 15). It runs the steps of the other modules in this folder,
//! in the order `router.rs` lists, each a plain function:
//!
//! ```text
//! cors::mcp_preflight → host_origin::check → bearer::authenticate →
//! scope::require_scope → rate_limit::limit → session_binding::bind →
//! DirectCalls (a tools/call, stateless or in a session) or else rmcp
//! (then rate_limit::add_headers and cors::expose on whatever answer came back)
//! ```
//!
//! [`DirectCalls`] answers the one request that dominates traffic without
//! rmcp's per-request task, exactly as rmcp would (decision 0015).
//!
//! Why one service and not six `from_fn` layers: each `from_fn` layer cloned
//! its slice of the state (up to six `Arc`s) and the next service, and boxed
//! the rest of the stack, on every request. Here the states are built once,
//! a request costs one reference count and one boxed future, the body is
//! read once (by the scope step, and the rate limiter finds a refused
//! request's id in those same bytes) and parsed once before rmcp (the peek;
//! whether rmcp can read it is asked only when an answer depends on it:
//! [`scope::readable`]), and the [`Caller`] and [`Operation`] are passed
//! along instead of going through the request extensions (the caller still
//! goes there for rmcp's handlers).
//!
//! Every answer is what the layers gave: a refusal of a step is its
//! [`McpHttpError`] answer, the `RateLimit` headers go on every answer after
//! the limiter (the session step's 404 and rmcp's answers), and the CORS
//! headers on every answer to a listed origin.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service, ServiceExt as _};

use super::bearer::{self, BearerState};
use super::cors;
use super::host_origin::{self, HostOriginState};
use super::rate_limit::{self, RateLimitState};
use super::scope::{self, ScopeState};
use super::session_binding::{self, SessionBindingState};
use crate::direct::DirectCalls;
use crate::error::McpHttpError;
#[cfg(doc)]
use crate::policy::{Caller, Operation};
use crate::state::AppState;

/// What the steps need, taken from the [`AppState`] once.
struct Steps {
    host: HostOriginState,
    bearer: BearerState,
    scope: ScopeState,
    rate: RateLimitState,
    sessions: SessionBindingState,
    /// The direct `tools/call` path; `None` sends every request
    /// to the inner service (the equivalence test's reference).
    direct: Option<DirectCalls>,
}

/// The [`Layer`] that puts an [`McpGate`] in front of a service (rmcp's).
#[derive(Clone)]
pub struct McpGateLayer {
    steps: Arc<Steps>,
}

impl McpGateLayer {
    pub fn new(state: &AppState) -> Self {
        Self::with_direct_calls(state, true)
    }

    /// `direct`: whether `tools/call` requests are
    /// answered by [`DirectCalls`] (always, outside the equivalence test).
    pub(crate) fn with_direct_calls(state: &AppState, direct: bool) -> Self {
        Self {
            steps: Arc::new(Steps {
                host: HostOriginState::new(state),
                bearer: BearerState::new(state),
                scope: ScopeState::new(state),
                rate: RateLimitState::new(state),
                sessions: SessionBindingState::new(state),
                direct: direct.then(|| DirectCalls::new(state)),
            }),
        }
    }
}

impl<S> Layer<S> for McpGateLayer {
    type Service = McpGate<S>;

    fn layer(&self, inner: S) -> McpGate<S> {
        McpGate {
            steps: self.steps.clone(),
            inner,
        }
    }
}

/// The `/mcp` checks in front of `S` (see the module docs).
#[derive(Clone)]
pub struct McpGate<S> {
    steps: Arc<Steps>,
    inner: S,
}

impl<S> Service<Request> for McpGate<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is asked of the inner service when a request gets there
        // (`oneshot`): most requests are refused or served before it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let steps = self.steps.clone();
        let inner = self.inner.clone();
        Box::pin(async move { Ok(steps.serve(req, inner).await) })
    }
}

/// rmcp's answers to a POST that come before it parses the message: 406
/// (`Accept`) and 415 (the message did not deserialize).
fn refused_unread(resp: &Response) -> bool {
    matches!(
        resp.status(),
        http::StatusCode::NOT_ACCEPTABLE | http::StatusCode::UNSUPPORTED_MEDIA_TYPE
    )
}

impl Steps {
    /// Step 0, CORS, around the others.
    async fn serve<S>(&self, req: Request, inner: S) -> Response
    where
        S: Service<Request, Error = Infallible> + Send,
        S::Response: IntoResponse,
        S::Future: Send,
    {
        let policy = self.host.policy();
        if let Some(answer) = cors::mcp_preflight(policy, &req) {
            return answer.unwrap_or_else(IntoResponse::into_response);
        }
        let origin = policy.cors_origin(req.headers()).cloned();
        let mut resp = self
            .check_and_call(req, inner)
            .await
            .unwrap_or_else(IntoResponse::into_response);
        if let Some(origin) = origin {
            cors::expose(&mut resp, origin);
        }
        resp
    }

    /// Steps 1 to 5, then the inner service.
    async fn check_and_call<S>(&self, req: Request, inner: S) -> Result<Response, McpHttpError>
    where
        S: Service<Request, Error = Infallible> + Send,
        S::Response: IntoResponse,
        S::Future: Send,
    {
        host_origin::check(&self.host, req.uri(), req.headers())?;
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let caller = bearer::authenticate(&self.bearer, req.headers(), peer).await?;
        let scope::Scoped {
            mut req,
            op,
            body: read,
        } = scope::require_scope(&self.scope, &caller, req).await?;
        let principal = caller.principal();
        let decision = rate_limit::limit(
            &self.rate,
            &caller,
            &principal,
            &op,
            peer,
            &mut req,
            read.as_ref(),
        )
        .await?;
        req.extensions_mut().insert(caller.clone());
        let (caller, read) = (&caller, read.as_ref());
        let served = session_binding::bind(
            &self.sessions,
            caller,
            &principal,
            req,
            read,
            move |req, session_is_direct| async move {
                if let Some(direct) = &self.direct
                    && let Some(resp) = direct
                        .serve(caller, req.method(), req.headers(), read, session_is_direct)
                        .await
                {
                    return resp;
                }
                match inner.oneshot(req).await {
                    Ok(resp) => resp.into_response(),
                    Err(never) => match never {},
                }
            },
        )
        .await;
        let mut resp = match served {
            // rmcp refused the body before reading a message (406, 415): if
            // it cannot read it, the answer is the one for such a body.
            Ok(resp) if refused_unread(&resp) => {
                scope::readable(read)?;
                resp
            }
            Ok(resp) => resp,
            // The session step's own refusal comes after the limiter, and so
            // carries its headers; an unreadable body's answer does not.
            Err(refusal @ McpHttpError::SessionNotFound) => refusal.into_response(),
            Err(unreadable) => return Err(unreadable),
        };
        rate_limit::add_headers(&self.rate, &mut resp, &decision);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    //! The gate with real parts (a verifier over a generated key, the
    //! in-memory limiter and stores) in front of a recording service.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use auth::Verifier;
    use auth::claims::{AccessTokenClaims, Audience};
    use auth::jwk::JwkSet;
    use auth::keys::{Algorithm, SigningKey};
    use auth::scope::ScopeSet;
    use auth::verify::StaticKeys;
    use axum::body::Body;
    use bytes::Bytes;
    use http::{HeaderValue, Method, StatusCode, header};
    use http_body_util::BodyExt as _;
    use ratelimit::{MemoryLimiter, Policy, RateLimitConfig};
    use server_kit::ready::Readiness;
    use server_kit::store::MemoryStore;

    use super::*;
    use crate::audit::AuditLog;
    use crate::challenge::Challenges;
    use crate::host_policy::HostPolicy;
    use crate::limits::Limits;
    use crate::policy::{self, Caller};
    use crate::routes::protected_resource::{self, ProtectedResourceMetadata};
    use crate::state::AppStateParts;
    use crate::store::MemoryCustomerStore;

    const ISSUER: &str = "http://localhost:8080";
    const RESOURCE: &str = "http://localhost:8000/mcp";

    /// What the inner service saw of one request.
    #[derive(Debug)]
    struct Seen {
        body: Bytes,
        client_id: Option<String>,
    }

    struct Fixture {
        key: SigningKey,
        state: AppState,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    /// `burst`: the per-client budget (one unit per request).
    fn fixture(burst: u32) -> Fixture {
        fixture_with(burst, Arc::new(MemoryLimiter::new()), 1 << 20)
    }

    fn fixture_with(
        burst: u32,
        limiter: Arc<dyn ratelimit::Limiter>,
        max_result_bytes: usize,
    ) -> Fixture {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let keys = StaticKeys::new(&JwkSet {
            keys: vec![key.public_jwk().clone()],
        });
        let config = RateLimitConfig {
            policy: Policy::new(60, burst).unwrap(),
            tool_call_cost: 1,
            ..RateLimitConfig::default()
        };
        let state = AppState::new(AppStateParts {
            verifier: Arc::new(Verifier::new(ISSUER.into(), RESOURCE, Arc::new(keys))),
            revocations: Arc::new(MemoryStore::new()),
            customers: Arc::new(MemoryCustomerStore::seeded()),
            audit: Arc::new(AuditLog::default()),
            host_policy: HostPolicy::new(&["localhost".into()], &["http://localhost:*".into()])
                .unwrap(),
            challenges: Challenges::new(
                &protected_resource::url_for(RESOURCE),
                &policy::scopes_supported(),
            )
            .unwrap(),
            metadata: ProtectedResourceMetadata::new(RESOURCE, ISSUER),
            limits: Limits::new(limiter, &config, Policy::new(60, 5).unwrap()),
            revocation_fail_open: false,
            readiness: Readiness::new(None),
            max_result_bytes,
        });
        Fixture {
            key,
            state,
            seen: Arc::default(),
        }
    }

    impl Fixture {
        fn token(&self, client_id: &str, scope: &str) -> String {
            let now = auth::now_unix();
            let claims = AccessTokenClaims {
                iss: ISSUER.into(),
                sub: client_id.into(),
                aud: Audience::One(RESOURCE.into()),
                client_id: client_id.into(),
                scope: ScopeSet::parse(scope).unwrap(),
                iat: now,
                nbf: now,
                exp: now + 300,
                jti: format!("jti-{client_id}"),
            };
            auth::jwt::sign(&self.key, "at+jwt", &claims).unwrap()
        }

        /// The gate in front of a service that records what reached it and
        /// answers 200 (with a new session id when asked to open one).
        async fn send(&self, req: http::Request<Body>) -> Response {
            let seen = self.seen.clone();
            let inner = tower::service_fn(move |req: Request| {
                let seen = seen.clone();
                async move {
                    let is_post = req.method() == Method::POST;
                    let client_id = req
                        .extensions()
                        .get::<Caller>()
                        .map(|c| c.client_id().to_owned());
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let open = body.starts_with(b"{\"open\"");
                    // rmcp's answer to a POST body it cannot deserialize
                    // (the same serde_json call).
                    let unread = is_post && crate::jsonrpc::readable(&body).is_err();
                    seen.lock().unwrap().push(Seen { body, client_id });
                    if unread {
                        return Ok::<_, Infallible>(
                            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "fail to deserialize")
                                .into_response(),
                        );
                    }
                    let mut resp = StatusCode::OK.into_response();
                    if open {
                        resp.headers_mut()
                            .insert("mcp-session-id", HeaderValue::from_static("s-new"));
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let mut gate = McpGateLayer::new(&self.state).layer(inner);
            let mut req = req;
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            gate.call(req).await.unwrap()
        }

        fn served(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    /// A JSON POST on `/mcp` with `token`, if any.
    fn post(token: Option<&str>) -> http::request::Builder {
        let mut b = http::Request::post("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    fn call(tool: &str, id: u32) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    }

    /// A body that can be read only once, in two frames (as a slow client
    /// sends it).
    fn streamed(text: &str) -> Body {
        let (a, b) = text.split_at(text.len() / 2);
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::copy_from_slice(a.as_bytes())),
            Ok(Bytes::copy_from_slice(b.as_bytes())),
        ];
        Body::from_stream(futures::stream::iter(frames))
    }

    async fn text(resp: Response) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn refusals_come_in_the_order_of_the_table() {
        let f = fixture(10);
        let good = f.token("app", "customer:read");

        // 1 before 2: a foreign Host is refused whatever the token.
        let req = http::Request::post("/mcp")
            .header(header::HOST, "evil.example")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {good}"))
            .body(Body::from("not json"))
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(text(resp).await, "Forbidden: Host header is not allowed");

        // 2 before 3: no token, unreadable body and wrong type: 401.
        let req = http::Request::post("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("not json"))
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer resource_metadata=")
        );

        // 3: with a token, the body is read and checked (415, 400) ...
        let req = http::Request::post("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::AUTHORIZATION, format!("Bearer {good}"))
            .body(Body::from(call("get_customer_info", 1)))
            .unwrap();
        assert_eq!(
            f.send(req).await.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let req = post(Some(&good)).body(Body::from("{\"jsonrpc\":")).unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(text(resp).await.contains("-32700"));

        // ... and its scope (403) comes before the budget: a denied call is
        // not charged and gets no RateLimit headers.
        let req = post(Some(&good))
            .body(Body::from(call("create_support_ticket", 2)))
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(resp.headers().get("ratelimit").is_none());
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"scope="ticket:create""#)
        );
        assert_eq!(f.served(), 0, "nothing reached the inner service");
    }

    #[tokio::test]
    async fn the_body_is_read_once_and_reaches_the_inner_service_whole() {
        let f = fixture(1);
        let token = f.token("app", "customer:read");
        let body = call("get_customer_info", 7);

        let req = post(Some(&token)).body(streamed(&body)).unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["ratelimit"],
            r#""mcp";r=0;t=1"#,
            "the limiter's headers on the inner answer"
        );
        {
            let seen = f.seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].body, body.as_bytes());
            assert_eq!(seen[0].client_id.as_deref(), Some("app"));
        }

        // The budget (1) is spent: the 429 echoes the id. The body is a
        // stream that cannot be read twice, so the id comes from the bytes
        // the scope step read.
        let req = post(Some(&token)).body(streamed(&body)).unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        let answer: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], -32000);
        assert_eq!(f.served(), 1);
    }

    #[tokio::test]
    async fn later_answers_carry_the_limiter_and_cors_headers() {
        let f = fixture(10);
        let token = f.token("app", "customer:read");
        f.state.session_owners().insert("s-1", "other-client");

        // Another client's session: the request gets rmcp's 404, with the
        // RateLimit headers (it passed the limiter) and, for a listed
        // origin, the CORS headers.
        let req = http::Request::get("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::ORIGIN, "http://localhost:5173")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("mcp-session-id", "s-1")
            .body(Body::empty())
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(resp.headers().contains_key("ratelimit"));
        assert!(resp.headers().contains_key("ratelimit-policy"));
        assert_eq!(
            resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://localhost:5173"
        );
        assert_eq!(text(resp).await, "Not Found: Session not found");
        assert_eq!(f.served(), 0);

        // A refusal before the limiter has the CORS headers, not the limiter's.
        let req = http::Request::post("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::ORIGIN, "http://localhost:5173")
            .body(Body::empty())
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get("ratelimit").is_none());
        assert!(
            resp.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("WWW-Authenticate")
        );

        // A preflight is answered before any token.
        let req = http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/mcp")
            .header(header::HOST, "localhost:8000")
            .header(header::ORIGIN, "http://localhost:5173")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap();
        let resp = f.send(req).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(f.served(), 0);
    }

    #[tokio::test]
    async fn new_sessions_are_bound_to_their_opener() {
        let f = fixture(10);
        let token = f.token("app", "customer:read");
        // A GET without a session reaches the inner service, which answers
        // with a session id: it is recorded for the caller.
        let open = |token: &str| {
            http::Request::get("/mcp")
                .header(header::HOST, "localhost:8000")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(r#"{"open":1}"#))
                .unwrap()
        };
        assert_eq!(f.send(open(&token)).await.status(), StatusCode::OK);
        let foreign = f.token("intruder", "customer:read");
        let on_session = |token: &str| {
            http::Request::get("/mcp")
                .header(header::HOST, "localhost:8000")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header("mcp-session-id", "s-new")
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(
            f.send(on_session(&foreign)).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(f.send(on_session(&token)).await.status(), StatusCode::OK);
        assert_eq!(f.served(), 2);
        let refused: Vec<_> = f
            .state
            .audit()
            .recent(10)
            .into_iter()
            .filter(|e| e.event == crate::audit::names::SESSION_REFUSED)
            .filter_map(|e| e.client_id.map(|c| c.into_owned()))
            .collect();
        assert_eq!(refused, ["intruder"]);
    }

    /// A 400 with the parse error (`id` null) and no RateLimit headers.
    async fn expect_parse_error(resp: Response) {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get("ratelimit").is_none());
        let answer: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: request body is not valid JSON"}})
        );
    }

    /// JSON the peek classifies but rmcp cannot read (a number out of
    /// `f64` range): the answer is the parse error whichever step would
    /// refuse it, as when every body was checked before the scope.
    #[tokio::test]
    async fn a_body_rmcp_cannot_read_is_answered_as_such_before_any_refusal() {
        let bad = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"n":1e400}}}}}}"#
            )
        };
        let f = fixture(1);
        let token = f.token("app", "customer:read");
        let send = |body: String, session: Option<&'static str>| {
            let mut b = post(Some(&token));
            if let Some(s) = session {
                b = b.header("mcp-session-id", s);
            }
            f.send(b.body(Body::from(body)).unwrap())
        };
        // Instead of the 403 of a tool outside the token's scope.
        expect_parse_error(send(bad("create_support_ticket"), None).await).await;
        // Where nothing refuses it first, rmcp does (415), and the answer is
        // the same; the limiter has counted it (burst 1: now spent).
        expect_parse_error(send(bad("get_customer_info"), None).await).await;
        assert_eq!(f.served(), 1);
        // Instead of the 429 of a spent budget...
        expect_parse_error(send(bad("get_customer_info"), None).await).await;
        let good = call("get_customer_info", 5);
        assert_eq!(
            send(good, None).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        // ... and of the 404 of another client's session.
        let f2 = fixture(10);
        f2.state.session_owners().insert("s-1", "other-client");
        let token2 = f2.token("app", "customer:read");
        let req = post(Some(&token2))
            .header("mcp-session-id", "s-1")
            .body(Body::from(bad("get_customer_info")))
            .unwrap();
        expect_parse_error(f2.send(req).await).await;

        // None of them is a scope, rate-limit or session event (the one
        // event is the good call's 429).
        let events = |state: &AppState| -> Vec<&str> {
            state
                .audit()
                .recent(10)
                .into_iter()
                .map(|e| e.event)
                .collect()
        };
        assert_eq!(events(&f.state), ["ratelimit.limited"]);
        assert!(events(&f2.state).is_empty());
    }

    /// The gate in front of rmcp itself, with (`direct`) or without the
    /// direct `tools/call` path; a limiter on a stopped clock, so both see
    /// the same `RateLimit` headers.
    fn real_gate(direct: bool) -> (Fixture, McpGate<Counted>, Arc<AtomicUsize>) {
        let clock = Arc::new(ratelimit::ManualClock::new(std::time::Duration::from_secs(
            1,
        )));
        let limiter = Arc::new(MemoryLimiter::with_clock(clock));
        // Small enough that 50 customers are over it, large enough for one.
        let f = fixture_with(1000, limiter, 700);
        let mcp = crate::mcp::service(
            f.state.clone(),
            &["localhost".into()],
            &["http://localhost:*".into()],
            tokio_util::sync::CancellationToken::new(),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = Counted {
            inner: mcp,
            calls: calls.clone(),
        };
        let gate = McpGateLayer::with_direct_calls(&f.state, direct).layer(inner);
        (f, gate, calls)
    }

    /// rmcp, counting the requests that reach it.
    #[derive(Clone)]
    struct Counted {
        inner: crate::mcp::McpService,
        calls: Arc<AtomicUsize>,
    }

    impl Service<Request> for Counted {
        type Response = <crate::mcp::McpService as Service<Request>>::Response;
        type Error = Infallible;
        type Future = <crate::mcp::McpService as Service<Request>>::Future;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.call(req)
        }
    }

    /// One row of the equivalence table: the headers and body of a POST.
    struct Row {
        what: &'static str,
        headers: Vec<(&'static str, String)>,
        body: String,
    }

    const V: &str = "2026-07-28";

    /// A 2026-07-28 `tools/call` body with `id` (JSON) and `meta` (JSON).
    fn body_2026(id: &str, tool: &str, args: &str, meta: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args},"_meta":{meta}}}}}"#
        )
    }

    const META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}"#;

    /// The headers a 2026-07-28 client sends for `tool`.
    fn std_headers(tool: &str) -> Vec<(&'static str, String)> {
        vec![
            ("accept", "application/json, text/event-stream".into()),
            ("mcp-protocol-version", V.into()),
            ("mcp-method", "tools/call".into()),
            ("mcp-name", tool.into()),
        ]
    }

    fn row(what: &'static str, tool: &str, args: &str) -> Row {
        Row {
            what,
            headers: std_headers(tool),
            body: body_2026("1", tool, args, META),
        }
    }

    /// For [`with_headers`]: `name` set to `value` (once).
    fn set(name: &'static str, value: &str) -> impl FnOnce(&mut Vec<(&'static str, String)>) {
        let value = value.to_owned();
        move |h| {
            h.retain(|(k, _)| *k != name);
            h.push((name, value));
        }
    }

    fn with_headers(mut r: Row, f: impl FnOnce(&mut Vec<(&'static str, String)>)) -> Row {
        f(&mut r.headers);
        r
    }

    /// `tools/call` cases both wires' tables start with: (what, tool, arguments).
    const TOOL_CASES: [(&str, &str, &str); 10] = [
        (
            "get_customer_info",
            "get_customer_info",
            r#"{"customer_id":"12345"}"#,
        ),
        (
            "get_recent_customers",
            "get_recent_customers",
            r#"{"limit":1}"#,
        ),
        (
            "calculate_account_value",
            "calculate_account_value",
            r#"{"customer_id":"12345","amounts":[1.5,2,1e3]}"#,
        ),
        (
            "create_support_ticket",
            "create_support_ticket",
            r#"{"customer_id":"12345","subject":"s","description":"d","priority":"high"}"#,
        ),
        (
            "a tool error (no such customer)",
            "get_customer_info",
            r#"{"customer_id":"99999"}"#,
        ),
        (
            "invalid input",
            "get_customer_info",
            r#"{"customer_id":"x"}"#,
        ),
        (
            "an unknown argument",
            "get_customer_info",
            r#"{"customer_id":"12345","extra":1}"#,
        ),
        ("missing arguments", "create_support_ticket", "{}"),
        (
            "over the result cap",
            "get_recent_customers",
            r#"{"limit":50}"#,
        ),
        ("an unknown tool", "no_such_tool", "{}"),
    ];

    /// The rows a direct path takes: every [`TOOL_CASES`] row, then `more`.
    fn every_tool_case_and<const N: usize>(more: [&'static str; N]) -> Vec<&'static str> {
        TOOL_CASES.iter().map(|case| case.0).chain(more).collect()
    }

    fn table() -> Vec<Row> {
        let drop_header = |name: &'static str| {
            move |h: &mut Vec<(&'static str, String)>| h.retain(|(k, _)| *k != name)
        };
        let info = r#"{"customer_id":"12345"}"#;
        let mut rows: Vec<Row> = TOOL_CASES
            .iter()
            .map(|(what, tool, args)| row(what, tool, args))
            .collect();
        rows.extend([
            Row {
                what: "no arguments at all",
                headers: std_headers("get_recent_customers"),
                body: format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_recent_customers","_meta":{META}}}}}"#
                ),
            },
            row("arguments not an object", "get_customer_info", "[1]"),
            Row {
                what: "string id",
                headers: std_headers("get_customer_info"),
                body: body_2026(r#""abc-1""#, "get_customer_info", info, META),
            },
            Row {
                what: "id 0",
                headers: std_headers("get_customer_info"),
                body: body_2026("0", "get_customer_info", info, META),
            },
            Row {
                what: "a large id",
                headers: std_headers("get_customer_info"),
                body: body_2026("9007199254740993", "get_customer_info", info, META),
            },
            Row {
                what: "a negative id",
                headers: std_headers("get_customer_info"),
                body: body_2026("-1", "get_customer_info", info, META),
            },
            Row {
                what: "a null id",
                headers: std_headers("get_customer_info"),
                body: body_2026("null", "get_customer_info", info, META),
            },
            Row {
                what: "a notification",
                headers: std_headers("get_customer_info"),
                body: format!(
                    r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"get_customer_info","arguments":{info},"_meta":{META}}}}}"#
                ),
            },
            with_headers(
                row("Mcp-Name missing", "get_customer_info", info),
                drop_header("mcp-name"),
            ),
            with_headers(
                row("Mcp-Name mismatched", "get_customer_info", info),
                set("mcp-name", "get_recent_customers"),
            ),
            with_headers(
                row("Mcp-Name Base64", "get_customer_info", info),
                set("mcp-name", "=?base64?Z2V0X2N1c3RvbWVyX2luZm8=?="),
            ),
            with_headers(row("Mcp-Name twice", "get_customer_info", info), |h| {
                h.push(("mcp-name", "get_customer_info".into()))
            }),
            with_headers(
                row("Mcp-Method missing", "get_customer_info", info),
                drop_header("mcp-method"),
            ),
            with_headers(
                row("Mcp-Method mismatched", "get_customer_info", info),
                set("mcp-method", "tools/list"),
            ),
            with_headers(
                row("Accept without SSE", "get_customer_info", info),
                set("accept", "application/json"),
            ),
            with_headers(
                row("Accept with q=0", "get_customer_info", info),
                set("accept", "application/json;q=0, text/event-stream"),
            ),
            with_headers(
                row("Accept with weights", "get_customer_info", info),
                set("accept", "application/json;q=0.9, text/event-stream"),
            ),
            with_headers(
                row("protocol header missing", "get_customer_info", info),
                drop_header("mcp-protocol-version"),
            ),
            with_headers(
                row("protocol header older", "get_customer_info", info),
                set("mcp-protocol-version", "2025-11-25"),
            ),
            with_headers(
                row("protocol header unknown", "get_customer_info", info),
                set("mcp-protocol-version", "2099-01-01"),
            ),
            Row {
                what: "no protocol version in _meta",
                headers: std_headers("get_customer_info"),
                body: body_2026(
                    "1",
                    "get_customer_info",
                    info,
                    r#"{"io.modelcontextprotocol/clientCapabilities":{}}"#,
                ),
            },
            Row {
                what: "no client capabilities in _meta",
                headers: std_headers("get_customer_info"),
                body: body_2026(
                    "1",
                    "get_customer_info",
                    info,
                    r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#,
                ),
            },
            Row {
                what: "an older version in _meta",
                headers: with_headers(
                    row("", "get_customer_info", info),
                    set("mcp-protocol-version", "2025-11-25"),
                )
                .headers,
                body: body_2026(
                    "1",
                    "get_customer_info",
                    info,
                    r#"{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}"#,
                ),
            },
            Row {
                what: "an unsupported version in both",
                headers: with_headers(
                    row("", "get_customer_info", info),
                    set("mcp-protocol-version", "2099-01-01"),
                )
                .headers,
                body: body_2026(
                    "1",
                    "get_customer_info",
                    info,
                    r#"{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}"#,
                ),
            },
            Row {
                what: "no _meta (a legacy stateless call)",
                headers: vec![("accept", "application/json, text/event-stream".into())],
                body: call("get_customer_info", 3),
            },
            with_headers(row("with a session id", "get_customer_info", info), |h| {
                h.push(("mcp-session-id", "nope".into()))
            }),
            Row {
                what: "tools/list",
                headers: vec![
                    ("accept", "application/json, text/event-stream".into()),
                    ("mcp-protocol-version", V.into()),
                    ("mcp-method", "tools/list".into()),
                ],
                body: format!(
                    r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{"_meta":{META}}}}}"#
                ),
            },
        ]);
        rows
    }

    async fn parts(resp: Response) -> (StatusCode, Vec<(String, Vec<u8>)>, String) {
        let status = resp.status();
        let mut headers: Vec<(String, Vec<u8>)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| *k != header::DATE)
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        headers.sort();
        (status, headers, text(resp).await)
    }

    /// The store stamps a new ticket with the wall clock (seconds): the two
    /// gates may straddle a second. Everything else is compared as sent.
    fn mask_created_at(body: &str) -> String {
        match body
            .find(r#"\"created_at\":"#)
            .or_else(|| body.find(r#""created_at":"#))
        {
            Some(at) => {
                let digits_from = at + body[at..].find(':').unwrap_or(0) + 1;
                let end = body[digits_from..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(body.len(), |n| digits_from + n);
                format!("{}0{}", &body[..digits_from], &body[end..])
            }
            None => body.to_owned(),
        }
    }

    /// What both equivalence tests assert of a row's two answers (direct
    /// path, rmcp) besides status and headers: the same JSON-RPC message
    /// (a ticket's `created_at` masked), the same number of audit events,
    /// and what the row says it tests.
    fn assert_same_message(what: &str, bodies: (&str, &str), events: (usize, usize)) {
        let (fast, slow) = bodies;
        assert_eq!(
            mask_created_at(&message_of(fast)),
            mask_created_at(&message_of(slow)),
            "message: {what}"
        );
        assert_eq!(events.0, events.1, "audit events: {what}");
        match what {
            "get_customer_info" => assert!(fast.contains(r#""isError":false"#), "{fast}"),
            "over the result cap" => assert!(fast.contains("too large to send"), "{fast}"),
            "an unknown tool" => assert!(fast.contains(r#""code":-32602"#), "{fast}"),
            _ => {}
        }
    }

    /// Issue 15: the direct path answers every request of the table as
    /// rmcp does — status, headers (but `Date`), body — and the requests it
    /// must not take reach rmcp.
    #[tokio::test]
    async fn the_direct_path_answers_as_rmcp_does() {
        let (fast, mut fast_gate, fast_rmcp) = real_gate(true);
        let (slow, mut slow_gate, slow_rmcp) = real_gate(false);
        let scopes = "customer:read account:calculate ticket:create";
        let (fast_token, slow_token) = (fast.token("app", scopes), slow.token("app", scopes));
        let mut taken = Vec::new();
        for row in table() {
            let send = |gate: &mut McpGate<Counted>, token: &str| {
                let mut b = post(Some(token));
                for (k, v) in &row.headers {
                    b = b.header(*k, v.as_str());
                }
                let mut req = b.body(Body::from(row.body.clone())).unwrap();
                req.extensions_mut()
                    .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
                gate.call(req)
            };
            let events = |f: &Fixture| f.state.audit().recent(1000).len();
            let before = (
                events(&fast),
                events(&slow),
                fast_rmcp.load(Ordering::SeqCst),
            );
            let a = parts(send(&mut fast_gate, &fast_token).await.unwrap()).await;
            let b = parts(send(&mut slow_gate, &slow_token).await.unwrap()).await;
            assert_eq!(a.0, b.0, "status: {}", row.what);
            assert_eq!(a.1, b.1, "headers: {}", row.what);
            assert_same_message(
                row.what,
                (&a.2, &b.2),
                (events(&fast) - before.0, events(&slow) - before.1),
            );
            if fast_rmcp.load(Ordering::SeqCst) == before.2 {
                taken.push(row.what);
            }
        }
        assert_eq!(slow_rmcp.load(Ordering::SeqCst), table().len());
        assert_eq!(
            taken,
            every_tool_case_and([
                "no arguments at all",
                "string id",
                "id 0",
                "a large id",
                "a negative id",
            ]),
            "the requests the direct path took (the others reached rmcp)"
        );
    }

    /// The JSON-RPC message of an answer: the body of a JSON answer, the
    /// one non-empty `data:` of an event stream (rmcp's session answers).
    fn message_of(body: &str) -> String {
        let data: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        match data.as_slice() {
            [] => body.to_owned(),
            [one] => (*one).to_owned(),
            more => panic!("more than one message: {more:?}"),
        }
    }

    /// Opens a 2025-11-25 session through `gate` (initialize, then the
    /// initialized notification) and returns its id.
    async fn open_session(gate: &mut McpGate<Counted>, token: &str) -> String {
        let send = |gate: &mut McpGate<Counted>, sid: Option<&str>, body: &str| {
            let mut b = post(Some(token))
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25");
            if let Some(sid) = sid {
                b = b.header("mcp-session-id", sid);
            }
            let mut req = b.body(Body::from(body.to_owned())).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            gate.call(req)
        };
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let resp = send(gate, None, init).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let sid = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = text(resp).await;
        let resp = send(
            gate,
            Some(&sid),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        sid
    }

    /// A 2025-11-25 `tools/call` body.
    fn body_session(id: &str, tool: &str, args: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
        )
    }

    /// The headers of a call in a 2025-11-25 session (`SID` is replaced by
    /// each gate's own session id).
    fn session_headers() -> Vec<(&'static str, String)> {
        vec![
            ("accept", "application/json, text/event-stream".into()),
            ("mcp-protocol-version", "2025-11-25".into()),
            ("mcp-session-id", "SID".into()),
        ]
    }

    fn session_row(what: &'static str, tool: &str, args: &str) -> Row {
        Row {
            what,
            headers: session_headers(),
            body: body_session("1", tool, args),
        }
    }

    fn session_table() -> Vec<Row> {
        let info = r#"{"customer_id":"12345"}"#;
        let mut rows: Vec<Row> = TOOL_CASES
            .iter()
            .map(|(what, tool, args)| session_row(what, tool, args))
            .collect();
        rows.extend([
            Row {
                what: "string id",
                headers: session_headers(),
                body: body_session(r#""abc-1""#, "get_customer_info", info),
            },
            with_headers(
                session_row("no protocol header", "get_customer_info", info),
                |h| h.retain(|(k, _)| *k != "mcp-protocol-version"),
            ),
            with_headers(
                session_row("protocol header 2025-06-18", "get_customer_info", info),
                set("mcp-protocol-version", "2025-06-18"),
            ),
            with_headers(
                session_row("protocol header 2026-07-28", "get_customer_info", info),
                set("mcp-protocol-version", V),
            ),
            with_headers(
                session_row("protocol header unknown", "get_customer_info", info),
                set("mcp-protocol-version", "2099-01-01"),
            ),
            with_headers(
                session_row("protocol header twice", "get_customer_info", info),
                |h| h.push(("mcp-protocol-version", "2025-11-25".into())),
            ),
            Row {
                what: "a version in _meta",
                headers: session_headers(),
                body: format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_customer_info","arguments":{info},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}}}}"#
                ),
            },
            Row {
                what: "a notification",
                headers: session_headers(),
                body: format!(
                    r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"get_customer_info","arguments":{info}}}}}"#
                ),
            },
            with_headers(
                session_row("Accept without SSE", "get_customer_info", info),
                set("accept", "application/json"),
            ),
            with_headers(
                session_row("an unknown session", "get_customer_info", info),
                set("mcp-session-id", "no-such-session"),
            ),
            Row {
                what: "tools/list",
                headers: session_headers(),
                body: r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.into(),
            },
        ]);
        rows
    }

    /// Issue 15: inside a 2025-11-25 session the direct path answers with
    /// rmcp's message and status (as JSON where rmcp streams it), takes
    /// exactly the rows it may, and leaves an ended session to rmcp.
    #[tokio::test]
    async fn the_direct_path_answers_session_calls_as_rmcp_does() {
        let (fast, mut fast_gate, fast_rmcp) = real_gate(true);
        let (slow, mut slow_gate, slow_rmcp) = real_gate(false);
        let scopes = "customer:read account:calculate ticket:create";
        let (fast_token, slow_token) = (fast.token("app", scopes), slow.token("app", scopes));
        let fast_sid = open_session(&mut fast_gate, &fast_token).await;
        let slow_sid = open_session(&mut slow_gate, &slow_token).await;
        let send = |gate: &mut McpGate<Counted>, token: &str, sid: &str, row: &Row| {
            let mut b = post(Some(token));
            for (k, v) in &row.headers {
                let v = if v == "SID" { sid } else { v.as_str() };
                b = b.header(*k, v);
            }
            let mut req = b.body(Body::from(row.body.clone())).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
            gate.call(req)
        };
        let events = |f: &Fixture| f.state.audit().recent(1000).len();
        let mut taken = Vec::new();
        let slow_before = slow_rmcp.load(Ordering::SeqCst);
        for row in session_table() {
            let before = (
                events(&fast),
                events(&slow),
                fast_rmcp.load(Ordering::SeqCst),
            );
            let a = parts(
                send(&mut fast_gate, &fast_token, &fast_sid, &row)
                    .await
                    .unwrap(),
            )
            .await;
            let b = parts(
                send(&mut slow_gate, &slow_token, &slow_sid, &row)
                    .await
                    .unwrap(),
            )
            .await;
            let direct = fast_rmcp.load(Ordering::SeqCst) == before.2;
            assert_eq!(a.0, b.0, "status: {}", row.what);
            let content_type = |h: &[(String, Vec<u8>)]| {
                h.iter()
                    .find(|(k, _)| k == "content-type")
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            if direct {
                taken.push(row.what);
                assert_eq!(content_type(&a.1).as_deref(), Some("application/json"));
                assert_eq!(
                    content_type(&b.1).as_deref(),
                    Some("text/event-stream"),
                    "{}",
                    row.what
                );
            } else {
                assert_eq!(a.1, b.1, "headers: {}", row.what);
            }
            assert_same_message(
                row.what,
                (&a.2, &b.2),
                (events(&fast) - before.0, events(&slow) - before.1),
            );
            if row.what == "an unknown session" {
                assert_eq!(a.0, StatusCode::NOT_FOUND);
            }
        }
        assert_eq!(
            slow_rmcp.load(Ordering::SeqCst) - slow_before,
            session_table().len()
        );
        assert_eq!(
            taken,
            every_tool_case_and([
                "string id",
                "no protocol header",
                "protocol header 2025-06-18",
            ]),
            "the requests the direct path took (the others reached rmcp)"
        );

        // Another principal's token on the session: the binding's 404,
        // never a direct answer.
        let other = fast.token("other-app", scopes);
        let row = session_row("", "get_customer_info", r#"{"customer_id":"12345"}"#);
        let before = fast_rmcp.load(Ordering::SeqCst);
        let resp = send(&mut fast_gate, &other, &fast_sid, &row).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(fast_rmcp.load(Ordering::SeqCst), before);

        // A session rmcp no longer holds (its worker ended) is rmcp's: 404.
        fast.state
            .rmcp_sessions()
            .sessions
            .write()
            .await
            .remove(fast_sid.as_str());
        let resp = send(&mut fast_gate, &fast_token, &fast_sid, &row)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(fast_rmcp.load(Ordering::SeqCst), before + 1);
    }
}
