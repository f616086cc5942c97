//! RFC 9728 OAuth 2.0 Protected Resource Metadata, served at
//! `/.well-known/oauth-protected-resource<resource path>` (here `/mcp`) and at
//! the root form `/.well-known/oauth-protected-resource`.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::header;
use serde::Serialize;

use crate::state::AppState;

pub const WELL_KNOWN: &str = auth::well_known::PROTECTED_RESOURCE;

/// The metadata document (computed once).
#[derive(Debug, Clone, Serialize)]
pub struct ProtectedResourceMetadata {
    /// `MCP_RESOURCE_URL`, exactly (canonical).
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<&'static str>,
    pub bearer_methods_supported: Vec<&'static str>,
    pub resource_name: &'static str,
}

impl ProtectedResourceMetadata {
    pub fn new(resource: &str, issuer: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            authorization_servers: vec![issuer.to_owned()],
            scopes_supported: crate::policy::scopes_supported(),
            bearer_methods_supported: vec!["header"],
            resource_name: "secure-mcp customer service",
        }
    }
}

/// The path-specific route for `resource` (RFC 9728 §3.1: the well-known
/// segment goes between the host and the resource's path).
pub fn path_for(resource: &str) -> String {
    auth::well_known::protected_resource_metadata_path(resource)
}

/// The absolute metadata URL that 401 challenges point to.
pub fn url_for(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => auth::well_known::protected_resource_metadata_url(&u).to_string(),
        Err(_) => format!("{resource}{WELL_KNOWN}"),
    }
}

pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.metadata().clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path_for("http://localhost:8000/mcp"),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            path_for("https://example.com"),
            "/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            url_for("https://localhost:8001/mcp"),
            "https://localhost:8001/.well-known/oauth-protected-resource/mcp"
        );
    }
}
