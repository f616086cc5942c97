//! `GET|POST /authorize` driven like a browser over real HTTP: the session
//! cookie kept by hand, hidden form fields read from the HTML, redirects
//! not followed (the test reads `Location`).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_server::codes::Presented;
use sha2::{Digest, Sha256};

use crate::helpers::{LOCAL_MCP, Opts, TestApp, spawn, spawn_with};

const CLIENT: &str = "claude-desktop-client";
/// A registered loopback redirect on a port of the client's choosing.
const REDIRECT: &str = "http://127.0.0.1:53123/callback";
const STATE: &str = "st-4711 &=?";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// A complete, valid authorization request; `set` replaces or adds
/// parameters, an empty value removes one.
fn request(set: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("code_challenge_method", "S256"),
        ("state", STATE),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    p.push(("code_challenge".into(), challenge()));
    for (k, v) in set {
        p.retain(|(name, _)| name != k);
        if !v.is_empty() {
            p.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    p
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> Option<&str> {
        self.headers.get("location").map(|v| v.to_str().unwrap())
    }

    /// The query of the redirect (asserting it goes to `REDIRECT`).
    fn redirect_query(&self) -> HashMap<String, String> {
        assert_eq!(self.status, 303, "{}", self.body);
        let loc = url::Url::parse(self.location().unwrap()).unwrap();
        assert_eq!(
            format!("{}://{}{}", loc.scheme(), loc.authority(), loc.path()),
            REDIRECT
        );
        loc.query_pairs().into_owned().collect()
    }

    /// A hidden input's value.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} in {}", self.body))
            + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    fn is_login(&self) -> bool {
        self.status == 200 && self.body.contains("name=\"password\"")
    }

    fn is_consent(&self) -> bool {
        self.status == 200 && self.body.contains("name=\"decision\" value=\"approve\"")
    }
}

/// One browser: a cookie jar of one cookie, no redirects followed.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    /// Sent as X-Forwarded-For (with trusted proxies configured).
    forwarded_for: Option<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::at(&app.base)
    }

    fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            forwarded_for: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req;
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(ip) = &self.forwarded_for {
            req = req.header("x-forwarded-for", ip);
        }
        let resp = req.send().await.unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn authorize(&mut self, params: &[(String, String)]) -> Page {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            q.append_pair(k, v);
        }
        let url = format!("{}/authorize?{}", self.base, q.finish());
        let req = self.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, pairs: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}/authorize", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(crate::helpers::form(pairs));
        self.send(req).await
    }

    async fn login(&mut self, page: &Page, user: &str, password: &str) -> Page {
        assert!(page.is_login(), "{}: {}", page.status, page.body);
        let (txn, csrf) = (page.hidden("txn"), page.hidden("csrf_token"));
        self.post(&[
            ("txn", &txn),
            ("csrf_token", &csrf),
            ("username", user),
            ("password", password),
        ])
        .await
    }

    async fn decide(&mut self, page: &Page, decision: &str) -> Page {
        assert!(page.is_consent(), "{}: {}", page.status, page.body);
        let (txn, csrf) = (page.hidden("txn"), page.hidden("csrf_token"));
        self.post(&[("txn", &txn), ("csrf_token", &csrf), ("decision", decision)])
            .await
    }
}

/// Asserts a §4.1.2.1 error redirect with `state` and `iss`.
fn assert_error_redirect(app: &TestApp, page: &Page, error: &str) {
    let q = page.redirect_query();
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{q:?}");
    assert!(q.get("error_description").is_some_and(|d| !d.is_empty()));
    assert_eq!(q.get("state").map(String::as_str), Some(STATE));
    assert_eq!(q.get("iss").map(String::as_str), Some(app.base.as_str()));
    assert!(!q.contains_key("code"));
}

/// Asserts a code redirect and returns the code.
fn assert_code_redirect(app: &TestApp, page: &Page) -> String {
    let q = page.redirect_query();
    assert_eq!(q.len(), 3, "exactly code, state and iss: {q:?}");
    assert_eq!(q.get("state").map(String::as_str), Some(STATE));
    assert_eq!(q.get("iss").map(String::as_str), Some(app.base.as_str()));
    let code = q["code"].clone();
    assert_eq!(code.len(), 43);
    code
}

/// Takes the code from the store (it is single use) and returns its grant.
async fn redeem(app: &TestApp, code: &str) -> oauth_server::codes::AuthorizationCode {
    let state = app.stack.oauth_state().unwrap();
    match state.codes.present(code).await.unwrap() {
        Presented::Fresh(g) => g,
        other => panic!("code not fresh: {other:?}"),
    }
}

