//! `GET|POST /authorize`: the authorization endpoint (OAuth 2.1 §4.1.1,
//! PKCE S256 only, RFC 9207 `iss`), with its login and consent pages.
//!
//! # A sign-in
//! 1. `GET /authorize?client_id…` ([`show`]): the client and redirect URI are
//!    checked first; until both are trusted every error is an HTML page
//!    (400, never a redirect). Then `response_type`, PKCE, grant, resource
//!    and scope; those errors redirect to the client with `error`, `state`
//!    and `iss`. The request is stored as a pending transaction
//!    (`oauth:authz:<txn>`, 10 min) bound to the browser's session cookie
//!    and a CSRF token, and the login page (or, for a signed-in session,
//!    the consent page) is shown.
//! 2. `POST /authorize` with `username`/`password` ([`submit`]): the session
//!    cookie and `csrf_token` must match the transaction (403 otherwise).
//!    A failed sign-in re-renders the form (200, one generic message) and
//!    costs the IP and the username; a successful one rotates the session
//!    id and shows the consent page, or issues the code at once when the
//!    user already consented to this client for at least these scopes.
//! 3. `POST /authorize` with `decision=approve|deny`: deny redirects
//!    `access_denied`; approve remembers the consent
//!    (`oauth:consent:<user>:<client>`, 90 days), issues the code and
//!    redirects with `code`, `state` and `iss`.
//!
//! Granted scope = requested (or the client's default) ∩ client's allowed ∩
//! user's allowed; the consent covers exactly that set.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use auth::scope::ScopeSet;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ratelimit::{Decision, headers};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::clients::Client;
use crate::codes::{AuthorizationCode, random_token};
use crate::directory::LookupError;
use crate::error::{ErrorCode, OAuthError};
use crate::form::{Params, read_form};
use crate::limits::ClientIp;
use crate::pages::{self, FormIds, FormTarget};
use crate::policy::{grant_resource, grant_scope};
use crate::session::{CookieSpec, SessionId, SessionRecord};
use crate::state::AppState;
use crate::users::{LoginFailure, User};

/// How long a started sign-in may take.
pub const TXN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a consent is remembered.
pub const CONSENT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Policy name in the `RateLimit*` headers of a limited page.
const POLICY_NAME: &str = "oauth";

/// A pending authorization request, between the pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    /// OAuth 2.1 §4.1.3: /token must repeat the redirect_uri only if it was sent.
    #[serde(default = "crate::codes::yes")]
    redirect_uri_sent: bool,
    state: Option<String>,
    code_challenge: String,
    resource: String,
    /// Requested (or default) ∩ client's allowed; the user's limit comes later.
    scope: ScopeSet,
    csrf_token: String,
    /// Digest of the session id this request belongs to.
    session: String,
    force_login: bool,
    force_consent: bool,
    /// Set once someone is signed in for this request.
    user_id: Option<String>,
    auth_time: Option<i64>,
}

fn txn_key(txn: &str) -> String {
    format!("oauth:authz:{txn}")
}

fn consent_key(user_id: &str, client_id: &str) -> String {
    format!("oauth:consent:{user_id}:{client_id}")
}

/// Where errors and codes go once the redirect URI is trusted.
#[derive(Debug, Clone)]
struct Target {
    redirect_uri: String,
    state: Option<String>,
}

/// The answers of the endpoint.
enum Answer {
    /// An HTML page (error, login, consent) or a finished redirect; boxed to
    /// keep the enum small.
    Page(Box<Response>),
    /// An RFC 6749 §4.1.2.1 error redirect.
    Error(Target, &'static str, String),
}

fn page(status: StatusCode, title: &str, message: &str) -> Answer {
    Answer::Page(Box::new(pages::respond(
        status,
        pages::error(title, message),
        None,
    )))
}

fn bad_request(message: &str) -> Answer {
    page(
        StatusCode::BAD_REQUEST,
        "This request cannot be completed",
        message,
    )
}

fn unavailable() -> Answer {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The sign-in service is temporarily unavailable. Try again in a moment.",
    )
}

fn store_failed(e: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %e, "authorize: store unavailable");
    unavailable()
}

fn error_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidScope => "invalid_scope",
        ErrorCode::InvalidTarget => "invalid_target",
        ErrorCode::UnauthorizedClient => "unauthorized_client",
        ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        ErrorCode::ServerError => "server_error",
        _ => "invalid_request",
    }
}

