//! `POST /token`: reads the form, authenticates the client, and hands the
//! request to its grant (one file each under `token/`). Every grant issues
//! its RFC 9068 JWT access token through [`issue`], so claims, signing,
//! audit and the response shape are written once.

mod authorization_code;
mod client_credentials;
mod refresh_token;

use std::net::IpAddr;
use std::sync::Arc;

use auth::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use auth::scope::ScopeSet;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::audit;
use crate::client_auth::{Authenticated, authenticate};
use crate::clients::{AuthMethod, Client};
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::{Params, read_form};
use crate::state::AppState;

/// Answers one `POST /token` from `peer` (the address after
/// `TRUSTED_PROXIES`); [`crate::gate`] calls it after CORS and the per-IP
/// budget.
pub async fn token(state: &AppState, request: Request<Body>, peer: IpAddr) -> Response {
    let (parts, body) = request.into_parts();
    match handle(state, &parts.headers, body, peer).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// One authenticated token request, as every grant sees it.
struct Ctx<'a> {
    state: &'a AppState,
    client: Arc<Client>,
    method: AuthMethod,
    params: Params,
    peer: IpAddr,
}

impl Ctx<'_> {
    /// Logs `auth.client_rejected` with `reason` and passes `e` on.
    fn refuse(&self, e: OAuthError, reason: &'static str) -> OAuthError {
        audit::client_rejected(Some(&self.client.client_id), reason, "token", self.peer);
        e
    }

    /// The client must be registered for `grant`.
    fn require_grant(&self, grant: &str) -> Result<(), OAuthError> {
        if self.client.grant_types.iter().any(|g| g == grant) {
            return Ok(());
        }
        Err(self.refuse(
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client may not use the {grant} grant"),
            ),
            "grant_not_allowed",
        ))
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    peer: IpAddr,
) -> Result<Response, OAuthError> {
    let params = read_form(headers, body).await?;
    let Some(grant_type) = params.get("grant_type").map(str::to_owned) else {
        return Err(OAuthError::invalid_request("grant_type is required"));
    };
    let Authenticated { client, method } =
        authenticate(state, headers, &params, "token", peer).await?;
    let ctx = Ctx {
        state,
        client,
        method,
        params,
        peer,
    };
    match grant_type.as_str() {
        "client_credentials" => client_credentials::grant(&ctx).await,
        "authorization_code" => authorization_code::grant(&ctx).await,
        "refresh_token" => refresh_token::grant(&ctx).await,
        other => {
            let known = matches!(
                other,
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
                    | "urn:ietf:params:oauth:grant-type:device_code"
                    | "password"
                    | "implicit"
            );
            let desc = if known {
                "supported grants: authorization_code, refresh_token, client_credentials"
            } else {
                "unknown grant_type"
            };
            Err(ctx.refuse(
                OAuthError::new(ErrorCode::UnsupportedGrantType, desc),
                "unsupported_grant_type",
            ))
        }
    }
}

/// What an access token is for; `sub` is the client itself for
/// client_credentials and the user otherwise.
struct TokenGrant<'a> {
    sub: &'a str,
    scope: ScopeSet,
    audience: String,
}

/// A signed access token and its claims.
struct Issued {
    token: String,
    claims: AccessTokenClaims,
}

/// Builds the claims, signs and audits an access token for `ctx.client`.
async fn issue(ctx: &Ctx<'_>, grant: TokenGrant<'_>) -> Result<Issued, OAuthError> {
    let state = ctx.state;
    let now = auth::now_unix();
    let ttl = state.config.token_ttl.as_secs();
    let claims = AccessTokenClaims {
        iss: state.config.issuer.clone(),
        sub: grant.sub.to_owned(),
        aud: Audience::One(grant.audience.clone()),
        client_id: ctx.client.client_id.clone(),
        scope: grant.scope,
        iat: now,
        nbf: now,
        exp: now + i64::try_from(ttl).unwrap_or(900),
        jti: new_jti()?,
    };
    let token = sign(state, &claims).await?;
    state
        .metrics
        .token_issued(grant_label(&ctx.params), &ctx.client.client_id);
    audit::token_issued(
        &ctx.client.client_id,
        &claims.sub,
        ctx.method.as_str(),
        &claims.scope.to_string(),
        &grant.audience,
        &claims.jti,
        ctx.peer,
    );
    Ok(Issued { token, claims })
}

/// The `grant_type` label of a token this request is issuing (only the
/// three grants reach [`issue`]).
fn grant_label(params: &Params) -> &'static str {
    match params.get("grant_type") {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "client_credentials",
    }
}

