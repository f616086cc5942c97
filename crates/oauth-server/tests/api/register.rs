//! RFC 7591 dynamic client registration (`POST /register`).

use std::sync::Arc;

use oauth_server::clients::AuthMethod;
use oauth_server::registration::{InitialAccessToken, RegistrationMode};
use serde_json::{Value, json};

use crate::helpers::*;

/// A budget large enough that tests about validation never hit it.
fn generous() -> Opts {
    with_config(|c| c.registration.per_hour = 10_000)
}

fn with_config(f: impl Fn(&mut oauth_server::Config) + Send + Sync + 'static) -> Opts {
    Opts {
        configure: Some(Arc::new(f)),
        ..Opts::default()
    }
}

async fn register(app: &TestApp, body: &Value) -> reqwest::Response {
    register_as(app, body, None).await
}

async fn register_as(app: &TestApp, body: &Value, bearer: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

fn minimal() -> Value {
    json!({"redirect_uris": ["http://127.0.0.1/callback"]})
}

async fn metadata(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn registration_returns_the_registered_public_client_and_stores_it() {
    let app = spawn().await;
    let before = auth::now_unix();
    let resp = register(
        &app,
        &json!({
            "redirect_uris": ["http://127.0.0.1/callback", "https://app.example.com/cb"],
            "client_name": "Test Host",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "customer:read security:read ticket:create",
            "logo_uri": "https://app.example.com/logo.png",
        }),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "client_id",
            "client_id_issued_at",
            "client_name",
            "grant_types",
            "redirect_uris",
            "response_types",
            "scope",
            "token_endpoint_auth_method",
        ],
        "exactly the registered metadata: no secret, nothing unused echoed"
    );
    let id = body["client_id"].as_str().unwrap();
    let suffix = id.strip_prefix("dyn-").expect("dyn- prefix");
    assert_eq!(suffix.len(), 22, "{id}");
    assert!(
        suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{id}"
    );
    let issued = body["client_id_issued_at"].as_i64().unwrap();
    assert!(issued >= before && issued <= auth::now_unix());
    assert_eq!(body["client_name"], "Test Host");
    assert_eq!(
        body["redirect_uris"],
        json!(["http://127.0.0.1/callback", "https://app.example.com/cb"])
    );
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["scope"], "customer:read ticket:create",
        "security:read is outside OAUTH_REGISTRATION_SCOPES: dropped"
    );

    let state = app.stack.oauth_state().unwrap();
    let client = state.clients.find(id).await.unwrap().expect("stored");
    assert_eq!(client.client_id, id);
    assert_eq!(client.client_name, "Test Host");
    assert_eq!(
        client.redirect_uris,
        ["http://127.0.0.1/callback", "https://app.example.com/cb"]
    );
    assert_eq!(client.auth_methods, [AuthMethod::None]);
    assert_eq!(client.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(
        client.allowed_scopes.to_string(),
        "customer:read ticket:create"
    );
    assert_eq!(client.default_scopes, client.allowed_scopes);
    assert_eq!(client.allowed_resources, [LOCAL_MCP]);
    assert_eq!(client.document_url, None);
    assert!(!client.can_introspect);

    // Another registration gets another id; defaults fill what is omitted.
    let resp = register(&app, &minimal()).await;
    assert_eq!(resp.status(), 201);
    let other: Value = resp.json().await.unwrap();
    assert_ne!(other["client_id"], body["client_id"]);
    assert_eq!(other["client_name"], "unnamed client");
    assert_eq!(
        other["scope"], "account:calculate customer:read ticket:create",
        "OAUTH_REGISTRATION_SCOPES' default"
    );

    let m = metadata(&app).await;
    assert_eq!(m["registration_endpoint"], app.url("/register"));
    assert_eq!(m["client_id_metadata_document_supported"], true);
}

#[tokio::test]
async fn invalid_metadata_gets_the_rfc7591_error() {
    let app = spawn_with(generous()).await;
    let uri = json!(["http://127.0.0.1/callback"]);
    let eleven: Vec<String> = (0..11).map(|i| format!("http://127.0.0.1/cb{i}")).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"client_name": "x"}),
            "invalid_redirect_uri",
            "redirect_uris is required",
        ),
        (
            json!({"redirect_uris": []}),
            "invalid_redirect_uri",
            "redirect_uris must not be empty",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
            "redirect_uris[0] is invalid: must use https, or http on a loopback host (127.0.0.1, [::1], localhost)",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb", "https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
            "redirect_uris[1] is invalid: must not contain a fragment",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
            "redirect_uris[0] is invalid: scheme \"javascript\" is not allowed (javascript:, data: and file: never are)",
        ),
        (
            json!({"redirect_uris": ["/relative"]}),
            "invalid_redirect_uri",
            "redirect_uris[0] is invalid: not an absolute URI",
        ),
        (
            json!({"redirect_uris": eleven}),
            "invalid_redirect_uri",
            "at most 10 redirect_uris may be registered",
        ),
        (
            json!({"redirect_uris": [7]}),
            "invalid_redirect_uri",
            "redirect_uris must be an array of strings",
        ),
        (
            json!({"redirect_uris": uri, "grant_types": ["authorization_code", "client_credentials"]}),
            "invalid_client_metadata",
            "grant_types \"client_credentials\" is not supported (supported: authorization_code, refresh_token)",
        ),
        (
            json!({"redirect_uris": uri, "grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
            "grant_types must include authorization_code",
        ),
        (
            json!({"redirect_uris": uri, "response_types": ["code", "token"]}),
            "invalid_client_metadata",
            "response_types \"token\" is not supported (supported: code)",
        ),
        (
            json!({"redirect_uris": uri, "client_name": "x".repeat(101)}),
            "invalid_client_metadata",
            "client_name is longer than 100 characters",
        ),
        (
            json!({"redirect_uris": uri, "client_name": "Evil\u{1b}[31m Host"}),
            "invalid_client_metadata",
            "client_name must not contain control characters",
        ),
        (
            json!({"redirect_uris": uri, "client_name": "  "}),
            "invalid_client_metadata",
            "client_name must not be empty",
        ),
        (
            json!({"redirect_uris": uri, "scope": "security:read"}),
            "invalid_client_metadata",
            "none of the requested scopes may be granted to a registered client (at most: account:calculate customer:read ticket:create)",
        ),
        (
            json!({"redirect_uris": uri, "scope": "unknown:scope"}),
            "invalid_client_metadata",
            "none of the requested scopes may be granted to a registered client (at most: account:calculate customer:read ticket:create)",
        ),
        (
            json!({"redirect_uris": uri, "scope": " customer:read"}),
            "invalid_client_metadata",
            "scope is malformed: scope contains an empty scope token (leading, trailing or repeated space)",
        ),
        (
            json!({"redirect_uris": uri, "scope": ["customer:read"]}),
            "invalid_client_metadata",
            "scope must be a string",
        ),
        (
            json!(["not", "an", "object"]),
            "invalid_client_metadata",
            "the body must be a JSON object",
        ),
    ];
    for (body, code, description) in cases {
        let resp = register(&app, &body).await;
        let got = assert_oauth_error(resp, 400, code).await;
        assert_eq!(got["error_description"], description, "{body}");
    }

    // Not JSON, not declared as JSON, too large.
    let raw = |ct: &str, body: String| {
        app.http
            .post(app.url("/register"))
            .header("content-type", ct.to_owned())
            .body(body)
            .send()
    };
    let got = assert_oauth_error(
        raw("application/json", "{\"redirect_uris\":".into())
            .await
            .unwrap(),
        400,
        "invalid_client_metadata",
    )
    .await;
    assert_eq!(got["error_description"], "the body is not valid JSON");
    let got = assert_oauth_error(
        raw("application/x-www-form-urlencoded", minimal().to_string())
            .await
            .unwrap(),
        400,
        "invalid_client_metadata",
    )
    .await;
    assert_eq!(
        got["error_description"],
        "Content-Type must be application/json"
    );
    let huge = json!({"redirect_uris": uri, "client_uri": "x".repeat(17 * 1024)});
    let got = assert_oauth_error(
        raw("application/json", huge.to_string()).await.unwrap(),
        413,
        "invalid_client_metadata",
    )
    .await;
    assert_eq!(got["error_description"], "request body exceeds 16384 bytes");
    // Charset parameters are fine, and the server kept serving throughout.
    let resp = raw("application/json; charset=utf-8", minimal().to_string())
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn confidential_clients_cannot_register() {
    let app = spawn_with(generous()).await;
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
    ] {
        let mut body = minimal();
        body["token_endpoint_auth_method"] = json!(method);
        let got =
            assert_oauth_error(register(&app, &body).await, 400, "invalid_client_metadata").await;
        assert_eq!(
            got["error_description"],
            format!(
                "token_endpoint_auth_method \"{method}\" is not supported: only public clients \
                 (\"none\", authorization code with PKCE) may register"
            )
        );
        assert!(got.get("client_secret").is_none());
        assert!(got.get("client_id").is_none());
    }
}