fn assert_page_headers(page: &Page, form_action: Option<&str>) {
    let h = &page.headers;
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    let style = page
        .body
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    let action = match form_action {
        Some(origin) => format!("form-action 'self' {origin}"),
        None => "form-action 'none'".to_owned(),
    };
    assert_eq!(
        csp,
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; {action}"
        )
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"));
    assert!(!page.body.contains("<script"), "no JavaScript at all");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn alice_logs_in_consents_and_gets_a_code_then_consent_is_remembered() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let scope = "customer:read ticket:create";
    let login = b.authorize(&request(&[("scope", scope)])).await;
    assert!(login.is_login(), "{}", login.body);
    assert_page_headers(&login, Some("http://127.0.0.1:53123"));
    // http loopback issuer: the dev cookie (docs/decisions/0014).
    let set = login.headers["set-cookie"].to_str().unwrap();
    let value = set
        .strip_prefix("securemcp_session=")
        .and_then(|r| r.strip_suffix("; Path=/; HttpOnly; SameSite=Lax"))
        .unwrap_or_else(|| panic!("{set}"));
    assert_eq!(value.len(), 43);
    assert!(login.body.contains("Claude Desktop (dev)"));
    assert_eq!(login.hidden("csrf_token").len(), 43);

    let consent = b.login(&login, "alice", "alice-dev-password").await;
    assert!(consent.is_consent(), "{}", consent.body);
    assert_page_headers(&consent, Some("http://127.0.0.1:53123"));
    let rotated = consent.headers["set-cookie"].to_str().unwrap();
    assert!(!rotated.contains(value), "session id rotated at sign-in");
    for s in [
        "customer:read",
        "ticket:create",
        "Claude Desktop (dev)",
        "127.0.0.1:53123",
    ] {
        assert!(consent.body.contains(s), "{s} on {}", consent.body);
    }
    assert!(
        consent
            .body
            .contains(auth::scope::describe("ticket:create"))
    );
    assert!(!consent.body.contains("account:calculate"));

    let done = b.decide(&consent, "approve").await;
    assert_eq!(done.headers["referrer-policy"], "no-referrer");
    assert_eq!(done.headers["cache-control"], "no-store");
    let code = assert_code_redirect(&app, &done);
    let grant = redeem(&app, &code).await;
    assert_eq!(grant.client_id, CLIENT);
    assert_eq!(grant.sub, "alice");
    assert_eq!(grant.scope.to_string(), scope);
    assert_eq!(grant.redirect_uri, REDIRECT);
    assert_eq!(grant.code_challenge, challenge());
    assert_eq!(grant.resource, LOCAL_MCP);
    // Submitting the consent form again finds nothing.
    let again = b
        .post(&[
            ("txn", &consent.hidden("txn")),
            ("csrf_token", &consent.hidden("csrf_token")),
            ("decision", "approve"),
        ])
        .await;
    assert_eq!(again.status, 400);
    assert!(again.location().is_none());

    // Same browser, a subset of the consented scopes: straight to the code.
    let direct = b.authorize(&request(&[("scope", "customer:read")])).await;
    let code2 = assert_code_redirect(&app, &direct);
    assert_ne!(code2, code);
    assert_eq!(
        redeem(&app, &code2).await.scope.to_string(),
        "customer:read"
    );

    // Another browser: sign in, and the remembered consent skips the page.
    let mut other = Browser::new(&app);
    let login = other.authorize(&request(&[("scope", scope)])).await;
    let direct = other.login(&login, "alice", "alice-dev-password").await;
    assert_code_redirect(&app, &direct);

    // More than was consented: ask again.
    let more = b
        .authorize(&request(&[(
            "scope",
            "customer:read ticket:create account:calculate",
        )]))
        .await;
    assert!(more.is_consent(), "{}", more.body);
    // prompt=consent asks even for a consented set.
    let forced = b
        .authorize(&request(&[
            ("scope", "customer:read"),
            ("prompt", "consent"),
        ]))
        .await;
    assert!(forced.is_consent(), "{}", forced.body);
    // prompt=none with a session and a remembered consent: the code.
    let silent = b
        .authorize(&request(&[("scope", "customer:read"), ("prompt", "none")]))
        .await;
    assert_code_redirect(&app, &silent);
    // ...and consent_required when the page would be needed.
    let silent = b
        .authorize(&request(&[
            ("scope", "account:calculate"),
            ("prompt", "none"),
        ]))
        .await;
    assert_error_redirect(&app, &silent, "consent_required");
}

