//! `grant_type=authorization_code` (OAuth 2.1 §4.1.3) with PKCE S256.
//!
//! The code is consumed on presentation, before any check: a request that
//! fails (wrong verifier, redirect URI or client) has still used it up, so a
//! thief cannot try verifiers against one code. A code presented a second
//! time means two parties hold it: everything issued from the first
//! exchange is revoked (§4.1.3, "SHOULD revoke").

use auth::uri::canonical_resource;
use axum::response::Response;

use super::{Ctx, TokenGrant, issue, respond, revoke_access, revoke_family, unavailable};
use crate::audit;
use crate::codes::{AuthorizationCode, Presented, Redemption};
use crate::error::{ErrorCode, OAuthError};
use crate::refresh::{IssuedAccess, NewFamily};

/// The one answer for a code that is not (or no longer) good: which of the
/// three it was is no business of the presenter.
const BAD_CODE: &str = "authorization code is invalid, expired or already used";

fn invalid_grant(desc: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, desc)
}

pub(super) async fn grant(ctx: &Ctx<'_>) -> Result<Response, OAuthError> {
    ctx.require_grant("authorization_code")?;
    let Some(code) = ctx.params.get("code") else {
        return Err(ctx.refuse(
            OAuthError::invalid_request("code is required"),
            "missing_code",
        ));
    };
    let presented = ctx
        .state
        .codes
        .present(code)
        .await
        .map_err(|e| unavailable("code store", &e))?;
    let grant = match presented {
        Presented::Fresh(grant) => grant,
        Presented::Unknown => return Err(ctx.refuse(invalid_grant(BAD_CODE), "code_unknown")),
        Presented::Replayed(redemption) => {
            replayed(ctx, redemption).await?;
            return Err(invalid_grant(BAD_CODE));
        }
    };
    check_binding(ctx, &grant).map_err(|(e, reason)| ctx.refuse(e, reason))?;

    let issued = issue(
        ctx,
        TokenGrant {
            sub: &grant.sub,
            scope: grant.scope.clone(),
            audience: grant.resource.clone(),
        },
    )
    .await?;
    let access = IssuedAccess {
        jti: &issued.claims.jti,
        exp: issued.claims.exp,
    };
    let refresh = if ctx.client.grant_types.iter().any(|g| g == "refresh_token") {
        let family = NewFamily {
            client_id: &ctx.client.client_id,
            sub: &grant.sub,
            scope: &grant.scope,
            resource: &grant.resource,
            auth_time: grant.auth_time,
        };
        Some(
            ctx.state
                .refresh
                .start(&family, access, auth::now_unix())
                .await
                .map_err(|e| unavailable("refresh store", &e))?,
        )
    } else {
        None
    };
    let redemption = Redemption {
        jti: issued.claims.jti.clone(),
        exp: issued.claims.exp,
        refresh_family: refresh.as_ref().map(|(_, family)| family.clone()),
    };
    ctx.state
        .codes
        .record(code, &redemption)
        .await
        .map_err(|e| unavailable("code store", &e))?;
    Ok(respond(ctx.state, &issued, refresh.map(|(token, _)| token)))
}

/// The token request must repeat what the code was bound to (§4.1.3).
fn check_binding(
    ctx: &Ctx<'_>,
    grant: &AuthorizationCode,
) -> Result<(), (OAuthError, &'static str)> {
    if grant.client_id != ctx.client.client_id {
        return Err((
            invalid_grant("the authorization code was issued to another client"),
            "code_client_mismatch",
        ));
    }
    // Exact string comparison: the loopback any-port rule applies when the
    // authorization request is matched against registrations, not here.
    let repeated = match ctx.params.get("redirect_uri") {
        Some(uri) => uri == grant.redirect_uri,
        None => !grant.redirect_uri_sent,
    };
    if !repeated {
        return Err((
            invalid_grant("redirect_uri must equal the one of the authorization request"),
            "code_redirect_uri_mismatch",
        ));
    }
    let Some(verifier) = ctx.params.get("code_verifier") else {
        return Err((
            invalid_grant("code_verifier is required (PKCE)"),
            "pkce_missing",
        ));
    };
    if !auth::pkce::verifier_is_valid(verifier) {
        return Err((
            invalid_grant("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"),
            "pkce_malformed",
        ));
    }
    if !auth::pkce::verify_s256(verifier, &grant.code_challenge) {
        return Err((
            invalid_grant("code_verifier does not match the code_challenge"),
            "pkce_mismatch",
        ));
    }
    if let Some(resource) = ctx.params.get("resource")
        && canonical_resource(resource).ok().as_deref() != Some(grant.resource.as_str())
    {
        return Err((
            invalid_grant("resource must equal the one of the authorization request"),
            "code_resource_mismatch",
        ));
    }
    Ok(())
}

/// A second presentation: revoke the first exchange's access token and
/// refresh family. A replay racing the first exchange (before it recorded
/// what it issued) finds nothing to revoke yet; the first exchange still
/// succeeds, as it would have without the replay.
async fn replayed(ctx: &Ctx<'_>, redemption: Option<Redemption>) -> Result<(), OAuthError> {
    let Some(r) = redemption else {
        audit::code_replayed(&ctx.client.client_id, None, ctx.peer);
        return Ok(());
    };
    revoke_access(ctx.state, &r.jti, r.exp).await?;
    if let Some(family) = &r.refresh_family {
        revoke_family(ctx.state, family).await?;
    }
    audit::code_replayed(&ctx.client.client_id, Some(&r.jti), ctx.peer);
    Ok(())
}
