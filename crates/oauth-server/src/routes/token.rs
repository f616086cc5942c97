//! `POST /token`: the client_credentials grant (RFC 6749 §4.4) with RFC 8707
//! resource indicators, issuing RFC 9068 JWT access tokens.

use auth::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use auth::scope::ScopeSet;
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::audit;
use crate::client_auth::{Authenticated, authenticate};
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::read_form;
use crate::limits::ClientIp;
use crate::policy::{grant_resource, grant_scope};
use crate::state::AppState;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a ScopeSet,
}

pub async fn token(
    State(state): State<AppState>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    match handle(&state, &parts.headers, body, peer).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    peer: std::net::IpAddr,
) -> Result<Response, OAuthError> {
    let params = read_form(headers, body).await?;
    let Some(grant_type) = params.get("grant_type") else {
        return Err(OAuthError::invalid_request("grant_type is required"));
    };
    let Authenticated { client, method } =
        authenticate(state, headers, &params, "token", peer).await?;
    let refuse = |e: OAuthError, reason: &'static str| {
        audit::client_rejected(Some(&client.client_id), reason, "token", peer);
        e
    };
    if grant_type != "client_credentials" {
        let e = if matches!(
            grant_type,
            "authorization_code"
                | "refresh_token"
                | "urn:ietf:params:oauth:grant-type:jwt-bearer"
                | "urn:ietf:params:oauth:grant-type:device_code"
                | "password"
                | "implicit"
        ) {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "only client_credentials is supported",
            )
        } else {
            OAuthError::new(ErrorCode::UnsupportedGrantType, "unknown grant_type")
        };
        return Err(refuse(e, "unsupported_grant_type"));
    }
    if !client.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(refuse(
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the client_credentials grant",
            ),
            "grant_not_allowed",
        ));
    }
    let scope = grant_scope(
        params.get("scope"),
        &client.default_scopes,
        &[&client.allowed_scopes],
        &state.known_scopes,
    )
    .map_err(|e| refuse(e, "invalid_scope"))?;
    let audience = grant_resource(params.get("resource"), &client, &state.config.resources)
        .map_err(|e| refuse(e, "invalid_target"))?;

    let now = auth::now_unix();
    let ttl = state.config.token_ttl.as_secs();
    let claims = AccessTokenClaims {
        iss: state.config.issuer.clone(),
        sub: client.client_id.clone(),
        aud: Audience::One(audience.clone()),
        client_id: client.client_id.clone(),
        scope,
        iat: now,
        nbf: now,
        exp: now + i64::try_from(ttl).unwrap_or(900),
        jti: new_jti()?,
    };
    let access_token = sign(state, &claims).await?;
    audit::token_issued(
        &client.client_id,
        method.as_str(),
        &claims.scope.to_string(),
        &audience,
        &claims.jti,
        peer,
    );
    let mut resp = Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: &claims.scope,
    })
    .into_response();
    no_store(&mut resp);
    Ok(resp)
}

fn new_jti() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| OAuthError::internal("jti", &"rng failure"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs off the async workers for RSA (≈1 ms of CPU per token); ECDSA and
/// Ed25519 are cheap enough to sign inline.
async fn sign(state: &AppState, claims: &AccessTokenClaims) -> Result<String, OAuthError> {
    let key = state.keys.ring().signing.clone();
    let result = if key.alg() == auth::keys::Algorithm::RS256 {
        let claims = claims.clone();
        tokio::task::spawn_blocking(move || auth::jwt::sign(&key, ACCESS_TOKEN_TYP, &claims))
            .await
            .map_err(|e| OAuthError::internal("signing task failed", &e))?
    } else {
        auth::jwt::sign(&key, ACCESS_TOKEN_TYP, claims)
    };
    result.map_err(|e| OAuthError::internal("signing failed", &e))
}
