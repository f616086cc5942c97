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
        "hash-password",
        "add-user",
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

/// Issue 13 item 8: a list that parses to nothing, or has a hole, would
/// weaken what it configures; each exits 2 with one line naming the fix.
#[test]
fn lists_that_would_weaken_a_protection_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, line) in [
        (
            "TRUSTED_PROXIES",
            "127.0.0.1,",
            "oauth-server: TRUSTED_PROXIES: entry 2 is empty in \"127.0.0.1,\": remove the extra comma, or unset the variable to trust no proxy",
        ),
        (
            "TRUSTED_PROXIES",
            ",",
            "oauth-server: TRUSTED_PROXIES: entry 1 is empty in \",\": remove the extra comma, or unset the variable to trust no proxy",
        ),
        (
            "TRUSTED_PROXIES",
            "0.0.0.0/0",
            "oauth-server: TRUSTED_PROXIES: \"0.0.0.0/0\" trusts every address, so any client could choose its rate-limit key with X-Forwarded-For: name the proxies' own networks",
        ),
        (
            "OAUTH_RESOURCES",
            "http://localhost:8000/mcp,,https://mcp.example.com/mcp",
            "oauth-server: OAUTH_RESOURCES: entry 2 is empty in \"http://localhost:8000/mcp,,https://mcp.example.com/mcp\": remove the extra comma, or unset the variable for its default",
        ),
        (
            "OAUTH_CIMD_ALLOWED_HOSTS",
            ",",
            "oauth-server: OAUTH_CIMD_ALLOWED_HOSTS: entry 1 is empty in \",\": remove the extra comma, or unset the variable for its default",
        ),
        (
            "REDIS_CLUSTER_NODES",
            "redis://127.0.0.1:7000,,redis://127.0.0.1:7001",
            "oauth-server: REDIS_CLUSTER_NODES: entry 2: is empty: remove the extra comma (expected redis://host:port, comma-separated)",
        ),
        (
            "REDIS_CLUSTER_NODES",
            "redis://:secret@127.0.0.1:7000,nope",
            "oauth-server: REDIS_CLUSTER_NODES: entry 2: invalid Redis URL (invalid client config)",
        ),
        (
            "OAUTH_REGISTRATION_SCOPES",
            " , ",
            "oauth-server: OAUTH_REGISTRATION_SCOPES: \" , \" names no scope: list scopes, unset it for the default, or set OAUTH_REGISTRATION=off",
        ),
    ] {
        let out = run(dir.path(), &[(var, value)], &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value:?}: {}",
            stderr(&out)
        );
        assert_eq!(stderr(&out), format!("{line}\n"), "{var}={value:?}");
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

/// `cmd` with `stdin` piped in.
fn run_with_stdin(dir: &Path, vars: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command(dir, vars)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn dev_clients() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/clients.toml")
        .display()
        .to_string()
}

