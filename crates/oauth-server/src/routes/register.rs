//! `POST /register`: RFC 7591 dynamic client registration, for public
//! clients only (authorization code + PKCE; no secret is ever issued).
//!
//! Order of checks, each with its answer:
//! `OAUTH_REGISTRATION=off` → 404 · per-IP budget `rl:reg:{ip}` → 429
//! `slow_down` + `Retry-After` · `token` mode: `Authorization: Bearer` with
//! the initial access token → 401 `invalid_token` · `Content-Type:
//! application/json` → 400, body ≤ [`MAX_BODY_BYTES`] → 413 · metadata
//! (RFC 7591 §2) → 400 `invalid_redirect_uri` / `invalid_client_metadata`
//! · registration cap → 503 `temporarily_unavailable` · store →
//! `auth.client_registered` → 201 with the registered metadata and
//! `Cache-Control: no-store`.
//!
//! Metadata this server does not use (`logo_uri`, `contacts`, ...) is
//! ignored, as RFC 7591 §2 asks, and not echoed back.

use std::borrow::Cow;
use std::net::SocketAddr;

use auth::scope::ScopeSet;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ErrorCode, OAuthError, no_store};
use crate::registration::{
    CreateError, GRANT_TYPES, Registered, RegistrationMode, Registrations, UNNAMED_CLIENT,
    client_name, redirect_uris,
};
use crate::state::AppState;

/// Largest registration body read (a full RFC 7591 request is ~1 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a valid registration request asks for (after the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub client_name: String,
    pub scope: ScopeSet,
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = &state.config.registration;
    if !config.mode.enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let ip = state.limits.trusted.client_ip(peer, &headers);
    match handle(&state, ip, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let config = &state.config.registration;
    // Validated at start-up; a failure here would be a bug, not the caller's.
    let (policy, cost) = config
        .rate_policy()
        .map_err(|e| OAuthError::internal("registration rate policy", &e))?;
    state.limits.check_registration(ip, &policy, cost).await?;
    if let RegistrationMode::Token(expected) = &config.mode {
        check_initial_access_token(headers, expected, ip)?;
    }
    let body = read_json(headers, body).await?;
    let Some(registrations) = state.clients.registrations() else {
        return Err(OAuthError::internal(
            "registration",
            &"the client directory has no registration store",
        ));
    };
    let meta = validate(&body, &registrations.policy().scopes)?;
    let client_id = Registrations::new_client_id()
        .map_err(|e| OAuthError::internal("registration client_id", &e))?;
    let record = Registered {
        client_id,
        client_name: meta.client_name,
        redirect_uris: meta.redirect_uris,
        grant_types: meta.grant_types,
        scope: meta.scope,
        issued_at: auth::now_unix(),
    };
    match registrations.create(&record).await {
        Ok(()) => {}
        Err(CreateError::Full) => {
            tracing::warn!(
                max = config.max_clients,
                "registration refused: OAUTH_REGISTRATION_MAX live registrations reached"
            );
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this server accepts no more registrations at the moment; try again later",
            ));
        }
        Err(CreateError::Store(e)) => {
            tracing::warn!(error = %e, "registration store unavailable");
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "try again later",
            ));
        }
    }
    let scope = record.scope.to_string();
    crate::audit::client_registered(&record.client_id, &scope, ip);
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(json!({
            "client_id": record.client_id,
            "client_id_issued_at": record.issued_at,
            "client_name": record.client_name,
            "redirect_uris": record.redirect_uris,
            "grant_types": record.grant_types,
            "response_types": meta.response_types,
            "token_endpoint_auth_method": "none",
            "scope": scope,
        })),
    )
        .into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// RFC 7591 §3 / RFC 6750 §3.1: a missing or wrong initial access token is
