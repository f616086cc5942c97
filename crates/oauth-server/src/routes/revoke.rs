//! `POST /revoke` (RFC 7009): client-authenticated (public clients too,
//! for their own tokens, §5). An access token's `jti` is denied for the rest
//! of its life; a refresh token ends its whole family and the family's
//! access tokens (§2.1). An access token is revocable while any resource
//! server still accepts it: until `exp` plus their leeway
//! (`auth::verify::DEFAULT_LEEWAY_SECS`). Unknown, invalid or expired
//! tokens, and tokens of other clients, still get 200 (§2.2) so the endpoint
//! is no oracle.

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::audit;
use crate::client_auth::authenticate;
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::read_form;
use crate::state::AppState;

/// Answers one `POST /revoke` from `peer` (the address after
/// `TRUSTED_PROXIES`); [`crate::gate`] calls it after CORS and the per-IP
/// budget.
pub async fn revoke(state: &AppState, request: Request<Body>, peer: IpAddr) -> Response {
    let (parts, body) = request.into_parts();
    let result: Result<(), OAuthError> = async {
        let params = read_form(&parts.headers, body).await?;
        let client = authenticate(state, &parts.headers, &params, "revoke", peer)
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
        // The hint only orders the search (§2.1), and the formats tell the
        // two apart anyway: refresh tokens are opaque base64url (no dot),
        // access tokens are JWTs.
        if !token.contains('.') {
            return revoke_refresh(state, &client.client_id, token, peer).await;
        }
        // With the resource servers' leeway: a token that expired a few
        // seconds ago still opens doors there, so revoking it is not a no-op.
        let Ok(claims) = state.revocable_tokens.verify(token).await else {
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
        let ttl = auth::verify::denylist_ttl(claims.exp, auth::now_unix());
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

/// Revokes a refresh token's family (and its access tokens) when the
/// token is live and the caller's; anything else is silently fine.
async fn revoke_refresh(
    state: &AppState,
    client_id: &str,
    token: &str,
    peer: std::net::IpAddr,
) -> Result<(), OAuthError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "refresh store unavailable");
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "revocation is temporarily unavailable; retry",
        )
    };
    let now = auth::now_unix();
    let Some(rec) = state
        .refresh
        .find(token, now)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Ok(());
    };
    if rec.client_id != client_id {
        audit::client_rejected(Some(client_id), "revoke_foreign_token", "revoke", peer);
        return Ok(());
    }
    let Some(revoked) = state
        .refresh
        .revoke_family(&rec.family, now)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Ok(());
    };
    for a in &revoked.access {
        state
            .revocations
            .revoke(&a.jti, auth::verify::denylist_ttl(a.exp, now))
            .await
            .map_err(|e| unavailable(&e))?;
        audit::token_revoked(client_id, &a.jti, peer);
    }
    Ok(())
}
