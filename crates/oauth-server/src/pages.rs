//! The HTML pages of `/authorize` (login, consent, errors), rendered with
//! `maud`: compile-time templates that escape every interpolated value.
//!
//! No JavaScript at all, one inline `<style>` allowed by its hash, and the
//! same security headers on every page ([`respond`]): a Content-Security-
//! Policy without any script source, `X-Frame-Options: DENY` (clickjacking
//! on the consent button), `Referrer-Policy: no-referrer` (the redirect
//! carries the code), `Cache-Control: no-store` and `nosniff`.

use std::sync::OnceLock;

use auth::scope::{ScopeSet, describe};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

/// The one stylesheet, inline so a page is one request; allowed by its hash.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}\
.error{color:#a40000;font-weight:600}.muted{color:#555;font-size:.9rem}\
li{margin:.4rem 0}code{background:#f2f2f2;padding:0 .2rem}";

/// `sha256-…` of [`STYLE`], for the CSP's `style-src`.
fn style_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(STYLE))))
}

/// The Content-Security-Policy of a page. `form_target` is the origin the
/// page's form may end up at: Chrome applies `form-action` to the redirect
/// that follows a form POST, so the client's redirect origin must be listed
/// or the consent → client redirect is blocked. Pages without a form allow
/// no form target at all.
pub fn csp(form_target: Option<&FormTarget>) -> String {
    let form_action = match form_target {
        None => " form-action 'none';".to_owned(),
        Some(FormTarget(Some(origin))) => format!(" form-action 'self' {origin};"),
        // An origin we cannot express safely: leave form-action out rather
        // than break the redirect (it is defence in depth here).
        Some(FormTarget(None)) => String::new(),
    };
    format!(
        "default-src 'none'; style-src {}; img-src 'self'; frame-ancestors 'none'; base-uri 'none';{form_action}",
        style_hash()
    )
    .trim_end_matches(';')
    .to_owned()
}

/// Where a page's form submission may finally land: the client's redirect
/// origin as a CSP source expression (`None` when it cannot be written safely).
#[derive(Debug, Clone)]
pub struct FormTarget(Option<String>);

impl FormTarget {
    /// The CSP source for `redirect_uri`: `scheme://host[:port]` for http(s),
    /// `scheme:` for a private-use scheme (RFC 8252 §7.1).
    pub fn for_redirect(redirect_uri: &str) -> Self {
        let source = url::Url::parse(redirect_uri).ok().map(|u| {
            let origin = u.origin();
            if origin.is_tuple() {
                origin.ascii_serialization()
            } else {
                format!("{}:", u.scheme())
            }
        });
        // Only characters that cannot end a CSP directive or start another.
        Self(source.filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:/[]+".contains(c))
        }))
    }
}

/// A page answer with every security header.
pub fn respond(status: StatusCode, body: Markup, form_target: Option<&FormTarget>) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp(form_target)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    security_headers(h);
    resp
}

/// The headers every `/authorize` answer carries, pages and redirects alike.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn layout(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · secure-mcp" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// An error shown instead of redirecting (the redirect URI is not trusted),
/// or a refusal (forged form, expired request, rate limit).
pub fn error(title: &str, message: &str) -> Markup {
    layout(
        title,
        html! {
            p.error { (message) }
            p.muted { "Return to the application and start signing in again." }
        },
    )
}

/// The hidden fields every form carries.
pub struct FormIds<'a> {
    /// `{issuer}/authorize`.
    pub action: &'a str,
    pub txn: &'a str,
    pub csrf_token: &'a str,
}

fn hidden(ids: &FormIds<'_>) -> Markup {
    html! {
        input type="hidden" name="txn" value=(ids.txn);
        input type="hidden" name="csrf_token" value=(ids.csrf_token);
    }
}

/// The login form: `username`, `password`; `failed` shows the one generic
/// message (unknown user and wrong password read the same).
pub fn login(ids: &FormIds<'_>, client_name: &str, failed: bool) -> Markup {
    layout(
        "Sign in",
        html! {
            p { "Sign in to let " strong { (client_name) } " access your account." }
            @if failed {
                p.error role="alert" { (LOGIN_FAILED) }
            }
            form method="post" action=(ids.action) {
                (hidden(ids))
                label for="username" { "Username" }
                input #username type="text" name="username" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The one message for a failed sign-in, whatever the reason.
pub const LOGIN_FAILED: &str = "The username or password is incorrect.";

/// What the consent page shows about the request.
pub struct Consent<'a> {
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// The client's document URL, or its redirect host.
    pub origin: &'a str,
    pub user_name: &'a str,
    pub scope: &'a ScopeSet,
}

/// The consent form: the client, its origin, each scope with its
/// description, and `decision=approve|deny` buttons.
pub fn consent(ids: &FormIds<'_>, c: &Consent<'_>) -> Markup {
    layout(
        "Allow access?",
        html! {
            p { strong { (c.client_name) } " (" code { (c.origin) } ") wants to act on your behalf, " (c.user_name) ":" }
            ul {
                @for s in c.scope.iter() {
                    li { code { (s) } " — " (describe(s)) }
                }
            }
            p.muted { "Client id: " code { (c.client_id) } ". Only allow applications you trust." }
            form method="post" action=(ids.action) {
                (hidden(ids))
                button type="submit" name="decision" value="approve" { "Allow" }
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        let ids = FormIds {
            action: "http://localhost:8080/authorize",
            txn: "t\"><script>",
            csrf_token: "c",
        };
        let page = login(&ids, "<script>alert(1)</script>", true).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains(LOGIN_FAILED));
    }

    #[test]
    fn csp_allows_the_style_and_the_redirect_origin_only() {
        let page = error("t", "m").into_string();
        let style = page
            .split("<style>")
            .nth(1)
            .and_then(|s| s.split("</style>").next())
            .unwrap();
        let hash = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(style)));
        assert_eq!(
            csp(Some(&FormTarget::for_redirect(
                "http://127.0.0.1:5000/cb?x=1"
            ))),
            format!(
                "default-src 'none'; style-src {hash}; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' http://127.0.0.1:5000"
            )
        );
        assert!(csp(None).ends_with("form-action 'none'"));
        assert!(
            csp(Some(&FormTarget::for_redirect("com.example.app:/cb")))
                .ends_with("form-action 'self' com.example.app:")
        );
        assert!(!csp(None).contains("script"));
    }
}
