//! Clients that register themselves: RFC 7591 dynamic registration
//! (`POST /register`, stored under `oauth:client:<id>`) and client ID
//! metadata documents ([`crate::cimd`]). Both are public clients
//! (authorization code + PKCE, no secret) under one policy: at most
//! `OAUTH_REGISTRATION_SCOPES`, every resource in `OAUTH_RESOURCES`.
//!
//! A registration lives [`REGISTRATION_TTL`]; how many may be alive is capped
//! (`OAUTH_REGISTRATION_MAX`) by counting registrations per TTL-long window:
//! every live registration was made in the current or the previous window,
//! so their two counts together bound the live ones from above and the cap
//! is never exceeded (at worst it refuses early after a window turns).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::scope::ScopeSet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ratelimit::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use server_kit::kv::KvStore;
use server_kit::store::StoreError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clients::{AuthMethod, Client, Credential};

/// Key prefix of stored registrations (`oauth:client:<client_id>`).
pub const CLIENT_KEY_PREFIX: &str = "oauth:client:";
/// Key prefix of the per-window registration counters.
const COUNT_KEY_PREFIX: &str = "oauth:client_count:";
/// Every registered `client_id` starts with this, so other ids never cost a
/// store round trip.
pub const ID_PREFIX: &str = "dyn-";
/// How long a registration lives; a host that is told `invalid_client`
/// afterwards registers again.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// `OAUTH_REGISTRATION_SCOPES` default: the customer-facing tools, never
/// `security:read`.
pub const DEFAULT_SCOPES: &str = "customer:read ticket:create account:calculate";
/// `client_name` when the registration gives none.
pub const UNNAMED_CLIENT: &str = "unnamed client";
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;
/// Longest `client_name`, in characters.
pub const MAX_CLIENT_NAME_CHARS: usize = 100;
/// The grants a registered client gets (and the only ones it may ask for).
pub const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

/// `OAUTH_REGISTRATION`: who may use `POST /register`.
#[derive(Debug, Clone)]
pub enum RegistrationMode {
    /// Anyone (the MCP default: hosts register themselves).
    Open,
    /// Only callers presenting the initial access token (RFC 7591 §3).
    Token(InitialAccessToken),
    /// `/register` answers 404 and the metadata has no `registration_endpoint`.
    Off,
}

impl RegistrationMode {
    /// Whether `/register` is served.
    pub fn enabled(&self) -> bool {
        !matches!(self, RegistrationMode::Off)
    }
}

/// `OAUTH_REGISTRATION_TOKEN`, kept only as its SHA-256 so it can be
/// compared in constant time (and `Debug` prints nothing).
#[derive(Clone)]
pub struct InitialAccessToken([u8; 32]);

impl InitialAccessToken {
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time: both sides are hashed to 32 bytes first, so neither the
    /// content nor the length of the secret leaks through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        got.ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for InitialAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitialAccessToken(..)")
    }
}

/// Dynamic registration and metadata-document settings (`OAUTH_REGISTRATION*`,
/// `OAUTH_CIMD_ALLOWED_HOSTS`, `SSL_CERT_FILE`); read in [`crate::config`].
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    /// The most a self-registered client may get: `Some` when
    /// `OAUTH_REGISTRATION_SCOPES` is set (start-up fails unless every scope
    /// is one some registry client has), `None` for the default
    /// ([`DEFAULT_SCOPES`] narrowed to the registry's scopes); see
    /// [`effective_scopes`](Self::effective_scopes).
    pub scopes: Option<ScopeSet>,
    /// Cap on live registrations.
    pub max_clients: u64,
    /// Registrations per hour per IP (also the burst).
    pub per_hour: u32,
    /// Hosts (`host` or `host:port`) whose documents may live on non-public
    /// addresses.
    pub cimd_allowed_hosts: Vec<String>,
    /// Extra CA certificates (PEM) trusted when fetching documents.
    pub extra_ca_file: Option<PathBuf>,
    /// Bound on one document fetch (DNS, connect, response). Not a variable:
    /// 5 s in production; tests shorten it.
    pub cimd_timeout: Duration,
}

impl RegistrationConfig {
    /// The documented defaults.
    pub fn defaults() -> Self {
        Self {
            mode: RegistrationMode::Open,
            scopes: None,
            max_clients: 10_000,
            per_hour: 10,
            cimd_allowed_hosts: Vec::new(),
            extra_ca_file: None,
            cimd_timeout: Duration::from_secs(5),
        }
    }

