//! Where a person's login lives between runs: the refresh token, the client
//! it belongs to and the endpoints to use it at.
//!
//! - `OAUTH_TOKEN_STORE=auto` (default): the OS credential store when it
//!   answers (macOS Keychain, Windows Credential Manager, the Linux kernel
//!   keyring — linked to the per-user persistent keyring, so it survives the
//!   terminal; see docs/clients.md), else the file below;
//! - `keyring`: the OS credential store only (an error when it is missing);
//! - `file`: `OAUTH_TOKEN_STORE_FILE`, default
//!   `$XDG_CONFIG_HOME/secure-mcp/logins.json` (`~/.config/…`), created
//!   0600 in a 0700 folder and replaced atomically (write, fsync, rename).
//!
//! One login per (issuer, MCP server URL). Tokens are never logged: [`StoredLogin`]'s
//! `Debug` redacts them, and errors name the store, not its contents.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Vars};

/// Keyring service name of every entry.
pub const KEYRING_SERVICE: &str = "secure-mcp";

/// A saved login.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLogin {
    pub issuer: String,
    /// The RFC 8707 resource the tokens are for.
    pub resource: String,
    pub client_id: String,
    /// Only for a client that dynamic registration made confidential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `client_secret_basic` or `client_secret_post` with `client_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_method: Option<String>,
    /// The client came from dynamic registration (reused by the next login).
    #[serde(default)]
    pub registered: bool,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Unix seconds of the last save.
    pub saved_at: u64,
}

impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLogin")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl StoredLogin {
    /// The store key: one login per (issuer, canonical MCP server URL).
    pub fn key(issuer: &str, mcp_url: &str) -> String {
        format!("{issuer} {mcp_url}")
    }
}

/// Why the store could not be used; never contains a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the login store ({store}) {problem}")]
pub struct StoreError {
    pub store: String,
    pub problem: String,
}

/// A place for logins.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    fn load(&self, key: &str) -> Result<Option<StoredLogin>, StoreError>;
    fn save(&self, key: &str, login: &StoredLogin) -> Result<(), StoreError>;
    /// `true` when there was a login to delete.
    fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// For messages: "the OS keyring" or the file's path.
    fn describe(&self) -> String;
}

/// Opens the store `OAUTH_TOKEN_STORE` names.
pub fn open(vars: &impl Vars) -> Result<Arc<dyn TokenStore>, ConfigError> {
    let file = || -> Result<Arc<dyn TokenStore>, ConfigError> {
        let path = match vars.get("OAUTH_TOKEN_STORE_FILE") {
            Some(p) => PathBuf::from(p.trim()),
            None => default_file(vars).ok_or_else(|| {
                ConfigError::new(
                    "OAUTH_TOKEN_STORE_FILE",
                    "is not set and there is no home folder — set it to a file path",
                )
            })?,
        };
        Ok(Arc::new(FileStore::new(path)))
    };
    match vars.get("OAUTH_TOKEN_STORE").as_deref().map(str::trim) {
        None | Some("auto") => match KeyringStore::probe() {
            Ok(store) => Ok(Arc::new(store)),
            Err(e) => {
                tracing::debug!(error = %e, "no OS keyring; using the login file");
                file()
            }
        },
        Some("keyring") => KeyringStore::probe()
            .map(|s| Arc::new(s) as Arc<dyn TokenStore>)
            .map_err(|e| {
                ConfigError::new(
                    "OAUTH_TOKEN_STORE",
                    format!("is keyring, but {e} — use OAUTH_TOKEN_STORE=file"),
                )
            }),
        Some("file") => file(),
        Some(other) => Err(ConfigError::new(
            "OAUTH_TOKEN_STORE",
            format!("must be auto, keyring or file, not {other:?}"),
        )),
    }
}