#[tokio::test]
async fn bob_gets_only_customer_read_and_nothing_else_is_access_denied() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let login = b
        .authorize(&request(&[(
            "scope",
            "customer:read ticket:create account:calculate",
        )]))
        .await;
    let consent = b.login(&login, "bob", "bob-dev-password").await;
    assert!(consent.is_consent());
    assert!(consent.body.contains("customer:read"));
    assert!(!consent.body.contains("ticket:create"), "{}", consent.body);
    let code = assert_code_redirect(&app, &b.decide(&consent, "approve").await);
    let grant = redeem(&app, &code).await;
    assert_eq!(grant.sub, "bob");
    assert_eq!(grant.scope.to_string(), "customer:read");

    // Only scopes bob may not hold: access_denied, straight after sign-in.
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[("scope", "ticket:create")])).await;
    let denied = b.login(&login, "bob", "bob-dev-password").await;
    assert_error_redirect(&app, &denied, "access_denied");
    assert_eq!(
        denied.redirect_query()["error_description"],
        "this user may not use any of the requested scopes"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_read_the_same_and_cost_the_same() {
    let app = spawn().await;
    let passwords = &app.stack.oauth_state().unwrap().passwords;
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[])).await;
    let n0 = passwords.verifications();
    let wrong = b.login(&login, "alice", "not-her-password").await;
    let n1 = passwords.verifications();
    let unknown = b.login(&login, "mallory", "alice-dev-password").await;
    let n2 = passwords.verifications();
    assert_eq!((n1 - n0, n2 - n1), (1, 1), "one argon2id verification each");
    assert_eq!(wrong.status, 200);
    assert_eq!(unknown.status, 200);
    assert!(wrong.is_login());
    assert!(
        wrong
            .body
            .contains("The username or password is incorrect.")
    );
    assert_eq!(wrong.body, unknown.body, "same page, byte for byte");
    assert!(!wrong.body.contains("not-her-password") && !unknown.body.contains("mallory"));
    assert_page_headers(&unknown, Some("http://127.0.0.1:53123"));
    // The form still works after failures.
    let consent = b.login(&wrong, "alice", "alice-dev-password").await;
    assert!(consent.is_consent(), "{}", consent.body);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_limited() {
    let app = spawn_with(Opts {
        policy: Some((60, 20)),
        ..Opts::default()
    })
    .await;
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[])).await;
    let mut limited = None;
    for i in 0..10 {
        // A different username each time: the address pays.
        let page = b.login(&login, &format!("guess{i}"), "x").await;
        if page.status == 429 {
            limited = Some((i, page));
            break;
        }
        assert!(page.is_login());
    }
    let (i, page) = limited.expect("limited within 10 failures");
    assert!(i >= 2, "not limited before failures add up ({i})");
    let retry: u64 = page.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(page.body.contains("Too many sign-in attempts"));
    assert_page_headers(&page, None);
    // Even the right password is refused now, without hashing anything.
    let passwords = &app.stack.oauth_state().unwrap().passwords;
    let before = passwords.verifications();
    let page = b.login(&login, "alice", "alice-dev-password").await;
    assert_eq!(page.status, 429);
    assert_eq!(passwords.verifications(), before);
}

#[tokio::test]
async fn repeated_failures_for_one_username_are_limited_from_any_address() {
    let app = spawn_with(Opts {
        policy: Some((60, 20)),
        trusted_proxies: Some("127.0.0.1/32"),
        ..Opts::default()
    })
    .await;
    let passwords = &app.stack.oauth_state().unwrap().passwords;
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[])).await;
    let mut limited_at = None;
    for i in 0..10 {
        b.forwarded_for = Some(format!("203.0.113.{}", 10 + i));
        let page = b.login(&login, "alice", "wrong").await;
        if page.status == 429 {
            limited_at = Some(i);
            break;
        }
        assert!(page.is_login());
    }
    let i = limited_at.expect("the username is limited within 10 failures");
    assert!(i >= 2, "{i}");
    b.forwarded_for = Some("203.0.113.200".into());
    let before = passwords.verifications();
    let page = b.login(&login, "alice", "alice-dev-password").await;
    assert_eq!(page.status, 429, "a fresh address does not help");
    assert_eq!(
        passwords.verifications(),
        before,
        "no hash for a limited username"
    );
    // Another user from that address is unaffected.
    let page = b.login(&login, "bob", "bob-dev-password").await;
    assert!(page.is_consent(), "{}", page.body);
}

