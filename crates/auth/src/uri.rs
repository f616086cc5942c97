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

/// Why a redirect URI was refused at registration (RFC 6749 §3.1.2,
/// OAuth 2.1 §2.3.1, RFC 8252 §7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("not an absolute URI")]
    NotAbsolute,
    #[error("must not contain a fragment")]
    Fragment,
    #[error("must not contain user information")]
    UserInfo,
    #[error("must use https, or http on a loopback host (127.0.0.1, [::1], localhost)")]
    PlainHttp,
    #[error("scheme {0:?} is not allowed (javascript:, data: and file: never are)")]
    Scheme(String),
}

/// Validates a redirect URI a client registers: absolute, no fragment, no
/// user-info; https, http only on loopback (RFC 8252 §7.3), or a private-use
/// scheme with a dot in it (RFC 8252 §7.1, `com.example.app:/cb`).
pub fn validate_redirect_uri(raw: &str) -> Result<(), RedirectUriError> {
    let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::UserInfo);
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(RedirectUriError::PlainHttp),
        s if s.contains('.') => Ok(()),
        s => Err(RedirectUriError::Scheme(s.to_owned())),
    }
}

/// Whether the `redirect_uri` of an authorization request matches one the
/// client registered: an exact string match, except that for http loopback
/// redirects the port is ignored (RFC 8252 §7.3: native apps listen on a
/// port the OS picks). Scheme, host spelling, path and query must still match
/// exactly, so `127.0.0.1` never matches `localhost`.
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host_str() == p.host_str()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && !presented.contains('#')
        && p.username().is_empty()
        && p.password().is_none()
        // The URL parser normalises; the raw strings must not differ except
        // in the port, or `http://127.0.0.1:1/cb/../x` would slip through.
        && strip_port(registered) == strip_port(presented)
}

/// `scheme://host[:port]/rest` without `:port` (loopback URLs only).
fn strip_port(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    format!("{scheme}://{host}{tail}")
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

    #[test]
    fn redirect_uri_registration_rules() {
        assert_eq!(validate_redirect_uri("https://app.example/cb"), Ok(()));
        assert_eq!(validate_redirect_uri("http://127.0.0.1/callback"), Ok(()));
        assert_eq!(validate_redirect_uri("http://[::1]:3000/cb"), Ok(()));
        assert_eq!(validate_redirect_uri("http://localhost/cb"), Ok(()));
        assert_eq!(validate_redirect_uri("com.example.app:/oauth"), Ok(()));
        assert_eq!(
            validate_redirect_uri("http://app.example/cb"),
            Err(RedirectUriError::PlainHttp)
        );
        assert_eq!(
            validate_redirect_uri("https://app.example/cb#x"),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(
            validate_redirect_uri("javascript:alert(1)"),
            Err(RedirectUriError::Scheme("javascript".into()))
        );
        assert_eq!(
            validate_redirect_uri("/cb"),
            Err(RedirectUriError::NotAbsolute)
        );
        assert_eq!(
            validate_redirect_uri("https://u:p@app.example/cb"),
            Err(RedirectUriError::UserInfo)
        );
    }

    #[test]
    fn redirect_uri_matching() {
        // Exact match for everything but loopback ports.
        assert!(redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb/"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example:8443/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://A.example/cb"
        ));
        // RFC 8252 §7.3: any port on loopback.
        assert!(redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback"
        ));
        assert!(redirect_uri_matches(
            "http://127.0.0.1:3000/callback",
            "http://127.0.0.1:51000/callback"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]/cb",
            "http://[::1]:8123/cb"
        ));
        assert!(redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:8123/cb"
        ));
        // ...but the host, path and query must match as registered.
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://localhost:4000/callback"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:4000/other"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:4000/callback?x=1"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:4000/callback#f"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/x/../cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://u@127.0.0.1:1/cb"
        ));
        assert!(
            !redirect_uri_matches("https://127.0.0.1/cb", "https://127.0.0.1:9/cb"),
            "https keeps exact match"
        );
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "https://127.0.0.1:9/cb"
        ));
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
