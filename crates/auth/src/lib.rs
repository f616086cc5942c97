//! Shared security primitives for secure-mcp.
//!
//! Everything here is framework-free: no axum, no rmcp. The oauth-server
//! *issues* tokens with these types, the mcp-server *verifies* them, and the
//! clients parse scopes and metadata with them.
//!
//! # Layout
//! - [`scope`]: the RFC 6749 scope-token grammar and [`scope::ScopeSet`].
//! - [`uri`]: canonical resource URIs (RFC 8707 `resource`, MCP `aud`).
//! - [`claims`]: RFC 9068 access-token claims.
//! - [`keys`]: signing keys (RS256 / ES256 / EdDSA, pre-parsed once) and
//!   verifying keys built from JWKs or PEM; RFC 7638 thumbprints as `kid`.
//! - [`jwk`]: JWK / JWKS documents.
//! - [`jwt`]: compact JWS encoding and the strict decoder (alg allow-list,
//!   size limits) shared by access tokens and client assertions.
//! - [`verify`]: the access-token [`verify::Verifier`] and its key sources
//!   (static keys, remote JWKS with rate-limited refetch on unknown `kid`).
//! - [`store`]: revocation and replay stores (in-memory and Redis).
//! - [`config`], [`telemetry`], [`shutdown`]: the start-up helpers every binary uses;
//!   [`cli`]: exit codes and the `--help` table of environment variables.
//!
//! # Flow of a verification
//! `Verifier::verify(token)` → [`jwt::Unverified::parse`] (size, shape, header,
//! alg allow-list) → key lookup by `kid` (one refetch on miss) → key/alg match
//! → signature → claims (`typ`, `iss`, `aud`, `exp`/`nbf`/`iat`, `scope`).

pub mod claims;
pub mod cli;
pub mod config;
pub mod jwk;
pub mod jwt;
pub mod keys;
pub mod scope;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod uri;
pub mod verify;

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
