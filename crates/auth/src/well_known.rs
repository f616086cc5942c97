//! Well-known metadata URLs, built once for every party: RFC 8414 §3.1
//! (authorization-server metadata) and RFC 9728 §3.1 (protected-resource
//! metadata). Both insert the well-known segment between the host and the
//! path of the identifier, so `https://as.example/tenant` has its metadata at
//! `https://as.example/.well-known/oauth-authorization-server/tenant`.

use url::Url;

/// RFC 8414 well-known path segment.
pub const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery 1.0 well-known path segment.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
/// RFC 9728 well-known path segment.
pub const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";

/// `segment` inserted before `id`'s path (trailing slash dropped), without
/// query or fragment.
fn inserted(id: &Url, segment: &str) -> Url {
    let mut u = id.clone();
    let path = id.path().trim_end_matches('/').to_owned();
    u.set_path(&format!("{segment}{path}"));
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// RFC 8414 §3.1: where the metadata of `issuer` lives.
pub fn authorization_server_metadata_url(issuer: &Url) -> Url {
    inserted(issuer, AUTHORIZATION_SERVER)
}

/// Where a client looks for `issuer`'s metadata, in the order of the MCP
/// authorization spec: RFC 8414 path insertion, then OpenID Connect
/// discovery with path insertion, then OpenID Connect discovery appended to
/// the issuer's path. An issuer without a path has two candidates.
pub fn authorization_server_metadata_candidates(issuer: &Url) -> Vec<Url> {
    let mut urls = vec![
        authorization_server_metadata_url(issuer),
        inserted(issuer, OPENID_CONFIGURATION),
    ];
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        let mut appended = issuer.clone();
        appended.set_path(&format!("{path}{OPENID_CONFIGURATION}"));
        appended.set_query(None);
        appended.set_fragment(None);
        urls.push(appended);
    }
    urls
}

/// RFC 9728 §3.1: the path (on the resource's origin) of its metadata, e.g.
/// `/.well-known/oauth-protected-resource/mcp`. Unparseable input gets the root form.
pub fn protected_resource_metadata_path(resource: &str) -> String {
    match Url::parse(resource) {
        Ok(u) => inserted(&u, PROTECTED_RESOURCE).path().to_owned(),
        Err(_) => PROTECTED_RESOURCE.to_owned(),
    }
}

/// RFC 9728 §3.1: the absolute metadata URL of `resource` (the one a 401
/// challenge names).
pub fn protected_resource_metadata_url(resource: &Url) -> Url {
    inserted(resource, PROTECTED_RESOURCE)
}

/// Where a client looks for `resource`'s metadata without a challenge to
/// point it: the path-inserted URL, then the root form (MCP authorization
/// spec). One entry when the resource has no path.
pub fn protected_resource_metadata_candidates(resource: &Url) -> Vec<Url> {
    let first = protected_resource_metadata_url(resource);
    let mut root = first.clone();
    root.set_path(PROTECTED_RESOURCE);
    if first == root {
        vec![root]
    } else {
        vec![first, root]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_server_candidates_follow_the_mcp_spec_order() {
        let list = |issuer: &str| -> Vec<String> {
            authorization_server_metadata_candidates(&url(issuer))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            list("https://auth.example.com/tenant1/"),
            vec![
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            list("http://localhost:8080"),
            vec![
                "http://localhost:8080/.well-known/oauth-authorization-server",
                "http://localhost:8080/.well-known/openid-configuration",
            ]
        );
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn authorization_server_paths() {
        assert_eq!(
            authorization_server_metadata_url(&url("http://localhost:8080")).as_str(),
            "http://localhost:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            authorization_server_metadata_url(&url("https://as.example/tenant/")).as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant"
        );
    }

    #[test]
    fn protected_resource_paths() {
        assert_eq!(
            protected_resource_metadata_path("http://localhost:8000/mcp"),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            protected_resource_metadata_path("https://mcp.example"),
            "/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            protected_resource_metadata_url(&url("https://localhost:8001/mcp?x=1")).as_str(),
            "https://localhost:8001/.well-known/oauth-protected-resource/mcp"
        );
        let c = protected_resource_metadata_candidates(&url("http://localhost:8000/mcp/"));
        assert_eq!(
            c.iter().map(Url::as_str).collect::<Vec<_>>(),
            [
                "http://localhost:8000/.well-known/oauth-protected-resource/mcp",
                "http://localhost:8000/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            protected_resource_metadata_candidates(&url("https://mcp.example")).len(),
            1
        );
    }
}
