//! Signing keys on disk (`OAUTH_KEYS_DIR`) and the in-memory key ring.
//!
//! Files are `<created-unix-secs>-<kid>.pem` (PKCS#8, mode 0600). The newest
//! key of the configured algorithm signs; every key in the folder is
//! published in the JWKS, so tokens signed by an older key keep verifying
//! after a rotation until `keys rotate` retires that key (once it has been
//! superseded for longer than the token lifetime plus leeway).
//!
//! The ring is parsed once and swapped atomically ([`arc_swap`]); requests
//! never read files or parse keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use auth::jwk::JwkSet;
use auth::keys::{Algorithm, SigningKey};
use auth::verify::StaticKeys;
use bytes::Bytes;

/// A key file and its parsed key.
#[derive(Debug)]
pub struct StoredKey {
    pub created: u64,
    pub path: PathBuf,
    pub key: Arc<SigningKey>,
}

/// Everything derived from the keys folder at one moment.
#[derive(Debug)]
pub struct KeyRing {
    pub signing: Arc<SigningKey>,
    pub keys: Vec<StoredKey>,
    /// The JWKS response body, serialised once per ring.
    pub jwks_body: Bytes,
}

fn now_secs() -> u64 {
    u64::try_from(auth::now_unix()).unwrap_or(0)
}

/// The `*.pem` files in `dir`, sorted by path (an absent folder is empty).
fn pem_paths(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(format!("cannot read keys folder {}: {e}", dir.display())),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("pem") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads every `*.pem` key in `dir`, oldest first.
pub fn load_dir(dir: &Path) -> Result<Vec<StoredKey>, String> {
    let mut keys = Vec::new();
    for path in pem_paths(dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let key = SigningKey::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let created = match name.split('-').next().and_then(|s| s.parse::<u64>().ok()) {
            Some(c) => c,
            None => std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        };
        keys.push(StoredKey {
            created,
            path,
            key: Arc::new(key),
        });
    }
    keys.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.path.cmp(&b.path)));
    Ok(keys)
}

