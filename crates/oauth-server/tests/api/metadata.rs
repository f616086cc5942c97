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
    ] {
        assert_endpoint_url(&m, name, &app.base);
    }
    assert_eq!(m["token_endpoint"], app.url("/token"));
    assert_eq!(m["jwks_uri"], app.url("/jwks"));
    assert_eq!(
        m["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256", "EdDSA"])
    );
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!([
            "account:calculate",
            "customer:read",
            "security:read",
            "ticket:create"
        ])
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        m["response_types_supported"].is_array(),
        "REQUIRED by RFC 8414"
    );
    let algs = m["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        !algs
            .iter()
            .any(|a| a == "none" || a.as_str().unwrap().starts_with("HS"))
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
