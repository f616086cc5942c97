//! `POST /introspect` (RFC 7662): client-authenticated. A client may inspect
//! its own tokens; clients registered with `can_introspect` (resource
//! servers) may inspect any. Access tokens (JWTs) and refresh tokens (opaque)
//! are both understood. Invalid, expired, revoked or foreign tokens are all
//! simply `{"active": false}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::client_auth::authenticate;
use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::read_form;
use crate::limits::ClientIp;
use crate::state::AppState;

pub async fn introspect(
    State(state): State<AppState>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let result: Result<serde_json::Value, OAuthError> = async {
        let params = read_form(&parts.headers, body).await?;
        let caller = authenticate(&state, &parts.headers, &params, "introspect", peer)
            .await?
            .client;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let inactive = json!({"active": false});
        if !token.contains('.') {
            return refresh_token(&state, &caller, token).await;
        }
        let Ok(c) = state.own_tokens.verify(token).await else {
            return Ok(inactive);
        };
        if c.client_id != caller.client_id && !caller.can_introspect {
            return Ok(inactive);
        }
        match state.revocations.is_revoked(&c.jti).await {
            Ok(false) => {}
            Ok(true) => return Ok(inactive),
            Err(e) => {
                tracing::error!(error = %e, "revocation store unavailable");
                return Err(OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "introspection is temporarily unavailable; retry",
                ));
            }
        }
        Ok(json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "token_type": "Bearer",
            "exp": c.exp,
            "iat": c.iat,
            "nbf": c.nbf,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "jti": c.jti,
        }))
    }
    .await;
    let mut resp = match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => return e.into_response(),
    };
    no_store(&mut resp);
    resp
}

/// A refresh token: live, and the caller's (or the caller may inspect any).
async fn refresh_token(
    state: &AppState,
    caller: &Client,
    token: &str,
) -> Result<serde_json::Value, OAuthError> {
    let rec = state
        .refresh
        .find(token, auth::now_unix())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "refresh store unavailable");
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "introspection is temporarily unavailable; retry",
            )
        })?;
    Ok(match rec {
        Some(rec) if rec.client_id == caller.client_id || caller.can_introspect => json!({
            "active": true,
            "scope": rec.scope,
            "client_id": rec.client_id,
            "sub": rec.sub,
            "exp": state.refresh.expires_at(&rec),
            "iat": rec.issued_at,
            "iss": state.config.issuer,
        }),
        _ => json!({"active": false}),
    })
}