/// Generates a key of `alg` and writes it (0600) into `dir` (created 0700).
pub fn generate_into(dir: &Path, alg: Algorithm) -> Result<StoredKey, String> {
    create_private_dir(dir)?;
    let key = SigningKey::generate(alg).map_err(|e| e.to_string())?;
    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    // Keep creation order strict even for two rotations within one second.
    let newest = load_dir(dir)?.last().map_or(0, |k| k.created);
    let created = now_secs().max(newest + 1);
    let path = dir.join(format!("{created}-{}.pem", key.kid()));
    write_private(&path, pem.as_bytes())?;
    Ok(StoredKey {
        created,
        path,
        key: Arc::new(key),
    })
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Builds a ring from the folder's keys: the newest key of `alg` signs.
pub fn ring_from(keys: Vec<StoredKey>, alg: Algorithm) -> Result<KeyRing, String> {
    let signing = keys
        .iter()
        .rev()
        .find(|k| k.key.alg() == alg)
        .map(|k| k.key.clone())
        .ok_or_else(|| format!("no {alg} key in the keys folder"))?;
    let set = JwkSet {
        keys: keys.iter().map(|k| k.key.public_jwk().clone()).collect(),
    };
    let jwks_body = Bytes::from(serde_json::to_vec(&set).map_err(|e| e.to_string())?);
    Ok(KeyRing {
        signing,
        keys,
        jwks_body,
    })
}

/// The live key ring plus the verifier view of it.
pub struct KeyStore {
    dir: PathBuf,
    alg: Algorithm,
    ring: ArcSwap<KeyRing>,
    verify_keys: Arc<StaticKeys>,
}

impl KeyStore {
    /// Opens the folder, generating a key of `alg` if none exists yet.
    pub fn open(dir: &Path, alg: Algorithm) -> Result<Self, String> {
        let mut keys = load_dir(dir)?;
        if !keys.iter().any(|k| k.key.alg() == alg) {
            let k = generate_into(dir, alg)?;
            tracing::info!(kid = k.key.kid(), %alg, dir = %dir.display(), "generated a new signing key");
            keys.push(k);
        }
        let ring = ring_from(keys, alg)?;
        let verify_keys = Arc::new(StaticKeys::new(&jwk_set(&ring)));
        Ok(Self {
            dir: dir.to_owned(),
            alg,
            ring: ArcSwap::from_pointee(ring),
            verify_keys,
        })
    }

    /// The current ring (lock-free).
    pub fn ring(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// Our own public keys, for introspection and revocation.
    pub fn verify_keys(&self) -> Arc<StaticKeys> {
        self.verify_keys.clone()
    }

    /// Re-reads the folder; swaps the ring if the set of keys changed.
    /// Returns true when it changed.
    pub fn reload(&self) -> Result<bool, String> {
        // File names carry the kid: an unchanged listing means unchanged keys,
        // so the periodic reload reads and parses nothing in the common case.
        let mut current: Vec<PathBuf> = self
            .ring
            .load()
            .keys
            .iter()
            .map(|k| k.path.clone())
            .collect();
        current.sort();
        if pem_paths(&self.dir)? == current {
            return Ok(false);
        }
        let keys = load_dir(&self.dir)?;
        let ring = ring_from(keys, self.alg)?;
        self.verify_keys.replace(&jwk_set(&ring));
        tracing::info!(
            signing_kid = ring.signing.kid(),
            keys = ring.keys.len(),
            "signing keys reloaded"
        );
        self.ring.store(Arc::new(ring));
        Ok(true)
    }
}

fn jwk_set(ring: &KeyRing) -> JwkSet {
    JwkSet {
        keys: ring
            .keys
            .iter()
            .map(|k| k.key.public_jwk().clone())
            .collect(),
    }
}

/// `keys rotate`: adds a new key of `alg` (it signs from the next reload on)
/// and deletes keys superseded for longer than `retire_after` (token
/// lifetime + leeway), so no live token loses its key.
pub fn rotate(
    dir: &Path,
    alg: Algorithm,
    retire_after: Duration,
) -> Result<(StoredKey, Vec<PathBuf>), String> {
    let new = generate_into(dir, alg)?;
    let keys = load_dir(dir)?;
    let now = now_secs();
    let mut retired = Vec::new();
    for pair in keys.windows(2) {
        let (old, next) = (&pair[0], &pair[1]);
        let superseded_for = now.saturating_sub(next.created);
        if superseded_for > retire_after.as_secs() && old.path != new.path {
            std::fs::remove_file(&old.path)
                .map_err(|e| format!("cannot remove {}: {e}", old.path.display()))?;
            retired.push(old.path.clone());
        }
    }
    Ok((new, retired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_generates_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let a = KeyStore::open(&keys_dir, Algorithm::ES256).unwrap();
        let b = KeyStore::open(&keys_dir, Algorithm::ES256).unwrap();
        assert_eq!(
            a.ring().signing.kid(),
            b.ring().signing.kid(),
            "second start reuses the key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let k = &a.ring().keys[0].path;
            assert_eq!(
                std::fs::metadata(k).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                std::fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }

    #[test]
    fn rotate_then_reload_switches_signer_and_keeps_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path(), Algorithm::EdDSA).unwrap();
        let old = store.ring().signing.kid().to_owned();
        let (new, retired) =
            rotate(dir.path(), Algorithm::EdDSA, Duration::from_secs(960)).unwrap();
        assert!(retired.is_empty());
        assert!(store.reload().unwrap());
        let ring = store.ring();
        assert_eq!(ring.signing.kid(), new.key.kid());
        let body: JwkSet = serde_json::from_slice(&ring.jwks_body).unwrap();
        let kids: Vec<_> = body.keys.iter().filter_map(|k| k.kid.clone()).collect();
        assert_eq!(kids, vec![old.clone(), new.key.kid().to_owned()]);
        // Age the files: the old key was superseded 1000 s ago, longer than
        // the 960 s retirement window, so the next rotation removes it.
        let now = now_secs();
        for (k, age) in ring.keys.iter().zip([2000, 1000]) {
            let renamed = dir
                .path()
                .join(format!("{}-{}.pem", now - age, k.key.kid()));
            std::fs::rename(&k.path, renamed).unwrap();
        }
        let (newest, retired) =
            rotate(dir.path(), Algorithm::EdDSA, Duration::from_secs(960)).unwrap();
        assert_eq!(retired.len(), 1);
        assert!(retired[0].to_string_lossy().contains(&old));
        let left: Vec<_> = load_dir(dir.path())
            .unwrap()
            .iter()
            .map(|k| k.key.kid().to_owned())
            .collect();
        assert_eq!(
            left,
            vec![new.key.kid().to_owned(), newest.key.kid().to_owned()]
        );
    }
}