#[tokio::test]
async fn off_answers_404_and_is_not_advertised() {
    let app = spawn_with(with_config(|c| {
        c.registration.mode = RegistrationMode::Off;
    }))
    .await;
    let resp = register(&app, &minimal()).await;
    assert_eq!(resp.status(), 404);
    let m = metadata(&app).await;
    assert!(
        m.get("registration_endpoint").is_none(),
        "no registration_endpoint when off: {m}"
    );
    assert_eq!(m["client_id_metadata_document_supported"], true);
}

#[tokio::test]
async fn token_mode_requires_the_initial_access_token() {
    const TOKEN: &str = "initial-access-token-0123456789";
    let app = spawn_with(with_config(|c| {
        c.registration.mode = RegistrationMode::Token(InitialAccessToken::new(TOKEN));
    }))
    .await;
    let resp = register_as(&app, &minimal(), None).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"secure-mcp\""
    );
    let got = assert_oauth_error(resp, 401, "invalid_token").await;
    assert_eq!(
        got["error_description"],
        "this server requires an initial access token (Authorization: Bearer) to register"
    );

    let resp = register_as(&app, &minimal(), Some("initial-access-token-0123456788")).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"secure-mcp\", error=\"invalid_token\""
    );
    let got = assert_oauth_error(resp, 401, "invalid_token").await;
    assert_eq!(
        got["error_description"],
        "the initial access token is not valid"
    );
    // Basic is not Bearer.
    let resp = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .header("authorization", basic_header("x", TOKEN))
        .body(minimal().to_string())
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token").await;

    let resp = register_as(&app, &minimal(), Some(TOKEN)).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert!(body["client_id"].as_str().unwrap().starts_with("dyn-"));
    assert_eq!(
        metadata(&app).await["registration_endpoint"],
        app.url("/register")
    );
}