impl Target {
    /// `redirect_uri` plus `pairs`, `state` (when sent) and `iss` (RFC 9207).
    fn url(&self, issuer: &str, pairs: &[(&str, &str)]) -> Option<String> {
        let mut url = url::Url::parse(&self.redirect_uri).ok()?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(s) = &self.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", issuer);
        }
        Some(url.into())
    }
}

/// A 303 to `location` with the security headers.
fn see_other(location: &str) -> Response {
    let Ok(loc) = HeaderValue::from_str(location) else {
        return pages::respond(
            StatusCode::BAD_REQUEST,
            pages::error(
                "This request cannot be completed",
                "The redirect URI is invalid.",
            ),
            None,
        );
    };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(header::LOCATION, loc);
    pages::security_headers(resp.headers_mut());
    resp
}

impl Answer {
    fn into_response(self, issuer: &str) -> Response {
        match self {
            Answer::Page(r) => *r,
            Answer::Error(target, error, description) => {
                match target.url(
                    issuer,
                    &[("error", error), ("error_description", &description)],
                ) {
                    Some(u) => see_other(&u),
                    None => bad_request("The redirect URI is invalid.").into_response(issuer),
                }
            }
        }
    }
}

/// The request, validated up to the user-dependent steps.
struct Validated {
    client: Arc<Client>,
    target: Target,
    code_challenge: String,
    resource: String,
    scope: ScopeSet,
    prompt_none: bool,
    force_login: bool,
    force_consent: bool,
    /// Whether the request named its redirect_uri (then /token must repeat it).
    redirect_uri_sent: bool,
}

/// Every check that does not need the user, in the order the module docs give.
async fn validate(state: &AppState, params: &Params) -> Result<Validated, Answer> {
    let Some(client_id) = params.get("client_id") else {
        return Err(bad_request("The request has no client_id."));
    };
    let client = match state.clients.find(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(bad_request(
                "The application (client_id) is not registered here.",
            ));
        }
        Err(LookupError::Unavailable(e)) => {
            tracing::warn!(error = %e, "authorize: client lookup failed");
            return Err(unavailable());
        }
        Err(LookupError::Refused(e)) => {
            tracing::info!(error = %e, "authorize: client metadata document refused");
            return Err(bad_request(
                "The application's registration could not be loaded.",
            ));
        }
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) => {
            if !client
                .redirect_uris
                .iter()
                .any(|r| auth::uri::redirect_uri_matches(r, uri))
            {
                return Err(bad_request(
                    "The redirect_uri is not registered for this application.",
                ));
            }
            uri.to_owned()
        }
        // OAuth 2.1 §4.1.1: optional only with one registered, non-loopback
        // URI (a loopback one needs the port the client listens on).
        None => match client.redirect_uris.as_slice() {
            [only] if !is_loopback_uri(only) => only.clone(),
            [] => {
                return Err(bad_request(
                    "This application has no redirect URI registered: it cannot use sign-in.",
                ));
            }
            _ => return Err(bad_request("The request has no redirect_uri.")),
        },
    };
    let target = Target {
        redirect_uri,
        state: params.get("state").map(str::to_owned),
    };
    let fail = |error: &'static str, d: &str| Err(Answer::Error(target.clone(), error, d.into()));
    match params.get("response_type") {
        None => return fail("invalid_request", "response_type is required"),
        Some("code") => {}
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
    }
    let Some(challenge) = params.get("code_challenge") else {
        return fail(
            "invalid_request",
            "code_challenge is required (PKCE with code_challenge_method=S256)",
        );
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return fail(
                "invalid_request",
                "code_challenge_method is required and must be S256",
            );
        }
        Some("plain") => {
            return fail(
                "invalid_request",
                "code_challenge_method plain is not allowed; use S256",
            );
        }
        Some(_) => return fail("invalid_request", "code_challenge_method must be S256"),
    }
    if !auth::pkce::challenge_is_valid(challenge) {
        return fail(
            "invalid_request",
            "code_challenge must be 43 base64url characters (SHA-256 of the verifier)",
        );
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return fail(
            "unauthorized_client",
            "this client may not use the authorization_code grant",
        );
    }
    let resource = grant_resource(params.get("resource"), &client, &state.config.resources)
        .map_err(|e| Answer::Error(target.clone(), error_code(e.code), e.description.into()))?;
    let scope = grant_scope(
        params.get("scope"),
        &client.default_scopes,
        &[&client.allowed_scopes],
        &state.known_scopes,
    )
    .map_err(|e| Answer::Error(target.clone(), error_code(e.code), e.description.into()))?;
    let prompts: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        );
    }
    Ok(Validated {
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        code_challenge: challenge.to_owned(),
        resource,
        scope,
        prompt_none,
        force_login: prompts.contains(&"login"),
        force_consent: prompts.contains(&"consent"),
        client,
        target,
    })
}

