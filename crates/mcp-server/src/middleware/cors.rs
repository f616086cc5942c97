//! CORS, for MCP hosts that run in a browser (MCP Inspector, web IDEs).
//!
//! - [`mcp_preflight`] and [`expose`], the outermost step on `/mcp`: a
//!   preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
//!   here, before the token is looked at, because browsers never send
//!   credentials on a preflight. Only origins listed in `MCP_ALLOWED_ORIGINS`
//!   get 204; any other origin (and every origin when the list is empty) gets
//!   the 403 that the [`host_origin`](super::host_origin) step gives a
//!   refused origin, and no CORS header. Every other answer to a listed
//!   origin — the later steps' 401/403/429/503 included, so a browser host can read the challenge and
//!   the rate-limit headers — names that origin and exposes the headers an MCP
//!   client needs.
//! - [`public`], on the protected-resource metadata documents: any origin,
//!   `*`. They are public, and a browser fetches them before it knows
//!   anything about the server.
//!
//! No `Access-Control-Allow-Credentials`: MCP sends bearer tokens, not
//! cookies, so no answer ever needs the browser's ambient credentials.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::McpHttpError;
use crate::host_policy::{HostPolicy, Refusal};

/// Methods `/mcp` serves (the Streamable HTTP transport) and the preflight itself.
pub const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// Request headers a browser host may send, lowercase (the Fetch spec
/// compares them case-insensitively): the bearer token, the transport's
/// headers, and SEP-2243's `Mcp-Method` / `Mcp-Name`.
pub const ALLOW_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "accept",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    "mcp-method",
    "mcp-name",
];

/// Response headers a browser host must read: the challenge (discovery
/// starts there), the session id, the negotiated version, and the
/// rate-limit headers.
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, RateLimit, RateLimit-Policy, Retry-After";

/// How long a browser may cache a preflight (Chromium caps it at 2 hours).
pub const MAX_AGE_SECS: &str = "7200";

/// A CORS preflight: `OPTIONS` naming the method it asks for (a bare
/// `OPTIONS` is an ordinary request and goes through the stack).
fn is_preflight<B>(req: &http::Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// `Access-Control-Allow-Headers`: the requested headers that are in
/// [`ALLOW_HEADERS`] (echoed lowercase, in the order asked), or the whole
/// list when none was asked for. `None` when every requested header is
/// refused: the browser then fails the preflight, as it should.
fn allow_headers(request: &HeaderMap) -> Option<HeaderValue> {
    let requested: Vec<String> = request
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if requested.is_empty() {
        return Some(HeaderValue::from_static(
            "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id, mcp-method, mcp-name",
        ));
    }
    let mut allowed: Vec<&str> = Vec::new();
    for h in &requested {
        if let Some(known) = ALLOW_HEADERS.iter().find(|k| *k == h)
            && !allowed.contains(known)
        {
            allowed.push(known);
        }
    }
    if allowed.is_empty() {
        return None;
    }
    HeaderValue::from_str(&allowed.join(", ")).ok()
}

/// 204 with the preflight headers; `origin` is what goes into
/// `Access-Control-Allow-Origin` (the caller's origin, or `*`).
fn preflight(origin: HeaderValue, request: &HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    if let Some(v) = allow_headers(request) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    // The answer echoes the origin and the requested headers: a cache must
    // not hand it to another origin or another header list.
    h.append(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Headers"),
    );
    resp
}

/// Step 0 on `/mcp`: the answer to a preflight (`Some` when `req` is one):
/// 204 for a listed origin, the `host_origin` step's 400/403 otherwise.
pub fn mcp_preflight<B>(
    policy: &HostPolicy,
    req: &http::Request<B>,
) -> Option<Result<Response, McpHttpError>> {
    if !is_preflight(req) {
        return None;
    }
    // The Host rules hold for preflights too (DNS rebinding).
    if let Err(refusal) = policy.check(req.uri(), req.headers()) {
        tracing::warn!(
            reason = refusal.reason(),
            "preflight refused by Host/Origin allow-list"
        );
        return Some(Err(McpHttpError::HostOrigin(refusal)));
    }
    let Some(origin) = policy.cors_origin(req.headers()).cloned() else {
        tracing::warn!(
            reason = Refusal::OriginNotAllowed.reason(),
            "preflight from an origin outside MCP_ALLOWED_ORIGINS"
        );
        return Some(Err(McpHttpError::HostOrigin(Refusal::OriginNotAllowed)));
    };
    Some(Ok(preflight(origin, req.headers())))
}

/// The CORS headers on every other answer (the refusals of later steps
/// included) to a listed `origin` ([`HostPolicy::cors_origin`]).
pub fn expose(resp: &mut Response, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Middleware on the public metadata documents: any origin may read them
/// (`*`, never credentials), and their preflights get 204.
pub async fn public(req: Request, next: Next) -> Response {
    if is_preflight(&req) {
        let mut resp = preflight(HeaderValue::from_static("*"), req.headers());
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, OPTIONS"),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(headers: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in headers {
            h.append(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn allow_headers_echoes_the_listed_ones() {
        let v = |h: &[&str]| allow_headers(&asking(h)).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            v(&["Authorization, Content-Type", "MCP-Protocol-Version"]).as_deref(),
            Some("authorization, content-type, mcp-protocol-version")
        );
        assert_eq!(
            v(&["x-evil, mcp-session-id, mcp-session-id"]).as_deref(),
            Some("mcp-session-id")
        );
        assert_eq!(v(&["x-evil"]), None);
        assert_eq!(
            v(&[]).as_deref().map(|s| s.split(", ").collect::<Vec<_>>()),
            Some(ALLOW_HEADERS.to_vec())
        );
    }
}
