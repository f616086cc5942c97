//! The real `oauth-server` binary's command line: `--help` lists every
//! variable, configuration errors exit 2 with one line naming the variable,
//! usage errors exit 2, runtime failures exit 1.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_oauth-server");

/// The binary in `dir` (no `.env` unless the test writes one) with an empty
/// environment plus PATH/HOME and `vars`: a developer's settings cannot leak in.
fn command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .current_dir(dir)
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn run(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    command(dir, vars).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    for line in [
        "OAUTH_TOKEN_TTL_SECS [default: 900]",
        "OAUTH_BIND [default: 127.0.0.1:8080]",
        "OAUTH_ISSUER [default: http://localhost:8080]",
        "OAUTH_KEYS_DIR [default: keys]",
        "OAUTH_SIGNING_ALG [default: RS256]",
        "REDIS_URL [default: unset]",
        "RATE_LIMIT_FAILURE_MODE [default: local]",
        "TRUSTED_PROXIES [default: unset]",
        "LOG_FORMAT [default: text]",
    ] {
        assert!(lines.contains(&line), "{line:?} not in:\n{help}");
    }
    assert!(
        help.contains("Exit status: 0 ok, 1 runtime failure, 2 configuration error"),
        "{help}"
    );
    // Every subcommand is listed too.
    for cmd in [
        "serve",
        "hash-secret",
        "generate-secret",
        "keys",
        "healthcheck",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(cmd)), "{cmd}: {help}");
    }
}

#[test]
fn help_works_whatever_the_environment_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("OAUTH_TOKEN_TTL_SECS", "5")], &["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn bad_values_exit_2_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, line) in [
        (
            "OAUTH_TOKEN_TTL_SECS",
            "5",
            "oauth-server: OAUTH_TOKEN_TTL_SECS: must be between 60 and 3600 seconds",
        ),
        (
            "RATE_LIMIT_PER_MINUTE",
            "abc",
            "oauth-server: RATE_LIMIT_PER_MINUTE: expected a whole number from 1 to 60000000, got \"abc\"",
        ),
        (
            "OAUTH_ISSUER",
            "notaurl",
            "oauth-server: OAUTH_ISSUER: \"notaurl\" is not an absolute URL",
        ),
        (
            "OAUTH_BIND",
            "nope",
            "oauth-server: OAUTH_BIND: invalid value \"nope\": invalid socket address syntax",
        ),
    ] {
        // Serving (the default), and every subcommand that reads the configuration.
        for args in [&[][..], &["serve"], &["healthcheck"], &["keys", "list"]] {
            let out = run(dir.path(), &[(var, value)], args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{var} {args:?}: {}",
                stderr(&out)
            );
            assert_eq!(stderr(&out), format!("{line}\n"), "{var} {args:?}");
        }
    }
}

#[test]
fn a_bad_value_in_dot_env_is_a_configuration_error_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "OAUTH_SIGNING_ALG=HS256\n").unwrap();
    let out = run(dir.path(), &[], &["keys", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("oauth-server: OAUTH_SIGNING_ALG: "),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["frobnicate"][..],
        &["keys"],
        &["keys", "shred"],
        &["hash-secret", "--md5"],
        &["hash-secret", "--sha256", "--argon2id"],
        &["--no-such-flag"],
    ] {
        let out = run(dir.path(), &[], args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        // clap's error, or for `keys` alone the subcommand's help; never stdout.
        assert!(
            !stderr(&out).is_empty() && out.stdout.is_empty(),
            "{args:?}"
        );
    }
}

#[test]
fn runtime_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let bind = format!("127.0.0.1:{}", testkit::free_port());
    let out = run(dir.path(), &[("OAUTH_BIND", &bind)], &["healthcheck"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("oauth-server: "),
        "{}",
        stderr(&out)
    );
    // A chosen (short) secret is refused for sha256.
    let mut child = command(dir.path(), &[])
        .args(["hash-secret", "--sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hunter2").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn subcommands_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["generate-secret"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let mut child = command(dir.path(), &[])
        .args(["hash-secret", "--sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(hash.trim()), "{text} / {hash}");

    let keys = dir.path().join("keys");
    let vars = [
        ("OAUTH_KEYS_DIR", keys.to_str().unwrap()),
        ("OAUTH_SIGNING_ALG", "ES256"),
    ];
    let out = run(dir.path(), &vars, &["keys", "generate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(dir.path(), &vars, &["keys", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("ES256") && list.contains("(signing)"),
        "{list}"
    );
}