fn is_loopback_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.scheme() == "http" && auth::uri::is_loopback_host(&u))
}

/// The origin the consent page names: the metadata document URL, else the
/// redirect URI's host (or scheme, for an app's private-use scheme).
fn client_origin(client: &Client, redirect_uri: &str) -> String {
    if let Some(doc) = &client.document_url {
        return doc.clone();
    }
    match url::Url::parse(redirect_uri) {
        Ok(u) => match u.host_str() {
            Some(h) => match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            },
            None => format!("{}:", u.scheme()),
        },
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Per-request context.
struct Ctx<'a> {
    state: &'a AppState,
    cookie: CookieSpec,
    peer: IpAddr,
    /// A session id to (re)set in the browser.
    set_session: Option<SessionId>,
}

impl Ctx<'_> {
    fn finish(&self, answer: Answer) -> Response {
        let mut resp = answer.into_response(&self.state.config.issuer);
        if let Some(v) = self
            .set_session
            .as_ref()
            .and_then(|id| self.cookie.set_cookie(id))
        {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    }

    fn action(&self) -> String {
        format!("{}/authorize", self.state.config.issuer)
    }
}

/// `GET /authorize`: the authorization request in the query.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(ClientIp(peer)): axum::Extension<ClientIp>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.as_deref().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return bad_request(&e.description).into_response(&state.config.issuer);
        }
    };
    begin(&state, &headers, peer, &params).await
}

/// Starts (or, with a live session and a remembered consent, completes) a request.
async fn begin(state: &AppState, headers: &HeaderMap, peer: IpAddr, params: &Params) -> Response {
    let mut ctx = Ctx {
        state,
        cookie: CookieSpec::for_issuer(&state.config.issuer),
        peer,
        set_session: None,
    };
    let answer = match validate(state, params).await {
        Ok(v) => begin_valid(&mut ctx, headers, v).await,
        Err(a) => a,
    };
    ctx.finish(answer)
}

async fn begin_valid(ctx: &mut Ctx<'_>, headers: &HeaderMap, v: Validated) -> Answer {
    let state = ctx.state;
    let kv = state.kv.as_ref();
    let session = match ctx.cookie.read(headers) {
        Some(id) => id,
        None => match SessionId::new() {
            Ok(id) => {
                ctx.set_session = Some(id.clone());
                id
            }
            Err(e) => return store_failed(&e),
        },
    };
    let signed_in = match session.load(kv).await {
        Ok(Some(rec)) => state
            .users
            .get(&rec.user_id)
            .await
            .map(|u| (u, rec.auth_time)),
        Ok(None) => None,
        Err(e) => return store_failed(&e),
    };
    let csrf_token = match random_token() {
        Ok(t) => t,
        Err(e) => return store_failed(&e),
    };
    let mut pending = Pending {
        client_id: v.client.client_id.clone(),
        redirect_uri: v.target.redirect_uri.clone(),
        redirect_uri_sent: v.redirect_uri_sent,
        state: v.target.state.clone(),
        code_challenge: v.code_challenge,
        resource: v.resource,
        scope: v.scope,
        csrf_token,
        session: session.digest(),
        force_login: v.force_login,
        force_consent: v.force_consent,
        user_id: None,
        auth_time: None,
    };
    match signed_in {
        Some((user, auth_time)) if !v.force_login => {
            pending.user_id = Some(user.user_id.clone());
            pending.auth_time = Some(auth_time);
            after_login(ctx, &v.client, None, pending, &user, v.prompt_none).await
        }
        _ if v.prompt_none => Answer::Error(
            v.target,
            "login_required",
            "the user is not signed in".into(),
        ),
        _ => {
            let txn = match save_new(kv, &pending).await {
                Ok(t) => t,
                Err(a) => return a,
            };
            login_page(ctx, &v.client, &txn, &pending, false)
        }
    }
}

