//! Subcommands of the `oauth-server` binary other than serving.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use auth::verify::DEFAULT_LEEWAY_SECS;

use crate::clients::{hash_argon2id, hash_sha256};
use crate::config::Config;
use crate::keystore;

pub const USAGE: &str = "\
Usage: oauth-server [COMMAND]

Commands:
  serve                     run the authorization server (default)
  hash-secret [--sha256]    read a client secret on stdin, print its hash
                            (argon2id by default; --sha256 only for generated secrets)
  generate-secret           print a new random secret and its sha256: hash
  keys generate             add a signing key (OAUTH_SIGNING_ALG) if none exists
  keys rotate               add a new signing key; retire keys no live token needs
  keys list                 list keys (created, alg, kid, signing)
  healthcheck               GET /health on OAUTH_BIND; exit 0 when healthy

Configuration comes from the environment and .env (see README).";

/// `hash-secret`: the secret comes from stdin so it never shows in `ps`.
pub fn hash_secret(args: &[String]) -> anyhow::Result<()> {
    let sha = match args {
        [] => false,
        [flag] if flag == "--sha256" => true,
        [flag] if flag == "--argon2id" => false,
        _ => bail!("usage: oauth-server hash-secret [--sha256|--argon2id] < secret"),
    };
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
pub fn keys(config: &Config, args: &[String]) -> anyhow::Result<()> {
    let dir = &config.keys_dir;
    match args.first().map(String::as_str) {
        Some("generate") => {
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
        Some("rotate") => {
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
        Some("list") => {
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
        _ => bail!("usage: oauth-server keys generate|rotate|list"),
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
