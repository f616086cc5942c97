//! Client configuration from the environment (and `.env`), validated once.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use auth::ScopeSet;
use auth::keys::SigningKey;
use secrecy::SecretString;
use url::Url;

use crate::retry::RetryPolicy;

/// Default MCP endpoint (DESIGN.md §2, local URLs).
pub const DEFAULT_MCP_SERVER_URL: &str = "http://localhost:8000/mcp";
/// Default authorization server (DESIGN.md §2, local URLs): the one the
/// default MCP endpoint names.
pub const DEFAULT_OAUTH_ISSUER: &str = "http://localhost:8080";

/// A variable that is missing or wrong; `Display` is one line that names
/// the variable and the fix, e.g. `OPENAI_API_KEY is not set — put it in
/// .env or export it`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }

    /// `VAR is not set — put it in .env or export it`.
    pub fn missing(var: &str) -> Self {
        Self::new(var, "is not set — put it in .env or export it")
    }
}

/// Where variables come from: the process environment in binaries, a map in tests.
pub trait Vars {
    /// The value, with unset and blank treated alike.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env;

impl Vars for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

/// Loads `.env` from the working directory if there is one.
/// A malformed file is an error; a missing one is not.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
    }
}

/// A required secret such as an LLM API key.
pub fn required_secret(vars: &impl Vars, name: &str) -> Result<SecretString, ConfigError> {
    vars.get(name)
        .map(|v| SecretString::from(v.trim().to_owned()))
        .ok_or_else(|| ConfigError::missing(name))
}

/// An http(s) URL; plain http only to loopback hosts so that tokens and
/// secrets never cross a network in clear text.
pub fn parse_url(var: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ConfigError::new(var, format!("is not a URL ({e}): {value:?}")))?;
    check_url_scheme(var, &url)?;
    Ok(url)
}

/// Checks the scheme rule of [`parse_url`] on an already parsed URL.
pub fn check_url_scheme(var: &str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if auth::uri::is_loopback_host(url) => Ok(()),
        "http" => Err(ConfigError::new(
            var,
            format!("must use https (plain http is allowed only for localhost): {url}"),
        )),
        _ => Err(ConfigError::new(
            var,
            format!("must be an http(s) URL: {url}"),
        )),
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// A public client (authorization code + PKCE): only its `client_id` is sent.
    None,
    /// A shared secret, sent with `method`.
    Secret {
        secret: SecretString,
        method: Option<SecretMethod>,
    },
    /// private_key_jwt (RFC 7523): an assertion signed with this key.
    PrivateKeyJwt { key: Arc<SigningKey> },
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Secret { method, .. } => f
                .debug_struct("Secret")
                .field("secret", &"[redacted]")
                .field("method", method)
                .finish(),
            Self::PrivateKeyJwt { key } => f
                .debug_struct("PrivateKeyJwt")
                .field("alg", &key.alg())
                .field("kid", &key.kid())
                .finish(),
        }
    }
}

/// client_secret_basic or client_secret_post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMethod {
    Basic,
    Post,
}

impl SecretMethod {
    /// The RFC 7591 / RFC 8414 name, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::Basic),
            "client_secret_post" => Some(Self::Post),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
        }
    }
}

/// The OAuth client identity.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub auth: ClientAuth,
}