/// Stores a new pending request under a fresh transaction id.
async fn save_new(kv: &dyn server_kit::kv::KvStore, pending: &Pending) -> Result<String, Answer> {
    let txn = random_token().map_err(|e| store_failed(&e))?;
    save(kv, &txn, pending).await?;
    Ok(txn)
}

async fn save(
    kv: &dyn server_kit::kv::KvStore,
    txn: &str,
    pending: &Pending,
) -> Result<(), Answer> {
    let value = serde_json::to_vec(pending).map_err(|e| store_failed(&e))?;
    kv.put(&txn_key(txn), &value, TXN_TTL)
        .await
        .map_err(|e| store_failed(&e))
}

fn login_page(
    ctx: &Ctx<'_>,
    client: &Client,
    txn: &str,
    pending: &Pending,
    failed: bool,
) -> Answer {
    let action = ctx.action();
    let ids = FormIds {
        action: &action,
        txn,
        csrf_token: &pending.csrf_token,
    };
    Answer::Page(Box::new(pages::respond(
        StatusCode::OK,
        pages::login(&ids, &client.client_name, failed),
        Some(&FormTarget::for_redirect(&pending.redirect_uri)),
    )))
}

/// Someone is signed in for `pending`: limit the scope to the user's, then
/// skip the consent page when a remembered consent covers it. `txn` is the
/// stored transaction, if there is one yet.
async fn after_login(
    ctx: &mut Ctx<'_>,
    client: &Client,
    txn: Option<&str>,
    pending: Pending,
    user: &User,
    prompt_none: bool,
) -> Answer {
    let state = ctx.state;
    let kv = state.kv.as_ref();
    let target = Target {
        redirect_uri: pending.redirect_uri.clone(),
        state: pending.state.clone(),
    };
    let granted = pending.scope.intersection(&user.allowed_scopes);
    if granted.is_empty() {
        if let Some(t) = txn {
            let _ = kv.delete(&txn_key(t)).await;
        }
        return Answer::Error(
            target,
            "access_denied",
            "this user may not use any of the requested scopes".into(),
        );
    }
    let remembered = match kv.get(&consent_key(&user.user_id, &client.client_id)).await {
        Ok(v) => v
            .and_then(|raw| serde_json::from_slice::<ScopeSet>(&raw).ok())
            .is_some_and(|consented| granted.is_subset(&consented)),
        Err(e) => return store_failed(&e),
    };
    if remembered && !pending.force_consent {
        if let Some(t) = txn {
            // Single use: a second submission of the same form finds nothing.
            match kv.take(&txn_key(t)).await {
                Ok(Some(_)) => {}
                Ok(None) => return expired(),
                Err(e) => return store_failed(&e),
            }
        }
        return issue(ctx, &pending, &granted).await;
    }
    if prompt_none {
        return Answer::Error(
            target,
            "consent_required",
            "the user has not approved this client for these scopes".into(),
        );
    }
    let txn = match txn {
        Some(t) => {
            if let Err(a) = save(kv, t, &pending).await {
                return a;
            }
            t.to_owned()
        }
        None => match save_new(kv, &pending).await {
            Ok(t) => t,
            Err(a) => return a,
        },
    };
    let action = ctx.action();
    let ids = FormIds {
        action: &action,
        txn: &txn,
        csrf_token: &pending.csrf_token,
    };
    let origin = client_origin(client, &pending.redirect_uri);
    Answer::Page(Box::new(pages::respond(
        StatusCode::OK,
        pages::consent(
            &ids,
            &pages::Consent {
                client_name: &client.client_name,
                client_id: &client.client_id,
                origin: &origin,
                user_name: &user.name,
                scope: &granted,
            },
        ),
        Some(&FormTarget::for_redirect(&pending.redirect_uri)),
    )))
}

fn expired() -> Answer {
    bad_request("This sign-in request has expired or was already used.")
}

/// Issues the code and redirects to the client with it.
async fn issue(ctx: &Ctx<'_>, pending: &Pending, granted: &ScopeSet) -> Answer {
    let state = ctx.state;
    let (Some(sub), Some(auth_time)) = (pending.user_id.clone(), pending.auth_time) else {
        return expired();
    };
    let grant = AuthorizationCode {
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        redirect_uri_sent: pending.redirect_uri_sent,
        code_challenge: pending.code_challenge.clone(),
        resource: pending.resource.clone(),
        scope: granted.clone(),
        sub,
        auth_time,
    };
    let code = match state.codes.issue(&grant).await {
        Ok(c) => c,
        Err(e) => return store_failed(&e),
    };
    let scope = granted.to_string();
    audit::code_issued(
        &grant.client_id,
        &grant.sub,
        &scope,
        &grant.resource,
        ctx.peer,
    );
    let target = Target {
        redirect_uri: pending.redirect_uri.clone(),
        state: pending.state.clone(),
    };
    match target.url(&state.config.issuer, &[("code", &code)]) {
        Some(u) => Answer::Page(Box::new(see_other(&u))),
        None => bad_request("The redirect URI is invalid."),
    }
}