#[tokio::test]
async fn bad_pkce_and_bad_parameters_redirect_with_state_and_iss() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    for (set, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (
            vec![("code_challenge", &"a".repeat(44)[..])],
            "invalid_request",
        ),
        (
            vec![("code_challenge", &"a+".repeat(22)[..43])],
            "invalid_request",
        ),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("scope", "customer:read admin")], "invalid_scope"),
        (vec![("scope", "security:read")], "invalid_scope"),
        (
            vec![("resource", "https://elsewhere.example/mcp")],
            "invalid_target",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
    ] {
        let page = b.authorize(&request(&set)).await;
        assert_error_redirect(&app, &page, error);
    }
    // The resource, when named, is bound to the code.
    let page = b.authorize(&request(&[("resource", LOCAL_MCP)])).await;
    assert_eq!(page.status, 200, "{}", page.body);
}

#[tokio::test]
async fn untrusted_client_or_redirect_uri_is_an_error_page_never_a_redirect() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    for set in [
        vec![("client_id", "no-such-client")],
        vec![("client_id", "")],
        // A machine client registers no redirect URI.
        vec![("client_id", "fast-client")],
        vec![("redirect_uri", "http://127.0.0.1:53123/elsewhere")],
        vec![("redirect_uri", "https://attacker.example/callback")],
        vec![("redirect_uri", "http://127.0.0.1:53123/callback#f")],
        vec![("redirect_uri", "http://127.0.0.2:53123/callback")],
        // Several registered: redirect_uri is required.
        vec![("redirect_uri", "")],
    ] {
        let page = b.authorize(&request(&set)).await;
        assert_eq!(page.status, 400, "{set:?}: {}", page.body);
        assert!(page.location().is_none(), "{set:?}");
        assert!(page.body.contains("This request cannot be completed"));
        assert_page_headers(&page, None);
    }
    // Loopback redirects match on any port (RFC 8252 §7.3), each registered path.
    for uri in [
        "http://127.0.0.1:1/callback",
        "http://localhost:65000/oauth/callback",
        "http://[::1]:8765/callback",
    ] {
        let page = b.authorize(&request(&[("redirect_uri", uri)])).await;
        assert!(page.is_login(), "{uri}: {}", page.body);
    }
    // A repeated parameter is refused outright.
    let mut twice = request(&[]);
    twice.push(("state".into(), "again".into()));
    let page = b.authorize(&twice).await;
    assert_eq!(page.status, 400);
    assert!(page.location().is_none());
}

#[tokio::test]
async fn forged_forms_get_403_and_change_nothing() {
    let app = spawn().await;
    let passwords = &app.stack.oauth_state().unwrap().passwords;
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[])).await;
    let (txn, csrf) = (login.hidden("txn"), login.hidden("csrf_token"));
    let before = passwords.verifications();
    // Wrong CSRF token, right session.
    let page = b
        .post(&[
            ("txn", &txn),
            ("csrf_token", "forged"),
            ("username", "alice"),
            ("password", "alice-dev-password"),
        ])
        .await;
    assert_eq!(page.status, 403);
    assert!(page.location().is_none() && !page.headers.contains_key("set-cookie"));
    // Right CSRF token from another browser (no or another session).
    let mut attacker = Browser::new(&app);
    let page = attacker
        .post(&[
            ("txn", &txn),
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "alice-dev-password"),
        ])
        .await;
    assert_eq!(page.status, 403);
    attacker.authorize(&request(&[])).await;
    assert!(attacker.cookie.is_some());
    let page = attacker
        .post(&[
            ("txn", &txn),
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "alice-dev-password"),
        ])
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(
        passwords.verifications(),
        before,
        "no sign-in was attempted"
    );
    // Nobody is signed in: the next request shows the login page again.
    let page = b.authorize(&request(&[])).await;
    assert!(page.is_login());

    // A forged consent decision issues no code and leaves the real one working.
    let consent = b.login(&page, "alice", "alice-dev-password").await;
    let forged = b
        .post(&[
            ("txn", &consent.hidden("txn")),
            ("csrf_token", "forged"),
            ("decision", "approve"),
        ])
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.location().is_none());
    assert!(forged.body.contains("Request refused"));
    let real = b.decide(&consent, "approve").await;
    assert_code_redirect(&app, &real);
}

#[tokio::test]
async fn deny_redirects_access_denied_and_remembers_nothing() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let login = b.authorize(&request(&[])).await;
    let consent = b.login(&login, "alice", "alice-dev-password").await;
    let denied = b.decide(&consent, "deny").await;
    assert_error_redirect(&app, &denied, "access_denied");
    let again = b.authorize(&request(&[])).await;
    assert!(again.is_consent(), "a denial is not a consent");
}

