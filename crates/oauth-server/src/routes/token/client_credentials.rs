//! `grant_type=client_credentials` (RFC 6749 §4.4) with RFC 8707 resource
//! indicators: a machine client gets a token for itself (`sub` = client_id).

use axum::response::Response;

use super::{Ctx, TokenGrant, issue, respond};
use crate::error::OAuthError;
use crate::policy::{grant_resource, grant_scope};

pub(super) async fn grant(ctx: &Ctx<'_>) -> Result<Response, OAuthError> {
    ctx.require_grant("client_credentials")?;
    let client = &ctx.client;
    let scope = grant_scope(
        ctx.params.get("scope"),
        &client.default_scopes,
        &[&client.allowed_scopes],
        &ctx.state.known_scopes,
    )
    .map_err(|e| ctx.refuse(e, "invalid_scope"))?;
    let audience = grant_resource(
        ctx.params.get("resource"),
        client,
        &ctx.state.config.resources,
    )
    .map_err(|e| ctx.refuse(e, "invalid_target"))?;
    let issued = issue(
        ctx,
        TokenGrant {
            sub: &client.client_id,
            scope,
            audience,
        },
    )
    .await?;
    Ok(respond(ctx.state, &issued, None))
}