#[test]
fn hash_password_prints_an_argon2id_hash_and_refuses_an_empty_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(dir.path(), &[], &["hash-password"], b"s3cret pass\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim_end();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    oauth_server::users::validate_password_hash(hash).unwrap();
    let entry =
        format!("[[user]]\nusername = \"u\"\npassword_hash = {hash:?}\nallowed_scopes = []\n");
    assert!(oauth_server::users::UsersFile::parse(&entry).is_ok());
    for empty in [&b""[..], b"\n", b"\r\n"] {
        let out = run_with_stdin(dir.path(), &[], &["hash-password"], empty);
        assert_eq!(out.status.code(), Some(1), "{empty:?}");
        assert!(
            stderr(&out).contains("no password on stdin"),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn add_user_appends_a_valid_entry_and_refuses_duplicates_and_unknown_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, "# mine\n").unwrap();
    let clients = dev_clients();
    let vars = [
        ("OAUTH_USERS_FILE", users.to_str().unwrap()),
        ("OAUTH_CLIENTS_FILE", clients.as_str()),
    ];
    let add = |name: &str, scopes: &str, pw: &[u8]| {
        run_with_stdin(
            dir.path(),
            &vars,
            &[
                "add-user",
                name,
                "--scopes",
                scopes,
                "--name",
                "Carol \"C\" Example",
            ],
            pw,
        )
    };
    let out = add("carol", "customer:read ticket:create", b"carol-password\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = add("dave", "customer:read", b"dave-password");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = std::fs::read_to_string(&users).unwrap();
    assert!(
        before.starts_with("# mine\n"),
        "existing content kept: {before}"
    );

    let out = add("carol", "customer:read", b"other");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"carol\" already exists"),
        "{}",
        stderr(&out)
    );
    let out = add("erin", "customer:read admin:all", b"pw");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown scope admin:all"),
        "{}",
        stderr(&out)
    );
    let out = add("erin", "customer:read", b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no password on stdin"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        before,
        "refusals write nothing"
    );

    // The file stays valid and the new users sign in with their passwords.
    let file = oauth_server::users::UsersFile::load(&users).unwrap();
    assert_eq!(file.len(), 2);
    let check = oauth_server::users::PasswordCheck::new(1).unwrap();
    let dir_users = oauth_server::users::FileUsers::new(file, check)
        .await
        .unwrap();
    use oauth_server::users::UserDirectory as _;
    let carol = dir_users
        .authenticate("carol", "carol-password")
        .await
        .unwrap();
    assert_eq!(
        carol.allowed_scopes.to_string(),
        "customer:read ticket:create"
    );
    assert_eq!(carol.name, "Carol \"C\" Example");
    assert!(
        dir_users
            .authenticate("dave", "dave-password")
            .await
            .is_ok()
    );
}

#[test]
fn a_missing_users_file_is_an_error_only_when_named() {
    let dir = tempfile::tempdir().unwrap();
    let clients = dev_clients();
    let missing = dir.path().join("nope.toml");
    let out = run(
        dir.path(),
        &[
            ("OAUTH_BIND", "127.0.0.1:0"),
            ("OAUTH_CLIENTS_FILE", clients.as_str()),
            ("OAUTH_SIGNING_ALG", "ES256"),
            ("OAUTH_USERS_FILE", missing.to_str().unwrap()),
        ],
        &["serve"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("oauth-server: OAUTH_USERS_FILE: cannot read"),
        "{err}"
    );
}

/// Issue 13 item 3: with its file descriptors exhausted by held connections
/// the server keeps accepting as soon as descriptors free up: the accept
/// loop logs the failure and retries, it never ends.
#[tokio::test]
async fn the_accept_loop_outlives_fd_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let bind = format!("127.0.0.1:{port}");
    let keys = dir.path().join("keys");
    let log = dir.path().join("stderr.log");
    let mut child = command(
        dir.path(),
        &[
            ("OAUTH_BIND", &bind),
            // Not the default 9101: another test or a running stack may hold it.
            ("OAUTH_METRICS_BIND", ""),
            ("OAUTH_CLIENTS_FILE", &dev_clients()),
            ("OAUTH_KEYS_DIR", keys.to_str().unwrap()),
            ("RUST_LOG", "warn"),
        ],
    )
    .program_for_shell()
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let http = reqwest::Client::new();
    let health = format!("http://{bind}/health");
    let healthy = || async {
        for _ in 0..200 {
            if let Ok(r) = http.get(&health).send().await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        healthy().await,
        "started: {}",
        std::fs::read_to_string(&log).unwrap()
    );

    // More connections than the process has descriptors left.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(tokio::net::TcpStream::connect(&bind).await.unwrap());
    }
    let mut logged = false;
    for _ in 0..200 {
        if std::fs::read_to_string(&log)
            .unwrap()
            .contains("accept failed (out of file descriptors?); retrying")
        {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged, "{}", std::fs::read_to_string(&log).unwrap());
    drop(held);
    assert!(healthy().await, "serving again once descriptors are free");
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    child.kill().unwrap();
    let _ = child.wait();
}

/// Runs the command through `sh` with at most 40 open file descriptors.
trait LowFdLimit {
    fn program_for_shell(&mut self) -> Command;
}

impl LowFdLimit for Command {
    fn program_for_shell(&mut self) -> Command {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("ulimit -n 40 && exec \"$0\" serve")
            .arg(self.get_program());
        sh.env_clear();
        for (k, v) in self.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        if let Some(d) = self.get_current_dir() {
            sh.current_dir(d);
        }
        sh.stdin(Stdio::null());
        sh
    }
}