    /// The registration scopes against the server's `known` scopes: a set
    /// value must be a subset; the default is narrowed to them (a registry
    /// without `account:calculate` must not fail to start by default).
    pub fn effective_scopes(&self, known: &ScopeSet) -> Result<ScopeSet, String> {
        match &self.scopes {
            Some(set) if set.is_empty() => Err("names no scope".into()),
            Some(set) => {
                let unknown: Vec<&str> = set.difference(known).collect();
                if unknown.is_empty() {
                    Ok(set.clone())
                } else {
                    Err(format!(
                        "unknown scope {} (no client of the registry has it)",
                        unknown.join(" ")
                    ))
                }
            }
            None => {
                let set = ScopeSet::parse(DEFAULT_SCOPES)
                    .map_err(|e| e.to_string())?
                    .intersection(known);
                if set.is_empty() {
                    Err(format!(
                        "the default ({DEFAULT_SCOPES}) names no scope of the client registry; \
                         set the scopes registered clients may get"
                    ))
                } else {
                    Ok(set)
                }
            }
        }
    }

    /// The per-IP registration budget as a GCRA policy and the cost of one
    /// registration: the limiter counts per minute, so one registration
    /// costs 60 units at `per_hour` units a minute (a burst of `per_hour`
    /// registrations, then one every `60 / per_hour` minutes).
    pub fn rate_policy(&self) -> Result<(Policy, u32), ratelimit::PolicyError> {
        let burst = self.per_hour.saturating_mul(REGISTRATION_COST);
        Ok((Policy::new(self.per_hour, burst)?, REGISTRATION_COST))
    }
}

/// Units one registration costs under [`RegistrationConfig::rate_policy`].
const REGISTRATION_COST: u32 = 60;

/// What every self-registered client may have.
#[derive(Debug, Clone)]
pub struct PublicClientPolicy {
    /// `OAUTH_REGISTRATION_SCOPES`.
    pub scopes: ScopeSet,
    /// `OAUTH_RESOURCES`.
    pub resources: Vec<String>,
}

impl PublicClientPolicy {
    /// A public client (no secret; authorization code + refresh token) with
    /// `scopes` (already limited to the policy) and every served resource.
    pub fn client(
        &self,
        client_id: String,
        client_name: String,
        redirect_uris: Vec<String>,
        document_url: Option<String>,
        scopes: ScopeSet,
    ) -> Client {
        let scopes = scopes.intersection(&self.scopes);
        Client {
            client_id,
            client_name,
            redirect_uris,
            document_url,
            credential: Credential::None,
            auth_methods: vec![AuthMethod::None],
            grant_types: GRANT_TYPES.iter().map(|g| (*g).to_owned()).collect(),
            default_scopes: scopes.clone(),
            allowed_scopes: scopes,
            allowed_resources: self.resources.clone(),
            can_introspect: false,
        }
    }
}

/// A stored registration (`oauth:client:<id>`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// Granted at registration; narrowed again by the policy at every lookup,
    /// so lowering `OAUTH_REGISTRATION_SCOPES` applies to existing clients.
    pub scope: ScopeSet,
    /// Unix seconds.
    pub issued_at: i64,
}

/// Why a registration could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// `OAUTH_REGISTRATION_MAX` live registrations exist.
    #[error("the registration cap is reached")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registered clients in the key/value store.
pub struct Registrations {
    kv: Arc<dyn KvStore>,
    policy: PublicClientPolicy,
    max_clients: u64,
}

impl Registrations {
    pub fn new(kv: Arc<dyn KvStore>, policy: PublicClientPolicy, max_clients: u64) -> Self {
        Self {
            kv,
            policy,
            max_clients,
        }
    }

    pub fn policy(&self) -> &PublicClientPolicy {
        &self.policy
    }

