//! The people who sign in at `/authorize`: the [`UserDirectory`] trait (so
//! an upstream identity provider can replace the file later) and
//! [`FileUsers`], the TOML file `OAUTH_USERS_FILE` (default
//! `config/users.toml`).
//!
//! Passwords are stored only as argon2id PHC strings. Verification is
//! memory-hard and CPU-heavy, so it runs on the dedicated argon2 threads
//! shared with client secrets ([`crate::argon`]). An unknown user costs one
//! verification against a dummy hash with the same parameters, so neither
//! the answer nor its timing tells an unknown user from a wrong password;
//! [`PasswordCheck::verifications`] counts them so tests can prove it
//! without timing anything.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::PasswordHash;
use async_trait::async_trait;
use auth::scope::ScopeSet;
use serde::Deserialize;

pub use crate::argon::PasswordCheck;
use crate::argon::params_of;

/// One person who may sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id: the `sub` of the tokens issued for this user.
    pub user_id: String,
    /// What the person types on the login page.
    pub username: String,
    /// Shown on the consent page (the username when unset).
    pub name: String,
    /// The most any client may get on this user's behalf.
    pub allowed_scopes: ScopeSet,
}

/// Why a sign-in failed (audit reasons; the person sees one generic message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownUser,
    BadPassword,
    /// The verification could not run (shutting down, task failure).
    Unavailable,
}

impl LoginFailure {
    /// Stable audit reason.
    pub fn reason(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::BadPassword => "bad_password",
            LoginFailure::Unavailable => "unavailable",
        }
    }
}

/// Where users come from: the file today, an upstream identity provider later.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Checks a username and password.
    async fn authenticate(&self, username: &str, password: &str) -> Result<User, LoginFailure>;
    /// The user with this id (a session names its user by id).
    async fn get(&self, user_id: &str) -> Option<User>;
    /// How many users there are (start-up log only).
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One `[[user]]` entry as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    username: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    password_hash: String,
    #[serde(default)]
    allowed_scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "user")]
    users: Vec<FileUser>,
}

/// A validated user with its password hash.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub user: User,
    password_hash: Arc<str>,
}