fn default_file(vars: &impl Vars) -> Option<PathBuf> {
    let base = vars
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| vars.get("HOME").map(|h| Path::new(&h).join(".config")))
        .or_else(|| vars.get("APPDATA").map(PathBuf::from))?;
    Some(base.join("secure-mcp").join("logins.json"))
}

/// The OS credential store through the `keyring` crate: one entry per key,
/// holding the login as JSON.
#[derive(Debug)]
pub struct KeyringStore;

impl KeyringStore {
    /// The store, if this machine has one that answers.
    pub fn probe() -> Result<Self, StoreError> {
        let entry = keyring::Entry::new(KEYRING_SERVICE, "probe").map_err(Self::error)?;
        match entry.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(Self),
            Err(e) => Err(Self::error(e)),
        }
    }

    fn error(e: keyring::Error) -> StoreError {
        StoreError {
            store: "OS keyring".into(),
            problem: format!("is not usable: {e}"),
        }
    }

    fn entry(key: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(KEYRING_SERVICE, key).map_err(Self::error)
    }
}

impl TokenStore for KeyringStore {
    fn load(&self, key: &str) -> Result<Option<StoredLogin>, StoreError> {
        match Self::entry(key)?.get_password() {
            Ok(json) => serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| StoreError {
                    store: self.describe(),
                    problem: format!("holds an unreadable login ({e}) — run logout, then login"),
                }),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(Self::error(e)),
        }
    }

    fn save(&self, key: &str, login: &StoredLogin) -> Result<(), StoreError> {
        let json = serde_json::to_string(login).map_err(|e| StoreError {
            store: self.describe(),
            problem: e.to_string(),
        })?;
        Self::entry(key)?.set_password(&json).map_err(Self::error)
    }

    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        match Self::entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(Self::error(e)),
        }
    }

    fn describe(&self) -> String {
        "the OS keyring".into()
    }
}

/// A JSON file of logins, readable by its owner only.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    /// Serialises read-modify-write within this process.
    lock: std::sync::Mutex<()>,
}

