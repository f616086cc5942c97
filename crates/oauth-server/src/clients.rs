//! The client registry (`OAUTH_CLIENTS_FILE`) and client-secret hashes.
//!
//! Secrets are stored only as hashes, in one of two forms:
//! - `sha256:<hex>` for generated, high-entropy secrets (≥ 128 bits). A slow
//!   hash adds nothing when brute force is already infeasible, and SHA-256
//!   keeps the token endpoint fast.
//! - an `$argon2id$…` PHC string for human-chosen secrets, where a slow,
//!   memory-hard hash is what stands between a leaked registry and the secret.
//!
//! Both are compared in constant time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use auth::jwk::Jwk;
use auth::keys::VerifyingKey;
use auth::scope::ScopeSet;
use auth::uri::canonical_resource;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Client authentication methods (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// Public client (RFC 7591 `none`): identifies itself with `client_id`
    /// only; allowed only for the authorization_code and refresh_token
    /// grants, where PKCE and the bound redirect URI stand in for a secret.
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }
}

/// A stored secret hash.
#[derive(Clone)]
pub enum SecretHash {
    Sha256([u8; 32]),
    /// Validated PHC string (shared with the verification threads).
    Argon2id(Arc<str>),
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretHash::Sha256(_) => "SecretHash::Sha256(..)",
            SecretHash::Argon2id(_) => "SecretHash::Argon2id(..)",
        })
    }
}

impl SecretHash {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            let bytes = decode_hex(hex).ok_or("sha256: hash must be 64 hex digits")?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| "sha256: hash must be 64 hex digits")?;
            Ok(SecretHash::Sha256(arr))
        } else if s.starts_with("$argon2id$") {
            PasswordHash::new(s).map_err(|e| format!("invalid argon2id PHC string: {e}"))?;
            Ok(SecretHash::Argon2id(Arc::from(s)))
        } else {
            Err("secret_hash must start with `sha256:` or `$argon2id$` (use `oauth-server hash-secret`)".into())
        }
    }

    /// Whether verification is expensive (run it off the async workers).
    pub fn is_slow(&self) -> bool {
        matches!(self, SecretHash::Argon2id(_))
    }

    /// Constant-time check of `secret` against the hash, on this thread
    /// (the server verifies argon2id through [`crate::argon::ClientSecrets`]).
    pub fn verify(&self, secret: &[u8]) -> bool {
        match self {
            SecretHash::Sha256(expected) => {
                let got: [u8; 32] = Sha256::digest(secret).into();
                got.ct_eq(expected).into()
            }
            SecretHash::Argon2id(phc) => match PasswordHash::new(phc) {
                Ok(parsed) => Argon2::default().verify_password(secret, &parsed).is_ok(),
                Err(_) => false,
            },
        }
    }
}

/// `sha256:<hex>` for a high-entropy secret.
pub fn hash_sha256(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    let mut out = String::from("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// An argon2id PHC string (argon2 crate defaults: m=19 MiB, t=2, p=1 — the
/// OWASP minimum) for a human-chosen secret.
pub fn hash_argon2id(secret: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How a client proves who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    Secret(SecretHash),
    PublicKey(Arc<VerifyingKey>),
    /// Public client (authorization code + PKCE): cannot use client_credentials.
    None,
}

/// One registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    /// Shown on the consent page (`client_name`; the client_id when unset).
    pub client_name: String,
    /// Registered redirect URIs (validated by `auth::uri::validate_redirect_uri`);
    /// matched by `auth::uri::redirect_uri_matches`.
    pub redirect_uris: Vec<String>,
    /// For a client ID metadata document client: the document URL (its
    /// client_id), shown on the consent page as the client's origin.
    pub document_url: Option<String>,
    pub credential: Credential,
    pub auth_methods: Vec<AuthMethod>,
    pub grant_types: Vec<String>,
    pub allowed_scopes: ScopeSet,
    pub default_scopes: ScopeSet,
    /// Canonical resource URIs this client may get tokens for.
    pub allowed_resources: Vec<String>,
    /// May introspect tokens issued to other clients (resource servers).
    pub can_introspect: bool,
}

/// The registry, keyed by client_id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    clients: HashMap<String, Arc<Client>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClient {
    client_id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    secret_hash: Option<String>,
    #[serde(default)]
    public_key_pem: Option<String>,
    #[serde(default)]
    jwk: Option<Jwk>,
    #[serde(default)]
    auth_methods: Option<Vec<AuthMethod>>,
    #[serde(default = "default_grants")]
    grant_types: Vec<String>,
    #[serde(default)]
    allowed_scopes: Vec<String>,
    #[serde(default)]
    default_scopes: Vec<String>,
    #[serde(default)]
    allowed_resources: Vec<String>,
    #[serde(default)]
    can_introspect: bool,
}