#[tokio::test]
async fn prompt_none_and_prompt_login() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let page = b.authorize(&request(&[("prompt", "none")])).await;
    assert_error_redirect(&app, &page, "login_required");
    let login = b.authorize(&request(&[])).await;
    let consent = b.login(&login, "alice", "alice-dev-password").await;
    assert_code_redirect(&app, &b.decide(&consent, "approve").await);
    // Signed in, but prompt=login asks for the password again.
    let page = b.authorize(&request(&[("prompt", "login")])).await;
    assert!(page.is_login(), "{}", page.body);
    let done = b.login(&page, "alice", "alice-dev-password").await;
    assert_code_redirect(&app, &done);
}

#[tokio::test]
async fn the_default_users_file_may_be_missing_a_named_one_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let clients =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/clients.toml");
    let mut config =
        oauth_server::Config::with_paths("http://127.0.0.1:1", dir.path().join("keys"), clients)
            .unwrap();
    config.signing_alg = auth::keys::Algorithm::ES256;
    config.users_file = dir.path().join("missing.toml");
    let listener = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let app = oauth_server::App::build_with_listener(config.clone(), listener().await)
        .await
        .unwrap();
    assert!(app.state().users.is_empty());
    config.users_file_required = true;
    let err = oauth_server::App::build_with_listener(config, listener().await)
        .await
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").starts_with("OAUTH_USERS_FILE: cannot read"),
        "{err:#}"
    );
}

/// The audit trail of the real binary (JSON logs): sign-in failures with
/// their reason, success, consent and code issuance; never a password.
#[tokio::test]
async fn sign_in_consent_and_code_are_audited_without_secrets() {
    let stack = stack::Stack::builder()
        .mcp_replicas(0)
        .child_processes()
        .child_output(stack::ChildOutput::File)
        .oauth_env("LOG_FORMAT", "json")
        .start()
        .await
        .unwrap();
    let mut b = Browser::at(stack.issuer());
    let login = b.authorize(&request(&[("scope", "customer:read")])).await;
    b.login(&login, "alice", "wrong-password-123").await;
    b.login(&login, "nobody-here", "another-secret-456").await;
    let consent = b.login(&login, "alice", "alice-dev-password").await;
    let done = b.decide(&consent, "approve").await;
    let code = done.redirect_query()["code"].clone();

    // The last event expected below has been written (lines come from a writer thread).
    let log = stack
        .logs_until(&["oauth-server.log"], |l| l.contains("auth.code_issued"))
        .await;
    for secret in [
        "wrong-password-123",
        "another-secret-456",
        "alice-dev-password",
        &code,
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit" && v["endpoint"] == "authorize")
        .collect();
    let summary: Vec<(String, String, String, String)> = events
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("-").to_owned();
            (s("event"), s("outcome"), s("reason"), s("sub"))
        })
        .collect();
    let t = |e: &str, o: &str, r: &str, s: &str| {
        (e.to_owned(), o.to_owned(), r.to_owned(), s.to_owned())
    };
    assert_eq!(
        summary,
        vec![
            t("auth.login", "failure", "bad_password", "alice"),
            t("auth.login", "failure", "unknown_user", "-"),
            t("auth.login", "success", "-", "alice"),
            t("auth.consent", "approved", "-", "alice"),
            t("auth.code_issued", "success", "-", "alice"),
        ],
        "{log}"
    );
    for f in &events {
        assert_eq!(f["client_id"], CLIENT);
    }
    assert_eq!(events[3]["scope"], "customer:read");
    assert_eq!(events[4]["scope"], "customer:read");
}

/// With Redis, the pending request, the session and the consent live in the
/// shared store: a sign-in started on one replica finishes on another.
#[tokio::test]
async fn with_redis_a_sign_in_started_on_one_replica_finishes_on_another() {
    let Some(redis) = testkit::RedisServer::start() else {
        return;
    };
    let opts = Opts {
        redis_url: Some(redis.url()),
        ..Opts::default()
    };
    let first = spawn_with(opts.clone()).await;
    let second = spawn_with(opts).await;
    let mut b = Browser::new(&first);
    let login = b.authorize(&request(&[])).await;
    let consent = b.login(&login, "alice", "alice-dev-password").await;
    b.base = second.base.clone();
    let done = b.decide(&consent, "approve").await;
    let code = assert_code_redirect(&second, &done);
    // Codes are shared too: the first replica redeems it.
    assert_eq!(redeem(&first, &code).await.sub, "alice");
    // The consent is remembered for both.
    b.base = first.base.clone();
    assert_code_redirect(&first, &b.authorize(&request(&[])).await);
}