impl FileStore {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: std::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, problem: impl Into<String>) -> StoreError {
        StoreError {
            store: self.describe(),
            problem: problem.into(),
        }
    }

    fn read_all(&self) -> Result<BTreeMap<String, StoredLogin>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                self.err(format!(
                    "is not a valid login file ({e}) — delete it and log in again"
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err(format!("cannot be read: {e}"))),
        }
    }

    fn write_all(&self, all: &BTreeMap<String, StoredLogin>) -> Result<(), StoreError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| self.err(format!("cannot create {dir:?}: {e}")))?;
        let json = serde_json::to_vec_pretty(all).map_err(|e| self.err(e.to_string()))?;
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut f = private_file(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.err(format!("cannot be written: {e}")));
        }
        Ok(())
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenStore for FileStore {
    fn load(&self, key: &str) -> Result<Option<StoredLogin>, StoreError> {
        let _g = self.guard();
        Ok(self.read_all()?.remove(key))
    }

    fn save(&self, key: &str, login: &StoredLogin) -> Result<(), StoreError> {
        let _g = self.guard();
        let mut all = self.read_all()?;
        all.insert(key.to_owned(), login.clone());
        self.write_all(&all)
    }

    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let _g = self.guard();
        let mut all = self.read_all()?;
        if all.remove(key).is_none() {
            return Ok(false);
        }
        self.write_all(&all)?;
        Ok(true)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Saves every rotated refresh token of one login back to its store.
#[derive(Debug)]
pub struct LoginSink {
    store: Arc<dyn TokenStore>,
    key: String,
    login: std::sync::Mutex<StoredLogin>,
}

impl LoginSink {
    pub fn new(store: Arc<dyn TokenStore>, key: String, login: StoredLogin) -> Self {
        Self {
            key,
            store,
            login: std::sync::Mutex::new(login),
        }
    }

    /// The login as last saved.
    pub fn current(&self) -> StoredLogin {
        self.login
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl crate::token::RefreshSink for LoginSink {
    fn save(&self, refresh: &SecretString, scope: Option<&str>) -> Result<(), String> {
        let mut login = self
            .login
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        login.refresh_token = refresh.expose_secret().to_owned();
        if let Some(scope) = scope {
            login.scope = Some(scope.to_owned());
        }
        login.saved_at = u64::try_from(auth::now_unix()).unwrap_or(0);
        self.store
            .save(&self.key, &login)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(refresh: &str) -> StoredLogin {
        StoredLogin {
            issuer: "http://localhost:8080".into(),
            resource: "http://localhost:8000/mcp".into(),
            client_id: "c".into(),
            client_secret: None,
            client_auth_method: None,
            registered: true,
            token_endpoint: "http://localhost:8080/token".into(),
            revocation_endpoint: None,
            refresh_token: refresh.into(),
            scope: Some("customer:read".into()),
            saved_at: 1,
        }
    }

    #[test]
    fn the_file_store_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/logins.json");
        let store = FileStore::new(path.clone());
        let key = StoredLogin::key("http://localhost:8080", "http://localhost:8000/mcp");
        assert_eq!(store.load(&key).unwrap(), None);
        store.save(&key, &login("r1")).unwrap();
        store.save("other", &login("r2")).unwrap();
        assert_eq!(store.load(&key).unwrap(), Some(login("r1")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        assert!(store.delete(&key).unwrap());
        assert!(!store.delete(&key).unwrap());
        assert_eq!(store.load("other").unwrap(), Some(login("r2")));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("logins.json")]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logins.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = FileStore::new(path.clone()).load("k").unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "the login store ({}) is not a valid login file (",
                path.display()
            )),
            "{e}"
        );
        assert!(e.to_string().ends_with("— delete it and log in again"));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let mut l = login("refresh-secret-value");
        l.client_secret = Some("client-secret-value".into());
        let shown = format!("{l:?}");
        assert!(!shown.contains("refresh-secret-value") && !shown.contains("client-secret-value"));
    }

    #[test]
    fn the_store_variable_is_checked() {
        let vars = |k: &str| (k == "OAUTH_TOKEN_STORE").then(|| "vault".to_owned());
        assert_eq!(
            open(&vars).unwrap_err().to_string(),
            "OAUTH_TOKEN_STORE must be auto, keyring or file, not \"vault\""
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("l.json").display().to_string();
        let vars = move |k: &str| match k {
            "OAUTH_TOKEN_STORE" => Some("file".to_owned()),
            "OAUTH_TOKEN_STORE_FILE" => Some(file.clone()),
            _ => None,
        };
        assert_eq!(
            open(&vars).unwrap().describe(),
            dir.path().join("l.json").display().to_string()
        );
    }

    /// The kernel keyring answers on Linux machines like CI's; elsewhere the
    /// test says so (it is required where services are required).
    #[test]
    fn the_keyring_store_round_trips_where_there_is_one() {
        let store = match KeyringStore::probe() {
            Ok(s) => s,
            Err(e) => {
                assert!(
                    !cfg!(target_os = "linux")
                        || std::env::var_os("SECURE_MCP_REQUIRE_SERVICES").is_none(),
                    "no OS keyring: {e}"
                );
                eprintln!("SKIPPED: no OS keyring ({e})");
                return;
            }
        };
        let key = format!("test {} {}", std::process::id(), auth::now_unix());
        assert_eq!(store.load(&key).unwrap(), None);
        store.save(&key, &login("r1")).unwrap();
        assert_eq!(store.load(&key).unwrap(), Some(login("r1")));
        store.save(&key, &login("r2")).unwrap();
        assert_eq!(store.load(&key).unwrap().unwrap().refresh_token, "r2");
        assert!(store.delete(&key).unwrap());
        assert_eq!(store.load(&key).unwrap(), None);
        assert!(!store.delete(&key).unwrap());
    }
}
