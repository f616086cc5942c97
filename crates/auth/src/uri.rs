//! Canonical resource URIs (RFC 8707 `resource`, the MCP server's `aud`).
//!
//! Two spellings of the same server must compare equal, so every URI that
//! becomes or is compared with an audience goes through [`canonical_resource`]:
//! scheme and host lower-cased, default port dropped, no trailing slash, and
//! no fragment, user-info or non-http(s) scheme at all (those are refused).

use url::Url;

/// Why a resource URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not an absolute URI")]
    NotAbsolute,
    #[error("scheme must be http or https")]
    Scheme,
    #[error("URI must not contain a fragment")]
    Fragment,
    #[error("URI must not contain user information")]
    UserInfo,
    #[error("URI has no host")]
    NoHost,
}

/// Returns the canonical form of an http(s) resource URI.
pub fn canonical_resource(input: &str) -> Result<String, UriError> {
    let url = Url::parse(input).map_err(|_| UriError::NotAbsolute)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UriError::Scheme);
    }
    if url.fragment().is_some() || input.contains('#') {
        return Err(UriError::Fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UriError::UserInfo);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UriError::NoHost);
    }
    // `origin()` lower-cases scheme and host and omits the default port.
    let mut out = url.origin().ascii_serialization();
    out.push_str(url.path().trim_end_matches('/'));
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Why an issuer identifier was refused (RFC 8414 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("{0:?} is not an absolute URL")]
    NotAbsolute(String),
    #[error("must not contain a query or fragment (RFC 8414 §2)")]
    QueryOrFragment,
    #[error("must use https (http is only allowed for localhost)")]
    PlainHttp,
    #[error("must be an https URL")]
    Scheme,
    #[error("{0}")]
    Uri(UriError),
}

/// The one spelling of an issuer identifier, used by the oauth-server for
/// `iss` and `issuer`, by the mcp-server for the `iss` it requires and by the
/// clients for the issuer their credentials belong to.
///
/// RFC 8414 §2: an https URL without query or fragment; plain http only for
/// loopback hosts (local development). Canonical form as
/// [`canonical_resource`]: scheme and host lower-cased, default port dropped,
/// no trailing slash. So `http://localhost:8080/` and `http://LOCALHOST:8080`
/// both become `http://localhost:8080`, and every party compares the same string.
pub fn normalize_issuer(raw: &str) -> Result<String, IssuerError> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|_| IssuerError::NotAbsolute(raw.to_owned()))?;
    if url.query().is_some() || url.fragment().is_some() || raw.contains('#') {
        return Err(IssuerError::QueryOrFragment);
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => return Err(IssuerError::PlainHttp),
        _ => return Err(IssuerError::Scheme),
    }
    canonical_resource(raw).map_err(IssuerError::Uri)
}

/// True when `a` and `b` name the same issuer under [`normalize_issuer`]
/// (false when either is not a valid issuer).
pub fn same_issuer(a: &str, b: &str) -> bool {
    matches!((normalize_issuer(a), normalize_issuer(b)), (Ok(x), Ok(y)) if x == y)
}

/// True for `localhost`, `127.0.0.0/8` and `::1` hosts.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonicalises() {
        assert_eq!(
            canonical_resource("HTTP://LocalHost:8000/mcp/").unwrap(),
            "http://localhost:8000/mcp"
        );
        assert_eq!(
            canonical_resource("https://example.com:443/").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            canonical_resource("https://example.com").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            canonical_resource("https://[::1]:8001/mcp").unwrap(),
            "https://[::1]:8001/mcp"
        );
        assert_eq!(
            canonical_resource("https://a.example/MCP?x=1").unwrap(),
            "https://a.example/MCP?x=1"
        );
    }

    #[test]
    fn refuses() {
        assert_eq!(canonical_resource("/mcp"), Err(UriError::NotAbsolute));
        assert_eq!(canonical_resource("ftp://x/mcp"), Err(UriError::Scheme));
        assert_eq!(
            canonical_resource("http://x/mcp#frag"),
            Err(UriError::Fragment)
        );
        assert_eq!(canonical_resource("http://x/mcp#"), Err(UriError::Fragment));
        assert_eq!(
            canonical_resource("http://u:p@x/mcp"),
            Err(UriError::UserInfo)
        );
        assert_eq!(canonical_resource("urn:example:x"), Err(UriError::Scheme));
    }

    #[test]
    fn issuer_spellings_normalise_to_one() {
        for raw in [
            "http://localhost:8080",
            "http://localhost:8080/",
            "http://LOCALHOST:8080",
            " HTTP://LocalHost:8080/ ",
        ] {
            assert_eq!(
                normalize_issuer(raw).unwrap(),
                "http://localhost:8080",
                "{raw}"
            );
        }
        assert_eq!(
            normalize_issuer("https://Auth.Example.com:443/tenant/").unwrap(),
            "https://auth.example.com/tenant"
        );
        assert!(same_issuer(
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080"
        ));
        assert!(!same_issuer(
            "http://127.0.0.1:8080",
            "http://localhost:8080"
        ));
    }

    #[test]
    fn issuer_refusals() {
        assert_eq!(
            normalize_issuer("http://auth.example.com"),
            Err(IssuerError::PlainHttp)
        );
        assert_eq!(
            normalize_issuer("https://a.example?x=1"),
            Err(IssuerError::QueryOrFragment)
        );
        assert_eq!(
            normalize_issuer("https://a.example#f"),
            Err(IssuerError::QueryOrFragment)
        );
        assert_eq!(
            normalize_issuer("ftp://a.example"),
            Err(IssuerError::Scheme)
        );
        assert_eq!(
            normalize_issuer("localhost:8080"),
            Err(IssuerError::Scheme),
            "parses as scheme `localhost`"
        );
        assert_eq!(
            normalize_issuer("not a url"),
            Err(IssuerError::NotAbsolute("not a url".into()))
        );
        assert_eq!(
            normalize_issuer("https://u:p@a.example"),
            Err(IssuerError::Uri(UriError::UserInfo))
        );
    }

    proptest! {
        #[test]
        fn idempotent(host in "[a-zA-Z][a-zA-Z0-9]{0,10}", port in proptest::option::of(1u16..), path in "(/[a-zA-Z0-9_.-]{0,6}){0,3}/?") {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let input = format!("https://{host}{port}{path}");
            let once = canonical_resource(&input).unwrap();
            prop_assert_eq!(canonical_resource(&once).unwrap(), once.clone());
            prop_assert!(!once.ends_with('/'));
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = canonical_resource(&s);
        }
    }
}