    /// A fresh `client_id`: [`ID_PREFIX`] and 128 random bits, base64url.
    pub fn new_client_id() -> Result<String, StoreError> {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| StoreError::new("the system random generator failed"))?;
        Ok(format!("{ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Stores `record` unless the cap is reached.
    pub async fn create(&self, record: &Registered) -> Result<(), CreateError> {
        let window = u64::try_from(record.issued_at).unwrap_or(0) / REGISTRATION_TTL.as_secs();
        let previous = match window.checked_sub(1) {
            Some(w) => self.count(w).await?,
            None => 0,
        };
        // Counted before the check, so concurrent registrations cannot all
        // slip under the cap; a refused one keeps its count (conservative).
        let current = self
            .kv
            .incr(&count_key(window), REGISTRATION_TTL * 2)
            .await?;
        if previous.saturating_add(current) > self.max_clients {
            return Err(CreateError::Full);
        }
        let value = serde_json::to_vec(record).map_err(|e| StoreError::new(e.to_string()))?;
        let key = format!("{CLIENT_KEY_PREFIX}{}", record.client_id);
        if !self.kv.put_new(&key, &value, REGISTRATION_TTL).await? {
            // 128 random bits do not collide; a store that says so is broken.
            return Err(StoreError::new("client_id collision").into());
        }
        Ok(())
    }

    async fn count(&self, window: u64) -> Result<u64, StoreError> {
        Ok(self
            .kv
            .get(&count_key(window))
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// The registered client `client_id`, if it exists and is well formed.
    pub async fn find(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        if !is_registered_id(client_id) {
            return Ok(None);
        }
        let Some(bytes) = self
            .kv
            .get(&format!("{CLIENT_KEY_PREFIX}{client_id}"))
            .await?
        else {
            return Ok(None);
        };
        let record: Registered = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable client registration; treating it as unknown");
                return Ok(None);
            }
        };
        Ok(Some(self.policy.client(
            record.client_id,
            record.client_name,
            record.redirect_uris,
            None,
            record.scope,
        )))
    }
}

/// `redirect_uris` of a registration or a document: a non-empty array of at
/// most [`MAX_REDIRECT_URIS`] valid redirect URIs (duplicates dropped).
pub fn redirect_uris(v: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(v) = v else {
        return Err("redirect_uris is required".into());
    };
    let Some(list) = v.as_array() else {
        return Err("redirect_uris must be an array of strings".into());
    };
    if list.is_empty() {
        return Err("redirect_uris must not be empty".into());
    }
    if list.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris may be registered"
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(uri) = item.as_str() else {
            return Err("redirect_uris must be an array of strings".into());
        };
        if uri.len() > MAX_REDIRECT_URI_BYTES {
            return Err(format!(
                "redirect_uris[{i}] is longer than {MAX_REDIRECT_URI_BYTES} bytes"
            ));
        }
        auth::uri::validate_redirect_uri(uri)
            .map_err(|e| format!("redirect_uris[{i}] is invalid: {e}"))?;
        if !out.iter().any(|u| u == uri) {
            out.push(uri.to_owned());
        }
    }
    Ok(out)
}

/// A `client_name`: 1 to [`MAX_CLIENT_NAME_CHARS`] characters, no control
/// characters (it is shown on the consent page).
pub fn client_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("client_name must not be empty".into());
    }
    if name.chars().count() > MAX_CLIENT_NAME_CHARS {
        return Err(format!(
            "client_name is longer than {MAX_CLIENT_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("client_name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

fn count_key(window: u64) -> String {
    format!("{COUNT_KEY_PREFIX}{window}")
}

/// Whether `id` has the shape of an id we hand out (keeps arbitrary input
/// out of store keys).
fn is_registered_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|rest| {
        rest.len() == 22
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use server_kit::kv::MemoryKv;

    fn policy() -> PublicClientPolicy {
        PublicClientPolicy {
            scopes: ScopeSet::parse(DEFAULT_SCOPES).unwrap(),
            resources: vec!["http://localhost:8000/mcp".into()],
        }
    }

    fn record(id: String, issued_at: i64) -> Registered {
        Registered {
            client_id: id,
            client_name: "n".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            grant_types: GRANT_TYPES.iter().map(|g| (*g).to_owned()).collect(),
            scope: ScopeSet::parse("customer:read security:read").unwrap(),
            issued_at,
        }
    }

    #[test]
    fn initial_access_token_compares_by_hash() {
        let t = InitialAccessToken::new("s3cret-registration-token");
        assert!(t.matches("s3cret-registration-token"));
        assert!(!t.matches("s3cret-registration-toke"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "InitialAccessToken(..)");
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let a = Registrations::new_client_id().unwrap();
        let b = Registrations::new_client_id().unwrap();
        assert_ne!(a, b);
        assert!(is_registered_id(&a), "{a}");
        assert!(!is_registered_id("dyn-short"));
        assert!(!is_registered_id("openai-mcp-client"));
        assert!(!is_registered_id("dyn-aaaaaaaaaaaaaaaaaaaa:b"));
    }

    #[test]
    fn registration_scopes_against_the_registry() {
        let known = ScopeSet::parse("customer:read ticket:create").unwrap();
        let mut c = RegistrationConfig::defaults();
        assert_eq!(
            c.effective_scopes(&known).unwrap().to_string(),
            "customer:read ticket:create",
            "the default narrows to what the registry knows"
        );
        c.scopes = Some(ScopeSet::parse("customer:read account:calculate").unwrap());
        assert_eq!(
            c.effective_scopes(&known).unwrap_err(),
            "unknown scope account:calculate (no client of the registry has it)"
        );
        c.scopes = Some(ScopeSet::parse("ticket:create").unwrap());
        assert_eq!(
            c.effective_scopes(&known).unwrap().to_string(),
            "ticket:create"
        );
        c.scopes = None;
        let other = ScopeSet::parse("security:read").unwrap();
        assert!(
            c.effective_scopes(&other)
                .unwrap_err()
                .contains("names no scope")
        );
    }

    #[test]
    fn rate_policy_spends_a_burst_then_paces() {
        let (p, cost) = RegistrationConfig::defaults().rate_policy().unwrap();
        assert_eq!(p.burst() / cost, 10, "burst of 10 registrations");
        // One registration comes back every 6 minutes: 10 per hour.
        assert_eq!(p.emission_interval() * cost, Duration::from_secs(360));
    }

    #[tokio::test]
    async fn stores_finds_and_narrows_to_the_policy() {
        let regs = Registrations::new(Arc::new(MemoryKv::new()), policy(), 10);
        let id = Registrations::new_client_id().unwrap();
        regs.create(&record(id.clone(), 1_800_000_000))
            .await
            .unwrap();
        let c = regs.find(&id).await.unwrap().unwrap();
        assert_eq!(c.client_id, id);
        assert_eq!(c.allowed_scopes.to_string(), "customer:read");
        assert_eq!(c.default_scopes, c.allowed_scopes);
        assert_eq!(c.auth_methods, vec![AuthMethod::None]);
        assert!(matches!(c.credential, Credential::None));
        assert_eq!(c.allowed_resources, vec!["http://localhost:8000/mcp"]);
        assert_eq!(c.redirect_uris, vec!["http://127.0.0.1/cb"]);
        let other = Registrations::new_client_id().unwrap();
        assert!(regs.find(&other).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn cap_counts_this_and_the_previous_window() {
        let regs = Registrations::new(Arc::new(MemoryKv::new()), policy(), 2);
        let ttl = REGISTRATION_TTL.as_secs() as i64;
        let t0 = ttl * 1000 + ttl - 10; // late in one window
        for _ in 0..2 {
            let id = Registrations::new_client_id().unwrap();
            regs.create(&record(id, t0)).await.unwrap();
        }
        let id = Registrations::new_client_id().unwrap();
        assert!(matches!(
            regs.create(&record(id.clone(), t0)).await,
            Err(CreateError::Full)
        ));
        assert!(regs.find(&id).await.unwrap().is_none(), "not stored");
        // Just after the window turns, the two are still alive and count.
        assert!(matches!(
            regs.create(&record(id, t0 + 20)).await,
            Err(CreateError::Full)
        ));
    }

    #[test]
    fn names_and_redirects() {
        assert_eq!(client_name(" App ").unwrap(), "App");
        assert!(client_name("").is_err());
        assert!(client_name("a\u{7}b").is_err());
        assert!(client_name(&"x".repeat(101)).is_err());
        assert!(client_name(&"é".repeat(100)).is_ok());
        let v = serde_json::json!(["http://127.0.0.1/cb", "http://127.0.0.1/cb"]);
        assert_eq!(
            redirect_uris(Some(&v)).unwrap(),
            vec!["http://127.0.0.1/cb"]
        );
        let v = serde_json::json!(["http://evil.example/cb"]);
        assert!(
            redirect_uris(Some(&v))
                .unwrap_err()
                .starts_with("redirect_uris[0] is invalid: ")
        );
        assert_eq!(
            redirect_uris(None).unwrap_err(),
            "redirect_uris is required"
        );
    }
}
