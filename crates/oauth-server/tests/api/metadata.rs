//! RFC 8414 metadata and the JWKS documents.

use serde_json::Value;

use crate::helpers::*;

/// RFC 8414 §2: URLs are absolute, https (http only on loopback), no fragment.
fn assert_endpoint_url(v: &Value, name: &str, base: &str) {
    let s = v[name].as_str().unwrap_or_else(|| panic!("{name} missing"));
    let u = url::Url::parse(s).unwrap();
    assert!(u.fragment().is_none() && u.query().is_none(), "{name}");
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    assert!(
        u.scheme() == "https" || (u.scheme() == "http" && loopback),
        "{name}: {s}"
    );
    assert!(s.starts_with(base), "{name} derives from the issuer");
}

#[tokio::test]
async fn metadata_follows_rfc8414() {
    let app = spawn().await;
    // A forged Host header must not leak into the URLs.
    let resp = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let m: Value = resp.json().await.unwrap();
    assert_eq!(
        m["issuer"],
        app.base.as_str(),
        "issuer equals OAUTH_ISSUER exactly"
    );
    for name in [
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "authorization_endpoint",
    ] {
        assert_endpoint_url(&m, name, &app.base);
    }
    let algs = serde_json::json!(["RS256", "ES256", "EdDSA"]);
    let with_public = serde_json::json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none"
    ]);
    // The exact document: a field added or dropped is a decision, made here.
    assert_eq!(
        m,
        serde_json::json!({
            "issuer": app.base,
            "authorization_endpoint": app.url("/authorize"),
            "token_endpoint": app.url("/token"),
            "jwks_uri": app.url("/jwks"),
            "revocation_endpoint": app.url("/revoke"),
            "introspection_endpoint": app.url("/introspect"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "token_endpoint_auth_methods_supported": with_public,
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": with_public,
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ],
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "scopes_supported": [
                "account:calculate",
                "customer:read",
                "security:read",
                "ticket:create"
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true,
            "registration_endpoint": app.url("/register"),
        })
    );
}

#[tokio::test]
async fn jwks_is_served_at_both_paths() {
    let app = spawn().await;
    let a = app.http.get(app.url("/jwks")).send().await.unwrap();
    assert_eq!(a.headers()["content-type"], "application/jwk-set+json");
    let a: Value = a.json().await.unwrap();
    let b: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    let key = &a["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert!(
        key.get("d").is_none() && key.get("p").is_none(),
        "no private material"
    );
}
