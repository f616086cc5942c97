//! Finding the external tools the deployment checks use.

use std::path::PathBuf;

use testkit::services;

/// `name` from `override_var`, `PATH`, or the repository's tool folder
/// (`.tools/venv/bin`, filled by `scripts/install-ci-tools.sh`);
/// `None` after the skip-or-fail rule.
pub fn find(name: &str, override_var: &str, hint: &str) -> Option<PathBuf> {
    if let Some(p) = services::find_binary(name, override_var) {
        return Some(p);
    }
    let local = super::helpers::repo_root()
        .join(".tools/venv/bin")
        .join(name);
    if std::env::var_os(override_var).is_none() && local.is_file() {
        return Some(local);
    }
    services::missing(name, override_var, hint)
}

pub fn openssl() -> Option<PathBuf> {
    find(
        "openssl",
        "OPENSSL_BIN",
        "Debian/Ubuntu: apt-get install openssl",
    )
}
