//! The `Host` and `Origin` allow-lists (`MCP_ALLOWED_HOSTS`,
//! `MCP_ALLOWED_ORIGINS`), parsed once at start-up; the
//! [`host_origin`](crate::middleware::host_origin) layer asks
//! [`HostPolicy::check`] before any token is looked at.
//!
//! The same lists are handed to rmcp's `StreamableHttpServerConfig`, which
//! checks them again inside the service. rmcp's check runs *after* our axum
//! middleware, so these rules re-implement rmcp's to keep the order of checks
//! Host/Origin → token → scope.
//!
//! Rules (rmcp's): `host` matches that host on any port, `host:port` only that
//! port, IPv6 with or without brackets; an `Origin` entry is `scheme://host`
//! (any port, deprecated in rmcp), `scheme://host:port`, `scheme://host:*` or
//! `null`. Neither list may be empty (rmcp reads an empty list as "no
//! check"); requests without `Origin` (non-browser clients) always pass the
//! Origin check.

use http::{HeaderMap, HeaderValue, Uri};

use server_kit::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    Any,
    Exact(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: PortRule,
    },
}

/// Parsed allow-lists.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    hosts: Vec<Authority>,
    origins: Vec<OriginRule>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingHost,
    BadHost,
    HostNotAllowed,
    OriginNotAllowed,
}