/// Middleware: the per-IP budget on `/authorize`, answered with a page.
pub async fn ip_budget(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = state.limits.trusted.client_ip(peer, req.headers());
    req.extensions_mut().insert(ClientIp(ip));
    let decision = state.limits.check(&format!("rl:ip:{ip}"), 1).await;
    if let Ok(d) = &decision {
        state.limits.record("ip", d);
    }
    match decision {
        Ok(d) if d.allowed => next.run(req).await,
        Ok(d) => {
            audit::rate_limited("ip", None, ip, d.retry_after);
            limited_page(&state, &d)
        }
        Err(e) => {
            tracing::error!(error = %e, "rate limiter unavailable (closed mode)");
            unavailable().into_response(&state.config.issuer)
        }
    }
}

/// 429 page with `Retry-After` and the `RateLimit` headers.
fn limited_page(state: &AppState, d: &Decision) -> Response {
    let secs = headers::retry_after_secs(d.retry_after);
    let mut resp = pages::respond(
        StatusCode::TOO_MANY_REQUESTS,
        pages::error(
            "Too many attempts",
            &format!("Too many sign-in attempts. Wait {secs} seconds, then try again."),
        ),
        None,
    );
    headers::insert(resp.headers_mut(), POLICY_NAME, &state.limits.policy, d);
    resp
}

/// `POST /authorize`: the login or consent form (with `txn`), or an
/// authorization request sent as a form (without).
pub async fn submit(
    State(state): State<AppState>,
    axum::Extension(ClientIp(peer)): axum::Extension<ClientIp>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = match read_form(&headers, body).await {
        Ok(p) => p,
        Err(e) => return form_error(&state, &e),
    };
    let Some(txn) = params.get("txn").map(str::to_owned) else {
        return begin(&state, &headers, peer, &params).await;
    };
    let mut ctx = Ctx {
        state: &state,
        cookie: CookieSpec::for_issuer(&state.config.issuer),
        peer,
        set_session: None,
    };
    let answer = submit_txn(&mut ctx, &headers, &params, &txn).await;
    ctx.finish(answer)
}

fn form_error(state: &AppState, e: &OAuthError) -> Response {
    let status = if e.status == StatusCode::PAYLOAD_TOO_LARGE {
        e.status
    } else {
        StatusCode::BAD_REQUEST
    };
    page(status, "This request cannot be completed", &e.description)
        .into_response(&state.config.issuer)
}

