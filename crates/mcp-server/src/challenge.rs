//! RFC 6750 / RFC 9728 challenges: the `WWW-Authenticate` values of the 401
//! and 403 answers of `/mcp` (the answers themselves are
//! [`McpHttpError::Unauthorized`] and [`McpHttpError::InsufficientScope`]).
//!
//! The header values are computed once at start-up ([`Challenges::new`]);
//! only the 403's required scope and description vary per request.
//!
//! - 401, no token: `Bearer resource_metadata="<PRM URL>", scope="<scopes_supported>"`
//! - 401, token refused: `Bearer error="invalid_token", resource_metadata="…", scope="…"`
//! - 403: `Bearer error="insufficient_scope", scope="<needed>", resource_metadata="…", error_description="…"`
//!
//! Bodies are the OAuth error JSON (`{"error": …, "error_description": …}`);
//! none says why a token was refused (that is in the audit log).

use http::HeaderValue;

use crate::error::McpHttpError;

/// Pre-built challenge header values.
#[derive(Debug, Clone)]
pub struct Challenges {
    metadata_url: String,
    missing: HeaderValue,
    invalid: HeaderValue,
}

impl Challenges {
    /// `metadata_url`: the RFC 9728 document URL; `scopes`: `scopes_supported`.
    pub fn new(
        metadata_url: &str,
        scopes: &[&str],
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        let scope = scopes.join(" ");
        let missing = HeaderValue::from_str(&format!(
            r#"Bearer resource_metadata="{metadata_url}", scope="{scope}""#
        ))?;
        let invalid = HeaderValue::from_str(&format!(
            r#"Bearer error="invalid_token", resource_metadata="{metadata_url}", scope="{scope}""#
        ))?;
        Ok(Self {
            metadata_url: metadata_url.to_owned(),
            missing,
            invalid,
        })
    }

    /// The 401 answer (`error="invalid_token"` when a token was sent).
    pub fn unauthorized(&self, token_sent: bool) -> McpHttpError {
        McpHttpError::Unauthorized {
            challenge: if token_sent {
                self.invalid.clone()
            } else {
                self.missing.clone()
            },
            token_sent,
        }
    }

    /// The 403 answer for an operation needing `scope`.
    pub fn forbidden(&self, scope: &'static str, description: String) -> McpHttpError {
        McpHttpError::InsufficientScope {
            challenge: self.insufficient_scope(&[scope], &description),
            scope,
            description,
        }
    }

    /// The 403 challenge for an operation needing `scopes`.
    pub fn insufficient_scope(&self, scopes: &[&str], description: &str) -> HeaderValue {
        // Our scopes and descriptions never contain `"` or `\`; strip them anyway
        // so a quoted-string can never be broken.
        let clean = |s: &str| {
            s.chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect::<String>()
        };
        let value = format!(
            r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{}", error_description="{}""#,
            clean(&scopes.join(" ")),
            self.metadata_url,
            clean(description)
        );
        HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer error="insufficient_scope""#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let c = Challenges::new(
            "http://localhost:8000/.well-known/oauth-protected-resource/mcp",
            &["a:b", "c:d"],
        )
        .unwrap();
        assert_eq!(
            c.missing,
            r#"Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="a:b c:d""#
        );
        assert_eq!(
            c.invalid,
            r#"Bearer error="invalid_token", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", scope="a:b c:d""#
        );
        assert_eq!(
            c.insufficient_scope(&["t:c"], r#"say "hi""#),
            r#"Bearer error="insufficient_scope", scope="t:c", resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/mcp", error_description="say hi""#
        );
    }
}