fn default_grants() -> Vec<String> {
    vec!["client_credentials".into()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "client")]
    clients: Vec<FileClient>,
}

impl Registry {
    /// Loads and validates a registry file; errors name the client and field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut clients = HashMap::new();
        for fc in file.clients {
            let id = fc.client_id.clone();
            let client = build_client(fc).map_err(|e| format!("client {id:?}: {e}"))?;
            if clients.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(format!("client {id:?} is registered twice"));
            }
        }
        Ok(Self { clients })
    }

    pub fn get(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// Every client id of the file (the metrics' `client_id` label values).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Every argon2id secret hash of the registry (for the equal-cost dummy).
    pub fn argon2_hashes(&self) -> Vec<Arc<str>> {
        let mut ids: Vec<&String> = self.clients.keys().collect();
        // In client_id order, so "the first" is the same on every start.
        ids.sort();
        ids.into_iter()
            .filter_map(|id| match &self.clients.get(id)?.credential {
                Credential::Secret(SecretHash::Argon2id(phc)) => Some(phc.clone()),
                _ => None,
            })
            .collect()
    }

    /// Union of every client's allowed scopes (for `scopes_supported`).
    pub fn all_scopes(&self) -> ScopeSet {
        self.clients
            .values()
            .fold(ScopeSet::new(), |acc, c| acc.union(&c.allowed_scopes))
    }
}

