//! The protocol rules of secure-mcp, each written once.
//!
//! Pure: no I/O, no runtime, no axum, rmcp, Redis or HTTP client, so the
//! client binaries link none of the server plumbing (that lives in
//! `server-kit`). The oauth-server *issues* tokens with these types, the
//! mcp-server *verifies* them, and the clients parse scopes, issuers and
//! metadata URLs with them.
//!
//! # Layout
//! - [`scope`]: the RFC 6749 scope-token grammar and [`scope::ScopeSet`].
//! - [`uri`]: canonical resource URIs (RFC 8707 `resource`, MCP `aud`) and
//!   issuer normalisation (RFC 8414 §2), the one spelling all parties compare.
//! - [`well_known`]: RFC 8414 and RFC 9728 metadata URLs.
//! - [`claims`]: RFC 9068 access-token claims.
//! - [`keys`]: signing keys (RS256 / ES256 / EdDSA, pre-parsed once) and
//!   verifying keys built from JWKs or PEM; RFC 7638 thumbprints as `kid`.
//! - [`jwk`]: JWK / JWKS documents.
//! - [`pkce`]: RFC 7636 S256 (verifier and challenge syntax, the check).
//! - [`jwt`]: compact JWS encoding and the strict decoder (alg allow-list,
//!   size limits) shared by access tokens and client assertions.
//! - [`verify`]: the access-token [`verify::Verifier`], its claim rules and
//!   the [`verify::KeySource`] trait (static keys here; the remote JWKS cache
//!   is in `server-kit`).
//! - [`audit`]: the audit event schema: stable names and fields.
//!
//! # Flow of a verification
//! `Verifier::verify(token)` → [`jwt::Unverified::parse`] (size, shape, header,
//! alg allow-list) → key lookup by `kid` (one refetch on miss) → key/alg match
//! → signature → claims (`typ`, `iss`, `aud`, `exp`/`nbf`/`iat`, `scope`).

pub mod audit;
pub mod claims;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod pkce;
pub mod scope;
pub mod uri;
pub mod verify;
pub mod well_known;

pub use claims::{AccessTokenClaims, Audience};
pub use keys::{Algorithm, SigningKey, VerifyingKey};
pub use scope::ScopeSet;
pub use verify::{Verifier, VerifyError};

/// Seconds since the Unix epoch (the JWT `NumericDate`).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
