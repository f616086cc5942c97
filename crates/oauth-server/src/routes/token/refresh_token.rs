//! `grant_type=refresh_token` (OAuth 2.1 §4.3): a new access token and a new
//! refresh token on every use (rotation, §4.3.1). The request is checked
//! against the token's record *before* the token is consumed, so a
//! request the client can correct (`scope` wider than granted, wrong
//! `resource`) does not cost it its token.

use auth::scope::ScopeSet;
use auth::uri::canonical_resource;
use axum::response::Response;

use super::{Ctx, TokenGrant, issue, respond, revoke_family, unavailable};
use crate::audit;
use crate::error::{ErrorCode, OAuthError};
use crate::refresh::{IssuedAccess, Redeemed, RefreshRecord};

const DEAD: &str = "refresh token is invalid, expired or revoked";

fn invalid_grant() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, DEAD)
}

pub(super) async fn grant(ctx: &Ctx<'_>) -> Result<Response, OAuthError> {
    ctx.require_grant("refresh_token")?;
    let Some(token) = ctx.params.get("refresh_token") else {
        return Err(ctx.refuse(
            OAuthError::invalid_request("refresh_token is required"),
            "missing_refresh_token",
        ));
    };
    let store = &ctx.state.refresh;
    let now = auth::now_unix();
    let peeked = store
        .find(token, now)
        .await
        .map_err(|e| unavailable("refresh store", &e))?;
    if let Some(rec) = &peeked {
        if rec.client_id != ctx.client.client_id {
            // Only a leak puts one client's refresh token in another's hands.
            reuse(ctx, &rec.family, "refresh_client_mismatch").await?;
            return Err(invalid_grant());
        }
        check_request(ctx, rec).map_err(|(e, reason)| ctx.refuse(e, reason))?;
    }
    let redeemed = store
        .redeem(token, now)
        .await
        .map_err(|e| unavailable("refresh store", &e))?;
    let rec = match redeemed {
        Redeemed::Live(rec) if rec.client_id != ctx.client.client_id => {
            reuse(ctx, &rec.family, "refresh_client_mismatch").await?;
            return Err(invalid_grant());
        }
        Redeemed::Live(rec) => rec,
        Redeemed::Reused { family } => {
            reuse(ctx, &family, "refresh_reuse").await?;
            return Err(invalid_grant());
        }
        Redeemed::Dead => return Err(ctx.refuse(invalid_grant(), "refresh_dead")),
    };
    // The same record the peek checked, unless the token was unknown then:
    // checked here once more either way (a no-op when the peek passed).
    let scope = check_request(ctx, &rec).map_err(|(e, reason)| ctx.refuse(e, reason))?;
    let issued = issue(
        ctx,
        TokenGrant {
            sub: &rec.sub,
            scope,
            audience: rec.resource.clone(),
        },
    )
    .await?;
    let access = IssuedAccess {
        jti: &issued.claims.jti,
        exp: issued.claims.exp,
    };
    let next = store
        .rotate(&rec, access, now)
        .await
        .map_err(|e| unavailable("refresh store", &e))?;
    Ok(respond(ctx.state, &issued, Some(next)))
}

/// `resource` must be the family's; `scope` may narrow the family's scope
/// (RFC 6749 §6), never widen it. Returns the access token's scope: the
/// request's (or the family's) within what the client may still hold.
fn check_request(
    ctx: &Ctx<'_>,
    rec: &RefreshRecord,
) -> Result<ScopeSet, (OAuthError, &'static str)> {
    if let Some(resource) = ctx.params.get("resource")
        && canonical_resource(resource).ok().as_deref() != Some(rec.resource.as_str())
    {
        return Err((
            OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must equal the one the refresh token was issued for",
            ),
            "invalid_target",
        ));
    }
    if !ctx.state.config.resources.contains(&rec.resource) {
        return Err((
            OAuthError::new(
                ErrorCode::InvalidTarget,
                "the refresh token's resource is no longer served here",
            ),
            "invalid_target",
        ));
    }
    let requested = match ctx.params.get("scope") {
        None => rec.scope.clone(),
        Some(s) => ScopeSet::parse(s).map_err(|e| {
            (
                OAuthError::new(ErrorCode::InvalidScope, format!("scope is malformed: {e}")),
                "invalid_scope",
            )
        })?,
    };
    if !requested.is_subset(&rec.scope) {
        return Err((
            OAuthError::new(
                ErrorCode::InvalidScope,
                "scope may only narrow the scope granted to the refresh token",
            ),
            "invalid_scope",
        ));
    }
    // The client's registration may have shrunk since the code exchange.
    let granted = requested.intersection(&ctx.client.allowed_scopes);
    if granted.is_empty() {
        return Err((
            OAuthError::new(
                ErrorCode::InvalidScope,
                "none of the requested scopes may be granted to this client",
            ),
            "invalid_scope",
        ));
    }
    Ok(granted)
}

/// A rotated (or another client's) refresh token: revoke its family and
/// the family's last access token.
async fn reuse(ctx: &Ctx<'_>, family: &str, reason: &'static str) -> Result<(), OAuthError> {
    let jti = revoke_family(ctx.state, family).await?;
    audit::refresh_reuse(&ctx.client.client_id, reason, jti.as_deref(), ctx.peer);
    Ok(())
}
