//! The `oauth-server` command line ([`Cli`]) and its subcommands other than serving.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use auth::verify::DEFAULT_LEEWAY_SECS;
use clap::{Parser, Subcommand};

use auth::scope::ScopeSet;

use crate::clients::{Registry, hash_argon2id, hash_sha256};
use crate::config::{Config, ENV_VARS};
use crate::keystore;
use crate::users::{self, UsersFile};

/// OAuth 2.1 authorization server: short-lived, audience-bound, scoped JWT
/// access tokens. Without a command it serves.
#[derive(Debug, Parser)]
#[command(
    name = "oauth-server",
    version,
    after_long_help = server_kit::cli::server_long_help(ENV_VARS),
    after_help = server_kit::cli::SERVER_SHORT_HELP,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands; [`Command::Serve`] is the default.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server (the default).
    Serve,
    /// Read a client secret on stdin and print its hash (argon2id by default).
    HashSecret {
        /// sha256: hash, only for generated secrets of 32+ characters.
        #[arg(long, conflicts_with = "argon2id")]
        sha256: bool,
        /// argon2id hash (the default; for secrets people chose).
        #[arg(long)]
        argon2id: bool,
    },
    /// Print a new random secret and its sha256: hash.
    GenerateSecret,
    /// Read a user's password on stdin and print its argon2id hash (for OAUTH_USERS_FILE).
    HashPassword,
    /// Add a user to OAUTH_USERS_FILE; the password is read on stdin.
    AddUser {
        /// The name the person signs in with (also the tokens' `sub`).
        username: String,
        /// Space-separated scopes the user may grant, e.g. "customer:read ticket:create".
        #[arg(long)]
        scopes: String,
        /// Display name shown on the consent page.
        #[arg(long)]
        name: Option<String>,
    },
    /// Manage the signing keys in OAUTH_KEYS_DIR.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// GET /health on OAUTH_BIND; exit 0 when healthy, 1 otherwise.
    Healthcheck,
}

/// `oauth-server keys …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key (OAUTH_SIGNING_ALG) if none exists.
    Generate,
    /// Add a new signing key; retire keys no live token needs.
    Rotate,
    /// List keys (created, alg, kid, signing).
    List,
}

/// `hash-secret`: the secret comes from stdin so it never shows in `ps`.
pub fn hash_secret(sha: bool) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the secret from stdin")?;
    let secret = input.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        bail!(
            "no secret on stdin: pipe it in, e.g. `printf %s \"$SECRET\" | oauth-server hash-secret`"
        );
    }
    if sha && secret.len() < 32 {
        bail!(
            "--sha256 is only for generated secrets of 32+ characters; use argon2id (the default) for chosen ones"
        );
    }
    let hash = if sha {
        hash_sha256(secret.as_bytes())
    } else {
        hash_argon2id(secret.as_bytes()).map_err(anyhow::Error::msg)?
    };
    println!("{hash}");
    Ok(())
}

/// The password on stdin (one trailing newline dropped); refuses an empty one.
fn read_password(command: &str) -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        bail!(
            "no password on stdin: pipe it in, e.g. `printf %s \"$PASSWORD\" | oauth-server {command}`"
        );
    }
    Ok(password.to_owned())
}

/// `hash-password`: the password comes from stdin so it never shows in `ps`.
pub fn hash_password() -> anyhow::Result<()> {
    let password = read_password("hash-password")?;
    println!(
        "{}",
        users::hash_password(&password).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

/// `add-user`: appends a `[[user]]` entry to `OAUTH_USERS_FILE` (created if
/// missing). Refuses a duplicate username and scopes no client may hold
/// (the registry in `OAUTH_CLIENTS_FILE` defines them), and checks the
/// result parses before writing it.
pub fn add_user(
    config: &Config,
    username: &str,
    scopes: &str,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let path = &config.users_file;
    let scopes = ScopeSet::parse(scopes.trim()).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
    let known = Registry::load(&config.clients_file)
        .map_err(anyhow::Error::msg)
        .context("OAUTH_CLIENTS_FILE (defines the known scopes)")?
        .all_scopes();
    let unknown: Vec<&str> = scopes.difference(&known).collect();
    if !unknown.is_empty() {
        bail!(
            "--scopes: unknown scope {} (known: {known})",
            unknown.join(" ")
        );
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => bail!("OAUTH_USERS_FILE: cannot read {}: {e}", path.display()),
    };
    let current = UsersFile::parse(&existing)
        .map_err(|e| anyhow::anyhow!("OAUTH_USERS_FILE: {}: {e}", path.display()))?;
    if current.contains(username) {
        bail!("user {username:?} already exists in {}", path.display());
    }
    let password = read_password("add-user USERNAME --scopes ...")?;
    let hash = users::hash_password(&password).map_err(anyhow::Error::msg)?;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut entry = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        entry.push('\n');
    }
    entry.push_str("\n[[user]]\n");
    entry.push_str(&format!("username = {}\n", quote(username)));
    if let Some(n) = name {
        entry.push_str(&format!("name = {}\n", quote(n)));
    }
    entry.push_str(&format!("password_hash = {}\n", quote(&hash)));
    let list: Vec<String> = scopes.iter().map(quote).collect();
    entry.push_str(&format!("allowed_scopes = [{}]\n", list.join(", ")));
    let updated = format!("{existing}{entry}");
    let parsed = UsersFile::parse(&updated).map_err(|e| anyhow::anyhow!("new entry: {e}"))?;
    debug_assert_eq!(parsed.len(), current.len() + 1);
    std::fs::write(path, updated)
        .with_context(|| format!("OAUTH_USERS_FILE: cannot write {}", path.display()))?;
    println!("added user {username:?} ({scopes}) to {}", path.display());
    Ok(())
}

/// `generate-secret`: 256 random bits, base64url, plus its sha256: hash.
pub fn generate_secret() -> anyhow::Result<()> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    println!("secret:      {secret}");
    println!("secret_hash: {}", hash_sha256(secret.as_bytes()));
    Ok(())
}