/// 401 with a Bearer challenge (`error="invalid_token"` when one was sent).
fn check_initial_access_token(
    headers: &HeaderMap,
    expected: &crate::registration::InitialAccessToken,
    ip: std::net::IpAddr,
) -> Result<(), OAuthError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let (reason, description, challenge) = match presented {
        None => (
            "initial_access_token_missing",
            "this server requires an initial access token (Authorization: Bearer) to register",
            "Bearer realm=\"secure-mcp\"",
        ),
        Some(token) if expected.matches(token) => return Ok(()),
        Some(_) => (
            "initial_access_token_invalid",
            "the initial access token is not valid",
            "Bearer realm=\"secure-mcp\", error=\"invalid_token\"",
        ),
    };
    crate::audit::client_rejected(None, reason, "register", ip);
    let mut h = HeaderMap::new();
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    Err(OAuthError::new(ErrorCode::InvalidToken, description)
        .with_status(StatusCode::UNAUTHORIZED)
        .with_headers(h))
}

fn metadata_error(d: impl Into<Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

/// The JSON body: `application/json`, at most [`MAX_BODY_BYTES`].
async fn read_json(headers: &HeaderMap, body: Body) -> Result<Value, OAuthError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(metadata_error("Content-Type must be application/json"));
    }
    let too_large = || {
        metadata_error(format!("request body exceeds {MAX_BODY_BYTES} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|_| metadata_error("the body is not valid JSON"))
}

/// RFC 7591 §2 metadata against our rules; `allowed` is
/// `OAUTH_REGISTRATION_SCOPES` (a request gets the intersection).
pub fn validate(body: &Value, allowed: &ScopeSet) -> Result<Metadata, OAuthError> {
    let Some(obj) = body.as_object() else {
        return Err(metadata_error("the body must be a JSON object"));
    };
    // RFC 7591 §2: null stands for "not given".
    let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
    match field("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(Value::String(m)) => {
            let m: String = m.chars().take(40).collect();
            return Err(metadata_error(format!(
                "token_endpoint_auth_method {m:?} is not supported: only public clients \
                 (\"none\", authorization code with PKCE) may register"
            )));
        }
        Some(_) => {
            return Err(metadata_error(
                "token_endpoint_auth_method must be a string",
            ));
        }
    }
    let redirect_uris = redirect_uris(field("redirect_uris"))
        .map_err(|m| OAuthError::new(ErrorCode::InvalidRedirectUri, m))?;
    let grant_types = string_list(field("grant_types"), "grant_types", &GRANT_TYPES)?
        .unwrap_or_else(|| GRANT_TYPES.iter().map(|g| (*g).to_owned()).collect());
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata_error(
            "grant_types must include authorization_code",
        ));
    }
    let response_types = string_list(field("response_types"), "response_types", &["code"])?
        .unwrap_or_else(|| vec!["code".to_owned()]);
    if response_types.is_empty() {
        return Err(metadata_error("response_types must include code"));
    }
    let client_name = match field("client_name") {
        None => UNNAMED_CLIENT.to_owned(),
        Some(Value::String(n)) => client_name(n).map_err(metadata_error)?,
        Some(_) => return Err(metadata_error("client_name must be a string")),
    };
    let scope = match field("scope") {
        None => allowed.clone(),
        Some(Value::String(s)) => {
            let requested = ScopeSet::parse(s)
                .map_err(|e| metadata_error(format!("scope is malformed: {e}")))?;
            let granted = requested.intersection(allowed);
            if granted.is_empty() {
                return Err(metadata_error(format!(
                    "none of the requested scopes may be granted to a registered client \
                     (at most: {allowed})"
                )));
            }
            granted
        }
        Some(_) => return Err(metadata_error("scope must be a string")),
    };
    Ok(Metadata {
        redirect_uris,
        grant_types,
        response_types,
        client_name,
        scope,
    })
}

