//! What a token may carry: the scope policy and the RFC 8707 resource rule,
//! shared by every grant (client credentials, authorization code, refresh)
//! and by the authorization endpoint.

use auth::scope::ScopeSet;
use auth::uri::canonical_resource;

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};

/// The scope policy (DESIGN.md §4): a request gets the intersection of what
/// it asks for and everything in `limits` (the client's allowed scopes, the
/// user's, the consented set); an omitted `scope` asks for `default`.
/// `invalid_scope` only when a requested scope is unknown to this server,
/// or when the intersection is empty.
pub fn grant_scope(
    requested: Option<&str>,
    default: &ScopeSet,
    limits: &[&ScopeSet],
    known: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let requested = match requested {
        Some(s) => ScopeSet::parse(s).map_err(|e| {
            OAuthError::new(ErrorCode::InvalidScope, format!("scope is malformed: {e}"))
        })?,
        None => default.clone(),
    };
    if !requested.is_subset(known) {
        let unknown: Vec<&str> = requested.difference(known).collect();
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("unknown scope: {}", unknown.join(" ")),
        ));
    }
    let granted = limits
        .iter()
        .fold(requested, |acc, limit| acc.intersection(limit));
    if granted.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "none of the requested scopes may be granted to this client",
        ));
    }
    Ok(granted)
}

/// RFC 8707: the resource must be one of the client's effective resources
/// (allowed for the client AND served by this issuer, `served`); omitted →
/// the single effective one, or `invalid_target` when there are several.
pub fn grant_resource(
    requested: Option<&str>,
    client: &Client,
    served: &[String],
) -> Result<String, OAuthError> {
    let effective = || {
        client
            .allowed_resources
            .iter()
            .filter(|r| served.contains(r))
    };
    match requested {
        Some(raw) => {
            let r = canonical_resource(raw).map_err(|e| {
                OAuthError::new(
                    ErrorCode::InvalidTarget,
                    format!("resource is not a valid absolute URI: {e}"),
                )
            })?;
            if effective().any(|e| *e == r) {
                Ok(r)
            } else {
                Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource is not allowed for this client",
                ))
            }
        }
        None => {
            let mut it = effective();
            match (it.next(), it.next()) {
                (Some(only), None) => Ok(only.clone()),
                (None, _) => Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "this client may not get tokens for any resource served here",
                )),
                (Some(_), Some(_)) => Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource is required: this client may use several",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> ScopeSet {
        ScopeSet::parse(x).unwrap()
    }

    #[test]
    fn intersection_not_refusal() {
        let known = s("customer:read ticket:create account:calculate security:read");
        let client = s("customer:read ticket:create account:calculate");
        let got = grant_scope(
            Some("customer:read ticket:create account:calculate security:read"),
            &client,
            &[&client],
            &known,
        )
        .unwrap();
        assert_eq!(got, client);
        let user = s("customer:read");
        let got = grant_scope(None, &client, &[&client, &user], &known).unwrap();
        assert_eq!(got, user);
    }

    #[test]
    fn unknown_or_empty_is_invalid_scope() {
        let known = s("customer:read security:read");
        let client = s("customer:read");
        let e = grant_scope(Some("customer:read admin"), &client, &[&client], &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert!(
            e.description.contains("unknown scope: admin"),
            "{}",
            e.description
        );
        let e = grant_scope(Some("security:read"), &client, &[&client], &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let e = grant_scope(None, &ScopeSet::new(), &[&client], &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let e = grant_scope(Some("bad\"scope"), &client, &[&client], &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
    }
}