/// Client configuration.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `MCP_SERVER_URL` | `http://localhost:8000/mcp` | the MCP endpoint (https, or http to localhost) |
/// | `OAUTH_ISSUER` | `http://localhost:8080` | the authorization server this client's credentials belong to: discovery may confirm it, never replace it (the secret goes nowhere else) |
/// | `OAUTH_TOKEN_URL` | discovered | token endpoint; unset = MCP 401 challenge → RFC 9728 metadata (must name `OAUTH_ISSUER`) → RFC 8414 metadata |
/// | `OAUTH_CLIENT_ID` | required | the registered client |
/// | `OAUTH_CLIENT_SECRET` | — | client secret (client_secret_basic, or _post when the server only offers that) |
/// | `OAUTH_CLIENT_KEY_FILE` | — | PEM private key (PKCS#8 EC/Ed25519/RSA) for private_key_jwt, instead of a secret |
/// | `OAUTH_TOKEN_AUTH_METHOD` | from server metadata | force `client_secret_basic` or `client_secret_post` |
/// | `OAUTH_SCOPES` | the client's default scopes | space-separated scopes to request |
/// | `SSL_CERT_FILE`, `MCP_CA_CERT` | — | extra trusted root CA(s), PEM; added to the webpki roots |
///
/// Exactly one of `OAUTH_CLIENT_SECRET` and `OAUTH_CLIENT_KEY_FILE` must be set.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub mcp_url: Url,
    /// `OAUTH_ISSUER`, normalised (`auth::uri::normalize_issuer`).
    pub issuer: String,
    pub token_url: Option<Url>,
    pub credentials: Credentials,
    pub scopes: Option<ScopeSet>,
    pub ca_files: Vec<(String, PathBuf)>,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Reads `.env` and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dotenv()?;
        Self::from_vars(&Env)
    }

    /// Reads every variable through `vars` and validates it.
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let mcp_url = mcp_url(vars)?;
        let token_url = vars
            .get("OAUTH_TOKEN_URL")
            .map(|v| parse_url("OAUTH_TOKEN_URL", &v))
            .transpose()?;
        let issuer = issuer(vars)?;
        let client_id = vars.get("OAUTH_CLIENT_ID").ok_or_else(|| {
            ConfigError::new(
                "OAUTH_CLIENT_ID",
                "is not set — put it in .env or export it (the dev clients are in config/clients.toml)",
            )
        })?;
        let method = vars
            .get("OAUTH_TOKEN_AUTH_METHOD")
            .map(|m| {
                SecretMethod::parse(m.trim()).ok_or_else(|| {
                    ConfigError::new(
                        "OAUTH_TOKEN_AUTH_METHOD",
                        format!(
                            "must be client_secret_basic or client_secret_post, not {:?}",
                            m.trim()
                        ),
                    )
                })
            })
            .transpose()?;
        let auth = match (
            vars.get("OAUTH_CLIENT_SECRET"),
            vars.get("OAUTH_CLIENT_KEY_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "OAUTH_CLIENT_KEY_FILE",
                    "and OAUTH_CLIENT_SECRET are both set — keep only one",
                ));
            }
            (Some(secret), None) => ClientAuth::Secret {
                secret: SecretString::from(secret),
                method,
            },
            (None, Some(path)) => ClientAuth::PrivateKeyJwt {
                key: Arc::new(load_key("OAUTH_CLIENT_KEY_FILE", &path)?),
            },
            (None, None) => {
                return Err(ConfigError::new(
                    "OAUTH_CLIENT_SECRET",
                    "is not set (nor OAUTH_CLIENT_KEY_FILE) — put the client secret in .env or export it",
                ));
            }
        };
        let scopes = scopes(vars)?;
        let ca_files = ca_files(vars);
        Ok(Self {
            mcp_url,
            issuer,
            token_url,
            credentials: Credentials { client_id, auth },
            scopes,
            ca_files,
            retry: RetryPolicy::default(),
        })
    }
}

/// The extra CA files named by `SSL_CERT_FILE` and `MCP_CA_CERT`, as `(variable, path)`.
/// `MCP_SERVER_URL` (default: the local server), usable as a resource.
pub fn mcp_url(vars: &impl Vars) -> Result<Url, ConfigError> {
    let url = parse_url(
        "MCP_SERVER_URL",
        &vars
            .get("MCP_SERVER_URL")
            .unwrap_or_else(|| DEFAULT_MCP_SERVER_URL.to_owned()),
    )?;
    auth::uri::canonical_resource(url.as_str())
        .map_err(|e| ConfigError::new("MCP_SERVER_URL", format!("is not usable: {e}")))?;
    Ok(url)
}

/// `OAUTH_ISSUER` in its normalised spelling (default: the local server).
pub fn issuer(vars: &impl Vars) -> Result<String, ConfigError> {
    auth::uri::normalize_issuer(
        &vars
            .get("OAUTH_ISSUER")
            .unwrap_or_else(|| DEFAULT_OAUTH_ISSUER.to_owned()),
    )
    .map_err(|e| ConfigError::new("OAUTH_ISSUER", format!("is not a valid issuer: {e}")))
}

/// `OAUTH_SCOPES`, space separated (unset: the server's default).
pub fn scopes(vars: &impl Vars) -> Result<Option<ScopeSet>, ConfigError> {
    vars.get("OAUTH_SCOPES")
        .map(|s| parse_scopes("OAUTH_SCOPES", &s))
        .transpose()
}

/// A space-separated scope list named by `var`.
pub fn parse_scopes(var: &str, value: &str) -> Result<ScopeSet, ConfigError> {
    let joined = value.split_whitespace().collect::<Vec<_>>().join(" ");
    ScopeSet::parse(&joined).map_err(|e| ConfigError::new(var, format!("is invalid: {e}")))
}

/// Whether machine credentials are configured (a secret or a key): then
/// the client uses client_credentials, else a person's stored login.
pub fn has_machine_credentials(vars: &impl Vars) -> bool {
    vars.get("OAUTH_CLIENT_SECRET").is_some() || vars.get("OAUTH_CLIENT_KEY_FILE").is_some()
}

/// What a person's login needs from the environment.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub mcp_url: Url,
    /// The authorization server the person signs in at (discovery may
    /// confirm it, never replace it: the password goes there).
    pub issuer: String,
    pub scopes: Option<ScopeSet>,
    pub retry: RetryPolicy,
}

impl LoginConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            mcp_url: mcp_url(vars)?,
            issuer: issuer(vars)?,
            scopes: scopes(vars)?,
            retry: RetryPolicy::default(),
        })
    }

    /// The store key of this login: (issuer, canonical MCP URL).
    pub fn store_key(&self) -> String {
        let resource = auth::uri::canonical_resource(self.mcp_url.as_str())
            .unwrap_or_else(|_| self.mcp_url.to_string());
        crate::store::StoredLogin::key(&self.issuer, &resource)
    }
}