/// The RFC 6749 §5.1 response (`Cache-Control: no-store`):
/// `{"access_token":…,"token_type":"Bearer","expires_in":…,"scope":…}` and
/// `refresh_token` when there is one. Written straight into one buffer: the
/// access token is our own compact JWS (base64url and dots, nothing JSON
/// escapes), so it is copied once instead of cloned, scanned for escapes and
/// copied again through serde_json (≈3 % of the oauth-server's CPU per
/// ES256 token, issue 15). Scope and refresh token go through serde_json.
fn respond(state: &AppState, issued: &Issued, refresh_token: Option<String>) -> Response {
    match token_body(
        &issued.token,
        state.config.token_ttl.as_secs(),
        &issued.claims.scope,
        refresh_token.as_deref(),
    ) {
        Ok(body) => {
            let mut resp = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => OAuthError::internal("token response", &e).into_response(),
    }
}

/// The JSON body of [`respond`]; `access_token` must be a compact JWS.
fn token_body(
    access_token: &str,
    expires_in: u64,
    scope: &ScopeSet,
    refresh_token: Option<&str>,
) -> Result<Vec<u8>, serde_json::Error> {
    use std::io::Write as _;
    let mut body = Vec::with_capacity(access_token.len() + 192);
    body.extend_from_slice(b"{\"access_token\":\"");
    body.extend_from_slice(access_token.as_bytes());
    body.extend_from_slice(b"\",\"token_type\":\"Bearer\",\"expires_in\":");
    write!(body, "{expires_in},\"scope\":").map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut body, scope)?;
    if let Some(refresh) = refresh_token {
        body.extend_from_slice(b",\"refresh_token\":");
        serde_json::to_writer(&mut body, refresh)?;
    }
    body.push(b'}');
    Ok(body)
}

/// Denies an access token for the rest of its life (plus the verifiers'
/// leeway); used when a code or refresh family turns out stolen.
async fn revoke_access(state: &AppState, jti: &str, exp: i64) -> Result<(), OAuthError> {
    state
        .revocations
        .revoke(jti, auth::verify::denylist_ttl(exp, auth::now_unix()))
        .await
        .map_err(|e| unavailable("revocation store", &e))
}

/// Ends a refresh family and every access token it issued that may still
/// be live; returns the last one's `jti` (for the audit event).
async fn revoke_family(state: &AppState, family: &str) -> Result<Option<String>, OAuthError> {
    let revoked = state
        .refresh
        .revoke_family(family, auth::now_unix())
        .await
        .map_err(|e| unavailable("refresh store", &e))?;
    let Some(revoked) = revoked else {
        return Ok(None);
    };
    for a in &revoked.access {
        revoke_access(state, &a.jti, a.exp).await?;
    }
    Ok(revoked.access.into_iter().next().map(|a| a.jti))
}

/// A store outage: logged, answered 503 `temporarily_unavailable`.
fn unavailable(what: &str, e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "{what} unavailable");
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "the token service is temporarily unavailable; retry",
    )
}

fn new_jti() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| OAuthError::internal("jti", &"rng failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs RSA on the signing threads ([`crate::signer`]: 0.25–1 ms of CPU
/// per token, served in arrival order); ECDSA and Ed25519 are cheap enough
/// to sign inline.
async fn sign(state: &AppState, claims: &AccessTokenClaims) -> Result<String, OAuthError> {
    let key = state.keys.ring().signing.clone();
    let result = if key.alg() == auth::keys::Algorithm::RS256 {
        let claims = claims.clone();
        state
            .rsa_signing
            .run(move || auth::jwt::sign(&key, ACCESS_TOKEN_TYP, &claims))
            .await
            .map_err(|e| OAuthError::internal("signing threads", &e))?
    } else {
        auth::jwt::sign(&key, ACCESS_TOKEN_TYP, claims)
    };
    result.map_err(|e| OAuthError::internal("signing failed", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_body_is_the_rfc_6749_json_with_fields_in_order() {
        let scope = ScopeSet::parse("ticket:create customer:read").unwrap();
        let body = token_body("aGVh.Y2xh.c2ln", 900, &scope, None).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"access_token":"aGVh.Y2xh.c2ln","token_type":"Bearer","expires_in":900,"scope":"customer:read ticket:create"}"#
        );
        // A refresh token goes through serde_json (escaped if it ever needed it).
        let body = token_body("a.b.c", 60, &scope, Some("r\"1")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "access_token": "a.b.c",
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": "customer:read ticket:create",
                "refresh_token": "r\"1",
            })
        );
    }
}
