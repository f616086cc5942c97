//! Locating service binaries (redis-server, nginx, chromedriver, chromium) and
//! the skip-or-fail rule.

use std::env;
use std::path::{Path, PathBuf};

/// Set to `1` (CI does) to turn a missing service binary into a test failure.
pub const REQUIRE_SERVICES_VAR: &str = "SECURE_MCP_REQUIRE_SERVICES";

/// True when `SECURE_MCP_REQUIRE_SERVICES=1`: a missing service binary
/// (`redis-server`, `nginx`, `chromedriver`, ...) is then a hard failure instead of a skipped test.
pub fn services_required() -> bool {
    env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v.trim() == "1")
}

/// Finds `name` through the override variable `override_var` (a path) or else
/// on `PATH`.
pub fn find_binary(name: &str, override_var: &str) -> Option<PathBuf> {
    if let Some(path) = env::var_os(override_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Handles a missing service binary: panics when services are required,
/// otherwise prints a loud `SKIPPED` line to stderr (shown by `cargo test`
/// for failing tests and with `--nocapture`) and returns `None`.
pub fn missing<T>(name: &str, override_var: &str, install_hint: &str) -> Option<T> {
    let advice = format!(
        "{name} not found on PATH (or in {override_var}); install it ({install_hint}) \
         or point {override_var} at the binary"
    );
    if services_required() {
        panic!("testkit: {REQUIRE_SERVICES_VAR}=1 but {advice}");
    }
    eprintln!("SKIPPED: {advice}; set {REQUIRE_SERVICES_VAR}=1 to make this a failure");
    None
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
