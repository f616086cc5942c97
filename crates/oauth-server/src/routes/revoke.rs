//! `POST /revoke` (RFC 7009): client-authenticated; the token's `jti` is
//! denied for the rest of its life. Unknown, invalid or expired tokens, and
//! tokens of other clients, still get 200 (§2.2) so the endpoint is no oracle.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::audit;
use crate::client_auth::authenticate;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::read_form;
use crate::limits::ClientIp;
use crate::state::AppState;

pub async fn revoke(
    State(state): State<AppState>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let result: Result<(), OAuthError> = async {
        let params = read_form(&parts.headers, body).await?;
        let client = authenticate(&state, &parts.headers, &params, "revoke", peer)
            .await?
            .client;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        if let Some(hint) = params.get("token_type_hint")
            && hint != "access_token"
            && hint != "refresh_token"
        {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedTokenType,
                "token_type_hint must be access_token or refresh_token",
            ));
        }
        let Ok(claims) = state.own_tokens.verify(token).await else {
            return Ok(());
        };
        if claims.client_id != client.client_id {
            audit::client_rejected(
                Some(&client.client_id),
                "revoke_foreign_token",
                "revoke",
                peer,
            );
            return Ok(());
        }
        let ttl = Duration::from_secs(claims.remaining_secs(auth::now_unix()) + 60);
        state
            .revocations
            .revoke(&claims.jti, ttl)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "revocation store unavailable");
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "revocation is temporarily unavailable; retry",
                )
            })?;
        audit::token_revoked(&client.client_id, &claims.jti, peer);
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => e.into_response(),
    }
}