async fn submit_txn(ctx: &mut Ctx<'_>, headers: &HeaderMap, params: &Params, txn: &str) -> Answer {
    let state = ctx.state;
    let kv = state.kv.as_ref();
    if txn.len() > 64 {
        return expired();
    }
    let mut pending: Pending = match kv.get(&txn_key(txn)).await {
        Ok(Some(raw)) => match serde_json::from_slice(&raw) {
            Ok(p) => p,
            Err(_) => return expired(),
        },
        Ok(None) => return expired(),
        Err(e) => return store_failed(&e),
    };
    // The form must come from the browser the request was started in
    // (session cookie) and from our page (CSRF token); otherwise nothing happens.
    let session = ctx.cookie.read(headers);
    let same_session = session
        .as_ref()
        .is_some_and(|s| bool::from(s.digest().as_bytes().ct_eq(pending.session.as_bytes())));
    let same_csrf = params
        .get("csrf_token")
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(pending.csrf_token.as_bytes())));
    let (Some(session), true, true) = (session, same_session, same_csrf) else {
        tracing::warn!(peer = %ctx.peer, "authorize: form refused (session or CSRF token does not match)");
        return page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was not submitted from the sign-in page it belongs to.",
        );
    };
    let client = match state.clients.find(&pending.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return bad_request("The application is no longer registered here."),
        Err(e) => return store_failed(&e),
    };
    if let Some(decision) = params.get("decision") {
        return decide(ctx, &session, &client, txn, pending, decision).await;
    }
    if params.get("username").is_none() && params.get("password").is_none() {
        return bad_request("The form is incomplete.");
    }
    let username = params.get("username").unwrap_or("");
    let password = params.get("password").unwrap_or("");
    // Limited usernames are refused before any hashing.
    match state.limits.check_login(username).await {
        Ok(d) if d.allowed => {}
        Ok(d) => {
            audit::login(false, Some("limited"), &client.client_id, None, ctx.peer);
            state.metrics.login_failed();
            audit::rate_limited("login", Some(&client.client_id), ctx.peer, d.retry_after);
            return Answer::Page(Box::new(limited_page(state, &d)));
        }
        Err(e) => return store_failed(&e),
    }
    let user = match state.users.authenticate(username, password).await {
        Ok(u) => u,
        Err(LoginFailure::Unavailable) => return unavailable(),
        Err(f) => {
            let known = (f == LoginFailure::BadPassword).then_some(username);
            audit::login(false, Some(f.reason()), &client.client_id, known, ctx.peer);
            state.metrics.login_failed();
            state.limits.penalize(ctx.peer).await;
            state.limits.penalize_login(username).await;
            return login_page(ctx, &client, txn, &pending, true);
        }
    };
    audit::login(true, None, &client.client_id, Some(&user.user_id), ctx.peer);
    // A new session id at sign-in: an id planted before it (session
    // fixation) is worth nothing afterwards.
    let _ = session.delete(kv).await;
    let fresh = match SessionId::new() {
        Ok(id) => id,
        Err(e) => return store_failed(&e),
    };
    let auth_time = auth::now_unix();
    let record = SessionRecord {
        user_id: user.user_id.clone(),
        auth_time,
    };
    if let Err(e) = fresh.store(kv, &record).await {
        return store_failed(&e);
    }
    pending.session = fresh.digest();
    pending.user_id = Some(user.user_id.clone());
    pending.auth_time = Some(auth_time);
    ctx.set_session = Some(fresh);
    after_login(ctx, &client, Some(txn), pending, &user, false).await
}

/// The consent form's `decision`.
async fn decide(
    ctx: &mut Ctx<'_>,
    session: &SessionId,
    client: &Client,
    txn: &str,
    pending: Pending,
    decision: &str,
) -> Answer {
    let state = ctx.state;
    let kv = state.kv.as_ref();
    let signed_in = match session.load(kv).await {
        Ok(r) => r,
        Err(e) => return store_failed(&e),
    };
    let user_id = match (&pending.user_id, signed_in) {
        (Some(p), Some(rec)) if *p == rec.user_id => p.clone(),
        _ => return bad_request("Sign in before approving access."),
    };
    let Some(user) = state.users.get(&user_id).await else {
        return bad_request("This user can no longer sign in.");
    };
    if decision != "approve" && decision != "deny" {
        return bad_request("The decision must be approve or deny.");
    }
    // Single use: the first decision wins, a replayed form finds nothing.
    match kv.take(&txn_key(txn)).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired(),
        Err(e) => return store_failed(&e),
    }
    let granted = pending.scope.intersection(&user.allowed_scopes);
    let scope = granted.to_string();
    let target = Target {
        redirect_uri: pending.redirect_uri.clone(),
        state: pending.state.clone(),
    };
    if decision == "deny" || granted.is_empty() {
        audit::consent(false, &client.client_id, &user.user_id, &scope, ctx.peer);
        return Answer::Error(target, "access_denied", "the user denied access".into());
    }
    audit::consent(true, &client.client_id, &user.user_id, &scope, ctx.peer);
    // Remember what was approved, together with anything approved before.
    let key = consent_key(&user.user_id, &client.client_id);
    let before = kv
        .get(&key)
        .await
        .ok()
        .flatten()
        .and_then(|raw| serde_json::from_slice::<ScopeSet>(&raw).ok())
        .unwrap_or_default();
    let remembered = before.union(&granted);
    match serde_json::to_vec(&remembered) {
        Ok(v) => {
            if let Err(e) = kv.put(&key, &v, CONSENT_TTL).await {
                tracing::warn!(error = %e, "authorize: consent not remembered");
            }
        }
        Err(e) => tracing::warn!(error = %e, "authorize: consent not remembered"),
    }
    issue(ctx, &pending, &granted).await
}
