//! `GET /.well-known/oauth-authorization-server` (RFC 8414). Every URL is
//! derived from the configured public issuer, never from the request.

use auth::keys::Algorithm;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::json;

use crate::clients::Registry;
use crate::config::Config;
use crate::state::AppState;

const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// Builds the metadata document once at start-up.
pub fn document(config: &Config, registry: &Registry) -> Bytes {
    let iss = &config.issuer;
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    let scopes: Vec<String> = registry.all_scopes().iter().map(str::to_owned).collect();
    let mut doc = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "scopes_supported": scopes,
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true,
    });
    if config.registration.mode.enabled() {
        doc["registration_endpoint"] = json!(format!("{iss}/register"));
    }
    Bytes::from(doc.to_string())
}

pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        state.metadata_body.clone(),
    )
}
