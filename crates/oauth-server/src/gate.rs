//! [`BrowserGate`]: `/token` and `/revoke` as one tower service (issue 15):
//! CORS (any origin) → per-IP budget → the handler, the steps `router.rs`
//! lists, each a plain call.
//!
//! Why one service and not tower-http's `CorsLayer`, a `from_fn` per-IP
//! layer and axum's method router with extractors: per request those cloned
//! the state and the next service, boxed the rest of the stack once per
//! layer, built a header map and formatted the `vary` value again, and ran
//! three extractors (`State`, `Extension<ClientIp>`, the request). Here the
//! CORS values are made once, a request costs one reference count and one
//! boxed future, and the handler gets the state and the address as
//! arguments.
//!
//! Every answer is what the layers gave (tests/api/cors.rs pins them): a
//! preflight (`OPTIONS`) is answered before the budget with the preflight
//! headers and axum's `Allow`; any other request is charged to its IP, then
//! served (`POST`) or refused with axum's 405; the RateLimit headers go on
//! every answer after an allowed check, `access-control-allow-origin: *` and
//! `vary` on every answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::Service;

use crate::error::OAuthError;
use crate::router::{CORS_ALLOW_HEADERS, CORS_MAX_AGE};
use crate::routes;
use crate::state::AppState;

/// The endpoint behind a [`BrowserGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /token`.
    Token,
    /// `POST /revoke`.
    Revoke,
}

/// What every answer gets, made once.
struct Inner {
    state: AppState,
    endpoint: Endpoint,
    /// `vary`, as tower-http's `CorsLayer` writes it (its default list).
    vary: HeaderValue,
    /// The whole answer to a preflight but its (empty) body.
    preflight: HeaderMap,
}

/// `/token` or `/revoke` behind CORS and the per-IP budget (module docs).
#[derive(Clone)]
pub struct BrowserGate {
    inner: Arc<Inner>,
}

/// The only method the endpoints serve (axum's `Allow` on a 405 and on a
/// preflight).
const ALLOW: HeaderValue = HeaderValue::from_static("POST");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");

impl BrowserGate {
    pub fn new(state: AppState, endpoint: Endpoint) -> Self {
        let vary = HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        );
        let mut preflight = HeaderMap::new();
        preflight.insert(header::VARY, vary.clone());
        preflight.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
        preflight.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST,OPTIONS"),
        );
        let allow_headers = CORS_ALLOW_HEADERS
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if let Ok(v) = HeaderValue::from_str(&allow_headers) {
            preflight.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        preflight.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(CORS_MAX_AGE.as_secs()),
        );
        preflight.insert(header::ALLOW, ALLOW);
        Self {
            inner: Arc::new(Inner {
                state,
                endpoint,
                vary,
                preflight,
            }),
        }
    }
}

impl Service<Request> for BrowserGate {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.serve(req).await) })
    }
}

impl Inner {
    /// CORS around the budget and the handler.
    async fn serve(&self, req: Request) -> Response {
        if req.method() == Method::OPTIONS {
            let mut resp = Response::default();
            *resp.headers_mut() = self.preflight.clone();
            return resp;
        }
        let mut resp = self.limit_and_call(req).await;
        let h = resp.headers_mut();
        h.append(header::VARY, self.vary.clone());
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
        resp
    }

    /// The per-IP budget, then the handler (or the 405 of another method).
    async fn limit_and_call(&self, req: Request) -> Response {
        let state = &self.state;
        let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
        else {
            // The server always serves with connect info.
            return OAuthError::internal("client address", &"no connect info").into_response();
        };
        let ip: IpAddr = state.limits.trusted.client_ip(peer, req.headers());
        let decision = match state.limits.check_ip(ip).await {
            Ok(d) => d,
            Err(refused) => return refused,
        };
        let mut resp = if req.method() == Method::POST {
            match self.endpoint {
                Endpoint::Token => routes::token::token(state, req, ip).await,
                Endpoint::Revoke => routes::revoke::revoke(state, req, ip).await,
            }
        } else {
            (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, ALLOW)]).into_response()
        };
        state.limits.add_headers(&mut resp, &decision);
        resp
    }
}