/// A parsed, validated users file (what `add-user` checks before writing).
#[derive(Debug, Clone, Default)]
pub struct UsersFile {
    users: Vec<StoredUser>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Checks an `$argon2id$` PHC string (the only form accepted for passwords).
pub fn validate_password_hash(phc: &str) -> Result<(), String> {
    if !phc.starts_with("$argon2id$") {
        return Err(
            "password_hash must be an $argon2id$ PHC string (use `oauth-server hash-password`)"
                .into(),
        );
    }
    let parsed = PasswordHash::new(phc).map_err(|e| format!("invalid argon2id PHC string: {e}"))?;
    argon2::Params::try_from(&parsed).map_err(|e| format!("invalid argon2id parameters: {e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("argon2id PHC string lacks its salt or hash".into());
    }
    Ok(())
}

impl UsersFile {
    /// Reads and validates `path`; errors name the file, the user and the field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users: Vec<StoredUser> = Vec::with_capacity(file.users.len());
        for fu in file.users {
            let name = fu.username.clone();
            let user = build_user(fu).map_err(|e| format!("user {name:?}: {e}"))?;
            if users.iter().any(|u| u.user.username == user.user.username) {
                return Err(format!("user {name:?} is listed twice"));
            }
            if users.iter().any(|u| u.user.user_id == user.user.user_id) {
                return Err(format!(
                    "user {name:?}: user_id {:?} is already taken",
                    user.user.user_id
                ));
            }
            users.push(user);
        }
        Ok(Self { users })
    }

    /// Whether a user signs in with `username`.
    pub fn contains(&self, username: &str) -> bool {
        self.users.iter().any(|u| u.user.username == username)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn build_user(fu: FileUser) -> Result<StoredUser, String> {
    if !valid_name(&fu.username) {
        return Err("username must be 1-64 characters without spaces or control characters".into());
    }
    let user_id = fu.user_id.unwrap_or_else(|| fu.username.clone());
    // `:` separates the parts of the consent key (`oauth:consent:<user>:<client>`).
    if !valid_name(&user_id) || user_id.contains(':') {
        return Err(
            "user_id must be 1-64 characters without spaces, control characters or `:`".into(),
        );
    }
    if fu
        .name
        .as_deref()
        .is_some_and(|n| n.len() > 128 || n.chars().any(char::is_control))
    {
        return Err("name must be at most 128 printable characters".into());
    }
    validate_password_hash(&fu.password_hash).map_err(|e| format!("password_hash: {e}"))?;
    let allowed_scopes = ScopeSet::try_from_tokens(&fu.allowed_scopes)
        .map_err(|e| format!("allowed_scopes: {e}"))?;
    Ok(StoredUser {
        user: User {
            name: fu.name.unwrap_or_else(|| fu.username.clone()),
            user_id,
            username: fu.username,
            allowed_scopes,
        },
        password_hash: Arc::from(fu.password_hash),
    })
}

/// An argon2id PHC string (argon2 crate defaults: m=19 MiB, t=2, p=1) for a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Users from `OAUTH_USERS_FILE`.
pub struct FileUsers {
    by_name: HashMap<String, StoredUser>,
    by_id: HashMap<String, User>,
    /// Verified when the username is unknown: same parameters as the
    /// first user's hash, so both failures cost one identical verification.
    dummy_hash: Arc<str>,
    check: PasswordCheck,
}

impl FileUsers {
    /// Builds the directory; hashes the dummy password (one argon2id run).
    pub async fn new(file: UsersFile, check: PasswordCheck) -> Result<Self, String> {
        let params = file
            .users
            .first()
            .and_then(|u| params_of(&u.password_hash))
            .unwrap_or_default();
        let distinct = file
            .users
            .iter()
            .filter_map(|u| params_of(&u.password_hash))
            .any(|p| p != params);
        if distinct {
            tracing::warn!(
                "users' argon2id parameters differ: an unknown username costs what the first user's hash costs; rehash with `oauth-server hash-password` to even them out"
            );
        }
        let dummy = crate::argon::dummy_phc(&params)?;
        let mut by_name = HashMap::new();
        let mut by_id = HashMap::new();
        for u in file.users {
            by_id.insert(u.user.user_id.clone(), u.user.clone());
            by_name.insert(u.user.username.clone(), u);
        }
        Ok(Self {
            by_name,
            by_id,
            dummy_hash: Arc::from(dummy),
            check,
        })
    }
}

#[async_trait]
impl UserDirectory for FileUsers {
    async fn authenticate(&self, username: &str, password: &str) -> Result<User, LoginFailure> {
        let stored = self.by_name.get(username);
        let phc = stored.map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = self
            .check
            .verify(phc, password.as_bytes())
            .await
            .ok_or(LoginFailure::Unavailable)?;
        match stored {
            Some(u) if ok => Ok(u.user.clone()),
            Some(_) => Err(LoginFailure::BadPassword),
            None => Err(LoginFailure::UnknownUser),
        }
    }

    async fn get(&self, user_id: &str) -> Option<User> {
        self.by_id.get(user_id).cloned()
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, hash: &str, scopes: &str) -> String {
        format!(
            "[[user]]\nusername = {name:?}\npassword_hash = {hash:?}\nallowed_scopes = [{scopes}]\n"
        )
    }

    #[test]
    fn refuses_bad_files() {
        let good = hash_password("pw").unwrap();
        assert!(UsersFile::parse(&entry("a", &good, "\"customer:read\"")).is_ok());
        let e = UsersFile::parse(&entry("a", "plaintext", "")).unwrap_err();
        assert!(e.contains("hash-password"), "{e}");
        let bcrypt = "$2b$12$abcdefghijklmnopqrstuuJ4b3o6Dk1v3VJt7JqYbE4jB4vC0vZy";
        assert!(UsersFile::parse(&entry("a", bcrypt, "")).is_err());
        let argon2i = good.replacen("$argon2id$", "$argon2i$", 1);
        assert!(UsersFile::parse(&entry("a", &argon2i, "")).is_err());
        let e = UsersFile::parse(&entry("a", &good, "\"bad scope\"")).unwrap_err();
        assert!(e.contains("allowed_scopes"), "{e}");
        let e = UsersFile::parse(&entry("a b", &good, "")).unwrap_err();
        assert!(e.contains("username"), "{e}");
        let twice = format!("{}{}", entry("a", &good, ""), entry("a", &good, ""));
        assert!(UsersFile::parse(&twice).unwrap_err().contains("twice"));
        let extra = format!("{}bogus = 1\n", entry("a", &good, ""));
        assert!(
            UsersFile::parse(&extra).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn dev_users_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/users.toml");
        let file = UsersFile::load(&path).unwrap();
        assert!(file.contains("alice") && file.contains("bob"));
        assert_eq!(file.len(), 2);
    }

    #[tokio::test]
    async fn unknown_user_and_wrong_password_cost_one_verification_each() {
        let hash = hash_password("right").unwrap();
        let file = UsersFile::parse(&entry("a", &hash, "\"customer:read\"")).unwrap();
        let check = PasswordCheck::new(1).unwrap();
        let users = FileUsers::new(file, check.clone()).await.unwrap();
        assert_eq!(check.verifications(), 0);
        assert_eq!(
            users.authenticate("a", "wrong").await,
            Err(LoginFailure::BadPassword)
        );
        assert_eq!(check.verifications(), 1);
        assert_eq!(
            users.authenticate("nobody", "right").await,
            Err(LoginFailure::UnknownUser)
        );
        assert_eq!(check.verifications(), 2);
        let u = users.authenticate("a", "right").await.unwrap();
        assert_eq!(u.user_id, "a");
        assert_eq!(u.allowed_scopes.to_string(), "customer:read");
        assert_eq!(check.verifications(), 3);
        assert_eq!(users.get("a").await, Some(u));
        assert_eq!(users.get("nobody").await, None);
        // The dummy hash has the users' parameters.
        let dummy = PasswordHash::new(&users.dummy_hash).unwrap();
        let real = PasswordHash::new(&hash).unwrap();
        assert_eq!(
            argon2::Params::try_from(&dummy).unwrap(),
            argon2::Params::try_from(&real).unwrap()
        );
    }
}
