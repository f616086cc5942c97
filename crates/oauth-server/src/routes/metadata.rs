//! `GET /.well-known/oauth-authorization-server` (RFC 8414). Every URL is
//! derived from the configured public issuer, never from the request.

use auth::keys::Algorithm;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::clients::Registry;
use crate::config::Config;
use crate::state::AppState;

/// Confidential-client authentication methods (every endpoint).
const CONFIDENTIAL_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];
/// ...plus `none` where a public client may come (/token for its grants,
/// /revoke for its own tokens); never at /introspect.
const WITH_PUBLIC: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// Builds the metadata document once at start-up.
pub fn document(config: &Config, registry: &Registry) -> Bytes {
    Bytes::from(serde_json::Value::Object(fields(config, registry)).to_string())
}

/// Every RFC 8414 field, one entry per line: a feature that adds an endpoint
/// (registration, client ID metadata documents) adds its fields here.
fn fields(config: &Config, registry: &Registry) -> Map<String, Value> {
    let iss = &config.issuer;
    let algs: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    let scopes: Vec<String> = registry.all_scopes().iter().map(str::to_owned).collect();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("issuer", json!(iss));
    put("authorization_endpoint", json!(format!("{iss}/authorize")));
    put("token_endpoint", json!(format!("{iss}/token")));
    put("jwks_uri", json!(format!("{iss}/jwks")));
    put("revocation_endpoint", json!(format!("{iss}/revoke")));
    put("introspection_endpoint", json!(format!("{iss}/introspect")));
    put("response_types_supported", json!(["code"]));
    put("response_modes_supported", json!(["query"]));
    put(
        "grant_types_supported",
        json!(["authorization_code", "client_credentials", "refresh_token"]),
    );
    put("token_endpoint_auth_methods_supported", json!(WITH_PUBLIC));
    put(
        "token_endpoint_auth_signing_alg_values_supported",
        json!(algs),
    );
    put(
        "revocation_endpoint_auth_methods_supported",
        json!(WITH_PUBLIC),
    );
    put(
        "revocation_endpoint_auth_signing_alg_values_supported",
        json!(algs),
    );
    put(
        "introspection_endpoint_auth_methods_supported",
        json!(CONFIDENTIAL_METHODS),
    );
    put(
        "introspection_endpoint_auth_signing_alg_values_supported",
        json!(algs),
    );
    put("scopes_supported", json!(scopes));
    put("code_challenge_methods_supported", json!(["S256"]));
    // RFC 9207: every authorization response carries `iss`.
    put(
        "authorization_response_iss_parameter_supported",
        json!(true),
    );
    put("client_id_metadata_document_supported", json!(true));
    if config.registration.mode.enabled() {
        put("registration_endpoint", json!(format!("{iss}/register")));
    }
    m
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