#[tokio::test]
async fn a_registration_flood_from_one_ip_is_limited() {
    // The default budget: 10 an hour per IP.
    let app = spawn_with(Opts {
        trusted_proxies: Some("127.0.0.1/32"),
        ..Opts::default()
    })
    .await;
    for i in 0..10 {
        let resp = register(&app, &minimal()).await;
        assert_eq!(resp.status(), 201, "registration {i}");
    }
    let resp = register(&app, &minimal()).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=360).contains(&retry),
        "one registration comes back every 6 minutes: {retry}"
    );
    let got = assert_oauth_error(resp, 429, "slow_down").await;
    assert_eq!(
        got["error_description"],
        format!("too many registrations from this address; retry after {retry} s")
    );
    // Another address has its own budget, and /token has its own.
    let resp = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "198.51.100.7")
        .body(minimal().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    app.token(&[]).await;
}

#[tokio::test]
async fn the_registration_cap_answers_503() {
    let app = spawn_with(with_config(|c| {
        c.registration.max_clients = 2;
        c.registration.per_hour = 100;
    }))
    .await;
    for _ in 0..2 {
        assert_eq!(register(&app, &minimal()).await.status(), 201);
    }
    let got = assert_oauth_error(
        register(&app, &minimal()).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert_eq!(
        got["error_description"],
        "this server accepts no more registrations at the moment; try again later"
    );
}

#[tokio::test]
async fn registrations_are_shared_through_redis() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    };
    let first = spawn_with(opts.clone()).await;
    let resp = register(&first, &minimal()).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let id = body["client_id"].as_str().unwrap();
    // A second replica on the same Redis knows the client.
    let second = spawn_with(opts).await;
    let client = second
        .stack
        .oauth_state()
        .unwrap()
        .clients
        .find(id)
        .await
        .unwrap()
        .expect("registered on the other replica");
    assert_eq!(client.redirect_uris, ["http://127.0.0.1/callback"]);
}