/// `keys generate|rotate|list`.
pub fn keys(config: &Config, action: KeysCommand) -> anyhow::Result<()> {
    let dir = &config.keys_dir;
    match action {
        KeysCommand::Generate => {
            let existing = keystore::load_dir(dir).map_err(anyhow::Error::msg)?;
            if let Some(k) = existing
                .iter()
                .rev()
                .find(|k| k.key.alg() == config.signing_alg)
            {
                println!(
                    "a {} key already exists: {}",
                    config.signing_alg,
                    k.key.kid()
                );
                return Ok(());
            }
            let k = keystore::generate_into(dir, config.signing_alg).map_err(anyhow::Error::msg)?;
            println!(
                "generated {} key {} in {}",
                config.signing_alg,
                k.key.kid(),
                k.path.display()
            );
        }
        KeysCommand::Rotate => {
            let retire_after =
                config.token_ttl + Duration::from_secs(DEFAULT_LEEWAY_SECS.unsigned_abs());
            let (new, retired) = keystore::rotate(dir, config.signing_alg, retire_after)
                .map_err(anyhow::Error::msg)?;
            println!(
                "new signing key {} ({}); running servers switch within OAUTH_KEYS_RELOAD_SECS",
                new.key.kid(),
                config.signing_alg
            );
            for p in retired {
                println!("retired {}", p.display());
            }
        }
        KeysCommand::List => {
            let keys = keystore::load_dir(dir).map_err(anyhow::Error::msg)?;
            let signing = keys
                .iter()
                .rev()
                .find(|k| k.key.alg() == config.signing_alg)
                .map(|k| k.key.kid().to_owned());
            let mut out = std::io::stdout().lock();
            for k in &keys {
                let mark = if Some(k.key.kid()) == signing.as_deref() {
                    "  (signing)"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "{}  {:<5}  {}{mark}",
                    k.created,
                    k.key.alg(),
                    k.key.kid()
                )?;
            }
            if keys.is_empty() {
                writeln!(
                    out,
                    "no keys in {} (one is generated on first start)",
                    dir.display()
                )?;
            }
        }
    }
    Ok(())
}

/// `healthcheck`: for container HEALTHCHECKs without curl (the probe both
/// servers share).
pub async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let addr = server_kit::healthcheck::probe_addr(config.bind);
    if server_kit::healthcheck::check(config.bind, Duration::from_secs(3)).await {
        Ok(())
    } else {
        bail!("http://{addr}/health did not answer 200 within 3 s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn keeps_the_old_spellings() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["oauth-server"], args].concat());
        assert!(parse(&[]).unwrap().command.is_none());
        assert!(matches!(
            parse(&["hash-secret", "--sha256"]).unwrap().command,
            Some(Command::HashSecret { sha256: true, .. })
        ));
        assert!(matches!(
            parse(&["hash-secret", "--argon2id"]).unwrap().command,
            Some(Command::HashSecret { sha256: false, .. })
        ));
        assert!(parse(&["hash-secret", "--sha256", "--argon2id"]).is_err());
        assert!(matches!(
            parse(&["keys", "rotate"]).unwrap().command,
            Some(Command::Keys {
                action: KeysCommand::Rotate
            })
        ));
        assert!(parse(&["keys"]).is_err());
        assert!(parse(&["bogus"]).is_err());
    }
}