pub fn ca_files(vars: &impl Vars) -> Vec<(String, PathBuf)> {
    ["SSL_CERT_FILE", "MCP_CA_CERT"]
        .into_iter()
        .filter_map(|var| {
            vars.get(var)
                .map(|p| (var.to_owned(), PathBuf::from(p.trim())))
        })
        .collect()
}

/// Reads a private key for private_key_jwt.
pub fn load_key(var: &str, path: &str) -> Result<SigningKey, ConfigError> {
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| ConfigError::new(var, format!("cannot be read ({e}): {path}")))?;
    SigningKey::from_pem(&text).map_err(|e| {
        ConfigError::new(
            var,
            format!("is not a usable private key ({e}) — expected a PKCS#8 PEM (EC P-256, Ed25519 or RSA ≥ 2048): {path}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Vars {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn minimal_secret_config() {
        let c = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "openai-mcp-client"),
            ("OAUTH_CLIENT_SECRET", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(c.mcp_url.as_str(), DEFAULT_MCP_SERVER_URL);
        assert!(c.token_url.is_none());
        assert!(c.scopes.is_none());
        assert!(matches!(
            c.credentials.auth,
            ClientAuth::Secret { method: None, .. }
        ));
        // The secret never shows in Debug output.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_variable_and_the_fix() {
        let e = ClientConfig::from_vars(&vars(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_CLIENT_ID is not set — put it in .env or export it (the dev clients are in config/clients.toml)"
        );
        let e = ClientConfig::from_vars(&vars(&[("OAUTH_CLIENT_ID", "x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_CLIENT_SECRET is not set (nor OAUTH_CLIENT_KEY_FILE) — put the client secret in .env or export it"
        );
        let e = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_SECRET", "y"),
            ("MCP_SERVER_URL", "http://mcp.example.com/mcp"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "MCP_SERVER_URL must use https (plain http is allowed only for localhost): http://mcp.example.com/mcp"
        );
        let e = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_SECRET", "y"),
            ("OAUTH_SCOPES", "customer:read \"bad"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "OAUTH_SCOPES");
        let e = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_SECRET", "y"),
            ("OAUTH_CLIENT_KEY_FILE", "/nonexistent"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_CLIENT_KEY_FILE and OAUTH_CLIENT_SECRET are both set — keep only one"
        );
        let e = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_KEY_FILE", "/nonexistent/key.pem"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("OAUTH_CLIENT_KEY_FILE cannot be read ("),
            "{e}"
        );
        let e = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_SECRET", "y"),
            ("OAUTH_TOKEN_AUTH_METHOD", "none"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_TOKEN_AUTH_METHOD must be client_secret_basic or client_secret_post, not \"none\""
        );
    }

    #[test]
    fn oauth_issuer_defaults_to_the_local_one_and_is_normalised() {
        let base = [("OAUTH_CLIENT_ID", "x"), ("OAUTH_CLIENT_SECRET", "y")];
        let c = ClientConfig::from_vars(&vars(&base)).unwrap();
        assert_eq!(c.issuer, DEFAULT_OAUTH_ISSUER);
        let mut set = base.to_vec();
        set.push(("OAUTH_ISSUER", "HTTPS://Auth.Example.com:443/"));
        let c = ClientConfig::from_vars(&vars(&set)).unwrap();
        assert_eq!(c.issuer, "https://auth.example.com");
        let mut bad = base.to_vec();
        bad.push(("OAUTH_ISSUER", "http://auth.example.com"));
        let e = ClientConfig::from_vars(&vars(&bad)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAUTH_ISSUER is not a valid issuer: must use https (http is only allowed for localhost)"
        );
    }

    #[test]
    fn api_key_message() {
        let e = required_secret(&vars(&[]), "OPENAI_API_KEY").unwrap_err();
        assert_eq!(
            e.to_string(),
            "OPENAI_API_KEY is not set — put it in .env or export it"
        );
    }

    #[test]
    fn scopes_and_ca_files() {
        let c = ClientConfig::from_vars(&vars(&[
            ("OAUTH_CLIENT_ID", "x"),
            ("OAUTH_CLIENT_SECRET", "y"),
            ("OAUTH_SCOPES", "customer:read   ticket:create"),
            ("SSL_CERT_FILE", "/tmp/ca.pem"),
            ("MCP_SERVER_URL", "https://localhost:8001/mcp"),
            ("OAUTH_TOKEN_URL", "https://localhost:8443/token"),
        ]))
        .unwrap();
        assert_eq!(c.scopes.unwrap().to_string(), "customer:read ticket:create");
        assert_eq!(
            c.ca_files,
            vec![("SSL_CERT_FILE".to_owned(), PathBuf::from("/tmp/ca.pem"))]
        );
        assert_eq!(
            c.token_url.unwrap().as_str(),
            "https://localhost:8443/token"
        );
    }
}
