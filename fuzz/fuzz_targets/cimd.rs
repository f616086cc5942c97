//! The Client ID Metadata Document check (`oauth_server::cimd`): the
//! document → client validation (not the fetch), which shares
//! `redirect_uris` / `client_name` with RFC 7591 `/register`, and the URL
//! rules for a `client_id`.
//!
//! The first byte picks the mode: odd, the rest is a fetched document for
//! [`URL`]; even, the rest is a `client_id` URL.
//!
//! Properties: an accepted document names exactly its URL, is public (no
//! secret, auth method `none`), has 1 to 10 distinct valid redirect URIs and
//! a trimmed 1 to 100 character name without control characters, and gets
//! no scope beyond the policy; an accepted URL is https, in normalised
//! spelling, with a path and no fragment, user-info or dot segments.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use auth::ScopeSet;
use libfuzzer_sys::fuzz_target;
use oauth_server::cimd::{MetadataDocuments, fuzzing};
use oauth_server::registration::{MAX_CLIENT_NAME_CHARS, MAX_REDIRECT_URIS, PublicClientPolicy};
use serde_json::Value;

const URL: &str = "https://app.example.com/oauth/client.json";

static DOCS: LazyLock<MetadataDocuments> = LazyLock::new(|| {
    let policy = PublicClientPolicy {
        scopes: "mcp:tools mcp:resources"
            .parse::<ScopeSet>()
            .unwrap_or_else(|e| panic!("{e}")),
        resources: vec!["https://mcp.example.com/mcp".to_owned()],
    };
    MetadataDocuments::new(policy, &[], None, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"))
});

const REASONS: [&str; 3] = ["invalid_document", "client_id_mismatch", "invalid_url"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        document(rest);
    } else if let Ok(raw) = std::str::from_utf8(rest) {
        url(raw);
    }
});

fn document(body: &[u8]) {
    let client = match fuzzing::client_from_document(&DOCS, URL, body) {
        Ok(c) => c,
        Err(r) => {
            assert!(REASONS.contains(&r.reason), "reason {:?}", r.reason);
            return;
        }
    };
    let doc: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("accepted: {e}"));
    assert_eq!(doc["client_id"], URL);
    assert!(doc.get("client_secret").is_none());
    assert!(matches!(
        doc.get("token_endpoint_auth_method"),
        None | Some(Value::String(_))
    ));
    assert_eq!(client.client_id, URL);
    assert_eq!(client.document_url.as_deref(), Some(URL));
    let n = client.redirect_uris.len();
    assert!((1..=MAX_REDIRECT_URIS).contains(&n), "{n} redirect URIs");
    for (i, uri) in client.redirect_uris.iter().enumerate() {
        assert_eq!(auth::uri::validate_redirect_uri(uri), Ok(()));
        assert!(!client.redirect_uris[..i].contains(uri), "duplicate {uri}");
    }
    let name = &client.client_name;
    assert_eq!(name.trim(), name);
    assert!((1..=MAX_CLIENT_NAME_CHARS).contains(&name.chars().count()));
    assert!(!name.chars().any(char::is_control));
    assert!(client.allowed_scopes.is_subset(&DOCS_SCOPES));
}

static DOCS_SCOPES: LazyLock<ScopeSet> = LazyLock::new(|| {
    "mcp:tools mcp:resources"
        .parse::<ScopeSet>()
        .unwrap_or_else(|e| panic!("{e}"))
});

fn url(raw: &str) {
    let Ok(url) = fuzzing::check_url(raw) else {
        return;
    };
    assert_eq!(url.as_str(), raw);
    assert_eq!(url.scheme(), "https");
    assert!(!raw.contains('#'));
    assert!(url.username().is_empty() && url.password().is_none());
    assert_ne!(url.path(), "/");
    assert!(
        url.path_segments()
            .is_some_and(|mut s| s.all(|seg| seg != "." && seg != "..")),
        "dot segment in {raw}"
    );
}