/// An optional array of strings, each one of `supported` (duplicates dropped).
fn string_list(
    v: Option<&Value>,
    name: &str,
    supported: &[&str],
) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(v) = v else {
        return Ok(None);
    };
    let Some(items) = v.as_array() else {
        return Err(metadata_error(format!(
            "{name} must be an array of strings"
        )));
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(s) = item.as_str() else {
            return Err(metadata_error(format!(
                "{name} must be an array of strings"
            )));
        };
        if !supported.contains(&s) {
            let s: String = s.chars().take(60).collect();
            return Err(metadata_error(format!(
                "{name} {s:?} is not supported (supported: {})",
                supported.join(", ")
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> ScopeSet {
        ScopeSet::parse("customer:read ticket:create account:calculate").unwrap()
    }

    fn ok(body: Value) -> Metadata {
        validate(&body, &allowed()).unwrap()
    }

    fn err(body: Value) -> (ErrorCode, String) {
        let e = validate(&body, &allowed()).unwrap_err();
        (e.code, e.description.into_owned())
    }

    #[test]
    fn defaults_fill_what_is_omitted() {
        let m = ok(json!({"redirect_uris": ["http://127.0.0.1/cb"]}));
        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.response_types, vec!["code"]);
        assert_eq!(m.client_name, "unnamed client");
        assert_eq!(m.scope, allowed());
        let m = ok(json!({
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": null, "client_name": null, "logo_uri": 7,
        }));
        assert_eq!(m.client_name, "unnamed client");
    }

    #[test]
    fn scope_is_the_intersection() {
        let m = ok(json!({
            "redirect_uris": ["http://127.0.0.1/cb"],
            "scope": "customer:read security:read made:up",
        }));
        assert_eq!(m.scope.to_string(), "customer:read");
        assert_eq!(
            err(json!({"redirect_uris": ["http://127.0.0.1/cb"], "scope": "security:read"})),
            (
                ErrorCode::InvalidClientMetadata,
                "none of the requested scopes may be granted to a registered client (at most: \
                 account:calculate customer:read ticket:create)"
                    .into()
            )
        );
    }

    #[test]
    fn each_bad_field_has_its_error() {
        let uri = json!(["http://127.0.0.1/cb"]);
        let cases = [
            (
                json!([]),
                ErrorCode::InvalidClientMetadata,
                "the body must be a JSON object",
            ),
            (
                json!({}),
                ErrorCode::InvalidRedirectUri,
                "redirect_uris is required",
            ),
            (
                json!({"redirect_uris": "http://127.0.0.1/cb"}),
                ErrorCode::InvalidRedirectUri,
                "redirect_uris must be an array of strings",
            ),
            (
                json!({"redirect_uris": uri, "grant_types": ["client_credentials"]}),
                ErrorCode::InvalidClientMetadata,
                "grant_types \"client_credentials\" is not supported (supported: \
                 authorization_code, refresh_token)",
            ),
            (
                json!({"redirect_uris": uri, "grant_types": ["refresh_token"]}),
                ErrorCode::InvalidClientMetadata,
                "grant_types must include authorization_code",
            ),
            (
                json!({"redirect_uris": uri, "response_types": ["token"]}),
                ErrorCode::InvalidClientMetadata,
                "response_types \"token\" is not supported (supported: code)",
            ),
            (
                json!({"redirect_uris": uri, "response_types": []}),
                ErrorCode::InvalidClientMetadata,
                "response_types must include code",
            ),
            (
                json!({"redirect_uris": uri, "client_name": 5}),
                ErrorCode::InvalidClientMetadata,
                "client_name must be a string",
            ),
            (
                json!({"redirect_uris": uri, "scope": "a  b"}),
                ErrorCode::InvalidClientMetadata,
                "scope is malformed: scope contains an empty scope token (leading, trailing or \
                 repeated space)",
            ),
            (
                json!({"redirect_uris": uri, "token_endpoint_auth_method": "private_key_jwt"}),
                ErrorCode::InvalidClientMetadata,
                "token_endpoint_auth_method \"private_key_jwt\" is not supported: only public \
                 clients (\"none\", authorization code with PKCE) may register",
            ),
        ];
        for (body, code, description) in cases {
            assert_eq!(err(body.clone()), (code, description.to_owned()), "{body}");
        }
    }
}