impl Refusal {
    /// Stable reason for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingHost => "missing_host",
            Refusal::BadHost => "malformed_host",
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::OriginNotAllowed => "origin_not_allowed",
        }
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn parse_authority(s: &str) -> Option<Authority> {
    let a = http::uri::Authority::try_from(s).ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    Some(Authority {
        host: normalize_host(a.host()),
        port: a.port_u16(),
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `(scheme, host, port)` of an `Origin` value, or `None` for `null`.
fn parse_origin(value: &str) -> Result<Option<(String, String, Option<u16>)>, ()> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    let uri = Uri::try_from(value).map_err(|_| ())?;
    let scheme = uri.scheme_str().ok_or(())?.to_ascii_lowercase();
    let authority = uri.authority().ok_or(())?;
    Ok(Some((
        scheme,
        normalize_host(authority.host()),
        authority.port_u16(),
    )))
}

impl HostPolicy {
    /// Parses both lists; an unparsable entry is a configuration error, and
    /// so is an empty list: it would switch the check off (DNS-rebinding
    /// protection for `Host`, cross-site requests for `Origin`).
    pub fn new(hosts: &[String], origins: &[String]) -> Result<Self, ConfigError> {
        if hosts.is_empty() {
            return Err(ConfigError::new(
                "MCP_ALLOWED_HOSTS",
                "names no host, which would switch the Host check (DNS-rebinding protection) off: \
                 list the hosts clients use, or unset it for the loopback default",
            ));
        }
        if origins.is_empty() {
            return Err(ConfigError::new(
                "MCP_ALLOWED_ORIGINS",
                "names no origin, which would switch the Origin check off: list the browser \
                 origins allowed, or unset it for the loopback default",
            ));
        }
        let hosts = hosts
            .iter()
            .map(|h| {
                let h = h.trim();
                // `::1` is not an authority; rmcp falls back to "the whole string is a host".
                parse_authority(h)
                    .or_else(|| {
                        (!h.is_empty() && !h.contains('/')).then(|| Authority {
                            host: normalize_host(h),
                            port: None,
                        })
                    })
                    .ok_or_else(|| {
                        ConfigError::new("MCP_ALLOWED_HOSTS", format!("invalid entry {h:?}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let origins = origins
            .iter()
            .map(|o| {
                Self::parse_origin_rule(o.trim()).ok_or_else(|| {
                    ConfigError::new(
                        "MCP_ALLOWED_ORIGINS",
                        format!("invalid entry {o:?} (expected scheme://host[:port|:*] or null)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { hosts, origins })
    }

    fn parse_origin_rule(entry: &str) -> Option<OriginRule> {
        let (base, any_port) = match entry.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (entry, false),
        };
        match parse_origin(base).ok()? {
            None if !any_port => Some(OriginRule::Null),
            None => None,
            Some((_, _, Some(_))) if any_port => None,
            Some((scheme, host, port)) => {
                let port = match (any_port, port) {
                    (true, _) | (false, None) => PortRule::Any,
                    (false, Some(p)) => PortRule::Exact(p),
                };
                Some(OriginRule::Tuple { scheme, host, port })
            }
        }
    }

    /// Checks `Host` (or the HTTP/2 `:authority`) and `Origin`.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(http::header::HOST) {
            Some(v) => parse_authority(v.to_str().map_err(|_| Refusal::BadHost)?)
                .ok_or(Refusal::BadHost)?,
            None => {
                let a = uri.authority().ok_or(Refusal::MissingHost)?;
                Authority {
                    host: normalize_host(a.host()),
                    port: a.port_u16(),
                }
            }
        };
        let host_ok = self
            .hosts
            .iter()
            .any(|a| a.host == host.host && a.port.is_none_or(|p| host.port == Some(p)));
        if !host_ok {
            return Err(Refusal::HostNotAllowed);
        }
        let mut values = headers.get_all(http::header::ORIGIN).iter();
        let Some(origin) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(Refusal::OriginNotAllowed);
        }
        if self.origin_listed(origin) {
            Ok(())
        } else {
            Err(Refusal::OriginNotAllowed)
        }
    }

    /// The request's `Origin` when CORS may name it in
    /// `Access-Control-Allow-Origin`: exactly one `Origin`, listed in
    /// `MCP_ALLOWED_ORIGINS`.
    pub fn cors_origin<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let mut values = headers.get_all(http::header::ORIGIN).iter();
        let origin = values.next()?;
        (values.next().is_none() && self.origin_listed(origin)).then_some(origin)
    }

    fn origin_listed(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let Ok(origin) = parse_origin(origin) else {
            return false;
        };
        self.origins.iter().any(|rule| match (rule, &origin) {
            (OriginRule::Null, None) => true,
            (OriginRule::Tuple { scheme, host, port }, Some((o_scheme, o_host, o_port))) => {
                scheme == o_scheme
                    && host == o_host
                    && match port {
                        PortRule::Any => true,
                        PortRule::Exact(p) => o_port.or_else(|| default_port(o_scheme)) == Some(*p),
                    }
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy(hosts: &[&str], origins: &[&str]) -> HostPolicy {
        let h: Vec<String> = hosts.iter().map(|s| (*s).to_owned()).collect();
        let o: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        HostPolicy::new(&h, &o).unwrap()
    }

    fn req(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(http::header::HOST, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = origin {
            h.insert(http::header::ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hosts() {
        let p = policy(
            &["localhost", "127.0.0.1", "::1", "mcp.example.com:8001"],
            &["null"],
        );
        let uri = Uri::from_static("/mcp");
        assert_eq!(p.check(&uri, &req(Some("localhost:1234"), None)), Ok(()));
        assert_eq!(p.check(&uri, &req(Some("LOCALHOST"), None)), Ok(()));
        assert_eq!(p.check(&uri, &req(Some("[::1]:8000"), None)), Ok(()));
        assert_eq!(
            p.check(&uri, &req(Some("mcp.example.com:8001"), None)),
            Ok(())
        );
        assert_eq!(
            p.check(&uri, &req(Some("mcp.example.com"), None)),
            Err(Refusal::HostNotAllowed)
        );
        assert_eq!(
            p.check(&uri, &req(Some("evil.example.com"), None)),
            Err(Refusal::HostNotAllowed)
        );
        assert_eq!(
            p.check(&uri, &req(Some("localhost.evil.com"), None)),
            Err(Refusal::HostNotAllowed)
        );
        assert_eq!(
            p.check(&uri, &req(Some("user@localhost"), None)),
            Err(Refusal::BadHost)
        );
        assert_eq!(
            p.check(&uri, &req(Some("local host"), None)),
            Err(Refusal::BadHost)
        );
        assert_eq!(p.check(&uri, &req(None, None)), Err(Refusal::MissingHost));
        assert_eq!(
            p.check(
                &Uri::from_static("http://localhost:9/mcp"),
                &req(None, None)
            ),
            Ok(())
        );
    }

    #[test]
    fn origins() {
        let p = policy(
            &["localhost"],
            &[
                "http://localhost:*",
                "https://app.example.com",
                "https://x.example:8443",
                "null",
            ],
        );
        let uri = Uri::from_static("/mcp");
        let ok = |o: &str| p.check(&uri, &req(Some("localhost"), Some(o)));
        assert_eq!(ok("http://localhost:5173"), Ok(()));
        assert_eq!(ok("http://localhost"), Ok(()));
        assert_eq!(ok("https://app.example.com:9999"), Ok(()));
        assert_eq!(ok("https://x.example:8443"), Ok(()));
        assert_eq!(ok("null"), Ok(()));
        assert_eq!(ok("https://x.example"), Err(Refusal::OriginNotAllowed));
        assert_eq!(ok("https://localhost:5173"), Err(Refusal::OriginNotAllowed));
        assert_eq!(
            ok("http://evil.example.com"),
            Err(Refusal::OriginNotAllowed)
        );
        assert_eq!(ok("garbage"), Err(Refusal::OriginNotAllowed));
        // Without an Origin header (non-browser client) the check passes.
        assert_eq!(p.check(&uri, &req(Some("localhost"), None)), Ok(()));
    }

    #[test]
    fn cors_origin_needs_a_listed_origin() {
        let p = policy(&["localhost"], &["http://localhost:*", "null"]);
        let headers = req(Some("localhost"), Some("http://localhost:5173"));
        assert_eq!(
            p.cors_origin(&headers).map(HeaderValue::as_bytes),
            Some(&b"http://localhost:5173"[..])
        );
        assert_eq!(
            p.cors_origin(&req(Some("localhost"), Some("null")))
                .map(HeaderValue::as_bytes),
            Some(&b"null"[..])
        );
        assert_eq!(
            p.cors_origin(&req(Some("localhost"), Some("http://evil.example"))),
            None
        );
        assert_eq!(p.cors_origin(&req(Some("localhost"), None)), None);
        let mut two = req(Some("localhost"), Some("http://localhost:1"));
        two.append(
            http::header::ORIGIN,
            HeaderValue::from_static("http://localhost:2"),
        );
        assert_eq!(p.cors_origin(&two), None);
    }

    #[test]
    fn bad_entries_are_config_errors() {
        assert_eq!(
            HostPolicy::new(&["a/b".into()], &["null".into()])
                .unwrap_err()
                .var,
            "MCP_ALLOWED_HOSTS"
        );
        let host = ["localhost".to_owned()];
        assert_eq!(
            HostPolicy::new(&host, &["localhost".into()])
                .unwrap_err()
                .var,
            "MCP_ALLOWED_ORIGINS"
        );
        assert_eq!(
            HostPolicy::new(&host, &["https://x:443:*".into()])
                .unwrap_err()
                .var,
            "MCP_ALLOWED_ORIGINS"
        );
    }

    #[test]
    fn empty_lists_would_switch_a_check_off_and_are_refused() {
        let host = ["localhost".to_owned()];
        let origin = ["null".to_owned()];
        assert_eq!(
            HostPolicy::new(&[], &origin).unwrap_err().to_string(),
            "MCP_ALLOWED_HOSTS: names no host, which would switch the Host check \
             (DNS-rebinding protection) off: list the hosts clients use, or unset it for the \
             loopback default"
        );
        assert_eq!(
            HostPolicy::new(&host, &[]).unwrap_err().to_string(),
            "MCP_ALLOWED_ORIGINS: names no origin, which would switch the Origin check off: \
             list the browser origins allowed, or unset it for the loopback default"
        );
    }
}