fn build_client(fc: FileClient) -> Result<Client, String> {
    if fc.client_id.is_empty()
        || fc.client_id.len() > 128
        || fc.client_id.chars().any(char::is_control)
    {
        return Err("client_id must be 1-128 printable characters".into());
    }
    let _ = fc.description;
    let key = match (fc.public_key_pem, fc.jwk) {
        (Some(_), Some(_)) => return Err("give either public_key_pem or jwk, not both".into()),
        (Some(pem), None) => {
            Some(VerifyingKey::from_public_pem(&pem).map_err(|e| format!("public_key_pem: {e}"))?)
        }
        (None, Some(jwk)) => Some(VerifyingKey::from_jwk(&jwk).map_err(|e| format!("jwk: {e}"))?),
        (None, None) => None,
    };
    let credential = match (fc.secret_hash, key) {
        (Some(_), Some(_)) => {
            return Err("give either secret_hash or a public key, not both".into());
        }
        (Some(h), None) => Credential::Secret(SecretHash::parse(&h)?),
        (None, Some(k)) => Credential::PublicKey(Arc::new(k)),
        (None, None) => Credential::None,
    };
    let auth_methods = fc.auth_methods.unwrap_or_else(|| match credential {
        Credential::Secret(_) => vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
        Credential::PublicKey(_) => vec![AuthMethod::PrivateKeyJwt],
        Credential::None => vec![AuthMethod::None],
    });
    for m in &auth_methods {
        let ok = match m {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                matches!(credential, Credential::Secret(_))
            }
            AuthMethod::PrivateKeyJwt => matches!(credential, Credential::PublicKey(_)),
            AuthMethod::None => matches!(credential, Credential::None),
        };
        if !ok {
            return Err(format!(
                "auth method {} needs a matching credential",
                m.as_str()
            ));
        }
    }
    let allowed_scopes = ScopeSet::try_from_tokens(&fc.allowed_scopes)
        .map_err(|e| format!("allowed_scopes: {e}"))?;
    let default_scopes = ScopeSet::try_from_tokens(&fc.default_scopes)
        .map_err(|e| format!("default_scopes: {e}"))?;
    if !default_scopes.is_subset(&allowed_scopes) {
        return Err("default_scopes must be a subset of allowed_scopes".into());
    }
    let allowed_resources = fc
        .allowed_resources
        .iter()
        .map(|r| canonical_resource(r).map_err(|e| format!("allowed_resources {r:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for uri in &fc.redirect_uris {
        auth::uri::validate_redirect_uri(uri).map_err(|e| format!("redirect_uris {uri:?}: {e}"))?;
    }
    let uses_redirects = fc.grant_types.iter().any(|g| g == "authorization_code");
    if uses_redirects && fc.redirect_uris.is_empty() {
        return Err("the authorization_code grant needs at least one redirect_uris entry".into());
    }
    if matches!(credential, Credential::None)
        && fc.grant_types.iter().any(|g| g == "client_credentials")
    {
        return Err("a public client (no secret or key) cannot use client_credentials".into());
    }
    Ok(Client {
        client_name: fc.client_name.unwrap_or_else(|| fc.client_id.clone()),
        redirect_uris: fc.redirect_uris,
        document_url: None,
        client_id: fc.client_id,
        credential,
        auth_methods,
        grant_types: fc.grant_types,
        allowed_scopes,
        default_scopes,
        allowed_resources,
        can_introspect: fc.can_introspect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hash_roundtrip_and_constant_time_compare() {
        let h = SecretHash::parse(&hash_sha256(b"s3cret")).unwrap();
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cres"));
        assert!(!h.verify(b""));
        assert!(!h.is_slow());
    }

    #[test]
    fn argon2_hash_roundtrip() {
        let h = SecretHash::parse(&hash_argon2id(b"pw").unwrap()).unwrap();
        assert!(h.is_slow());
        assert!(h.verify(b"pw"));
        assert!(!h.verify(b"pW"));
    }

    #[test]
    fn refuses_bad_registries() {
        assert!(
            SecretHash::parse("plain")
                .unwrap_err()
                .contains("hash-secret")
        );
        assert!(SecretHash::parse("sha256:zz").is_err());
        let base = |extra: &str| {
            format!(
                "[[client]]\nclient_id = \"c\"\nsecret_hash = \"{}\"\nallowed_scopes = [\"a\"]\n{extra}",
                hash_sha256(b"x")
            )
        };
        assert!(Registry::parse(&base("")).is_ok());
        assert!(
            Registry::parse(&base("default_scopes = [\"b\"]"))
                .unwrap_err()
                .contains("subset")
        );
        assert!(
            Registry::parse(&base("allowed_resources = [\"http://x/#f\"]"))
                .unwrap_err()
                .contains("allowed_resources")
        );
        assert!(
            Registry::parse(&base("auth_methods = [\"private_key_jwt\"]"))
                .unwrap_err()
                .contains("matching credential")
        );
        assert!(
            Registry::parse(&base("bogus = 1")).is_err(),
            "unknown fields are refused"
        );
        let twice = format!("{}\n{}", base(""), base(""));
        assert!(Registry::parse(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn dev_registry_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/clients.toml");
        let reg = Registry::load(&path).unwrap();
        let all = reg.get("mcp-secure-client").unwrap();
        assert_eq!(
            all.allowed_scopes.to_string(),
            "account:calculate customer:read security:read ticket:create"
        );
        assert!(reg.get("openai-mcp-client").is_some());
        assert!(reg.get("anthropic-mcp-client").is_some());
        assert!(reg.get("claude-desktop-client").is_some());
    }
}