/// The real binary with only `vars` set (plus PATH/HOME), in `dir`;
/// `None` if it was still running after 60 s (then it is killed).
fn run_binary(
    dir: &std::path::Path,
    vars: &[(&str, &str)],
    args: &[&str],
) -> Option<(i32, String)> {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-server"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return Some((status.code().unwrap_or(-1), err));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn registration_settings_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    // Configuration errors: exit 2, one line naming the variable.
    for (vars, line) in [
        (
            &[("OAUTH_REGISTRATION", "token")][..],
            "OAUTH_REGISTRATION_TOKEN: is required when OAUTH_REGISTRATION=token",
        ),
        (
            &[
                ("OAUTH_REGISTRATION", "token"),
                ("OAUTH_REGISTRATION_TOKEN", "too-short"),
            ],
            "OAUTH_REGISTRATION_TOKEN: must be at least 16 characters (generate one with \
             `oauth-server generate-secret`)",
        ),
        (
            &[("OAUTH_REGISTRATION", "maybe")],
            "OAUTH_REGISTRATION: invalid value \"maybe\": expected open, token or off",
        ),
        (
            &[("OAUTH_REGISTRATION_MAX", "0")],
            "OAUTH_REGISTRATION_MAX: must be at least 1 (use OAUTH_REGISTRATION=off to stop \
             registrations)",
        ),
        (
            &[("OAUTH_REGISTRATION_PER_HOUR", "0")],
            "OAUTH_REGISTRATION_PER_HOUR: must be between 1 and 10000",
        ),
        (
            &[("OAUTH_REGISTRATION_SCOPES", "customer:read bad\"scope")],
            "OAUTH_REGISTRATION_SCOPES: scope token contains a character outside RFC 6749 \
             scope-token syntax",
        ),
        (
            &[(
                "OAUTH_CIMD_ALLOWED_HOSTS",
                "localhost:8443, https://apps.example",
            )],
            "OAUTH_CIMD_ALLOWED_HOSTS: \"https://apps.example\": entries are a host or \
             host:port, not a URL",
        ),
    ] {
        let (code, err) = run_binary(dir.path(), vars, &["keys", "list"]).unwrap();
        assert_eq!(code, 2, "{vars:?}: {err}");
        assert_eq!(err, format!("oauth-server: {line}\n"), "{vars:?}");
    }
    // What needs the registry or the file system fails the start (exit 1).
    let clients = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/clients.toml");
    let keys = dir.path().join("keys");
    let keys = keys.to_str().unwrap();
    let base = [
        ("OAUTH_BIND", "127.0.0.1:0"),
        ("OAUTH_METRICS_BIND", ""),
        ("OAUTH_CLIENTS_FILE", clients),
        ("OAUTH_KEYS_DIR", keys),
    ];
    for (var, value, line) in [
        (
            "OAUTH_REGISTRATION_SCOPES",
            "customer:read admin:all",
            "OAUTH_REGISTRATION_SCOPES: unknown scope admin:all (no client of the registry has it)",
        ),
        (
            "SSL_CERT_FILE",
            "/nonexistent/ca.pem",
            "SSL_CERT_FILE: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)",
        ),
    ] {
        let mut vars = base.to_vec();
        vars.push((var, value));
        let (code, err) = run_binary(dir.path(), &vars, &["serve"]).expect("it must not serve");
        assert_eq!(code, 1, "{var}: {err}");
        assert!(
            err.ends_with(&format!("oauth-server: {line}\n")),
            "{var}: {err}"
        );
    }
}
