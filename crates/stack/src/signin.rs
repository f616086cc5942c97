//! A person at the oauth-server's `/authorize` pages, without a browser:
//! PKCE, the login form, the consent form, and the redirect that carries the
//! authorization code. Quickstart shows the interactive flow with it, and
//! tests use it wherever a real browser adds nothing (the browser test
//! in `tests/e2e/browser_login.rs` covers what only a browser can).
//!
//! It reads the pages the way a browser would — hidden inputs, the form's
//! `action`, the session cookie — and has no other knowledge of the server:
//! no shortcut, no test switch.

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use sha2::{Digest, Sha256};
use url::Url;

/// A PKCE pair (RFC 7636, S256).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// A fresh 256-bit verifier and its S256 challenge.
    pub fn new() -> anyhow::Result<Self> {
        let verifier = random_b64(32)?;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Ok(Self {
            verifier,
            challenge,
        })
    }
}

/// `n` random bytes, base64url (state values, verifiers).
pub fn random_b64(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow!("the system RNG failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// An authorization request (RFC 6749 §4.1.1 + PKCE + RFC 8707 `resource`).
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub state: String,
    pub pkce: Pkce,
}

impl AuthorizeRequest {
    /// A request with a fresh state and PKCE pair.
    pub fn new(client_id: &str, redirect_uri: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope: None,
            resource: None,
            state: random_b64(16)?,
            pkce: Pkce::new()?,
        })
    }

    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// `{issuer}/authorize?...`, the URL a person opens.
    pub fn url(&self, issuer: &str) -> anyhow::Result<Url> {
        let mut url = Url::parse(&format!("{}/authorize", issuer.trim_end_matches('/')))
            .context("issuer URL")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", &self.state)
                .append_pair("code_challenge", &self.pkce.challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(s) = &self.scope {
                q.append_pair("scope", s);
            }
            if let Some(r) = &self.resource {
                q.append_pair("resource", r);
            }
        }
        Ok(url)
    }
}

/// What the person does on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// The authorization response, parsed from the final redirect.
#[derive(Debug, Clone)]
pub struct Redirected {
    /// The whole `Location` the server redirected to.
    pub location: Url,
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

impl Redirected {
    fn parse(location: Url) -> Self {
        let get = |k: &str| {
            location
                .query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        Self {
            code: get("code"),
            state: get("state"),
            iss: get("iss"),
            error: get("error"),
            location,
        }
    }
}

/// A person with a login, driving `/authorize` with a cookie of their own.
#[derive(Debug)]
pub struct Person {
    http: reqwest::Client,
    username: String,
    password: String,
    cookie: Option<String>,
}

impl Person {
    /// `http` must not follow redirects (the last one leaves the server).
    pub fn new(username: &str, password: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("HTTP client")?;
        Ok(Self::with_client(http, username, password))
    }

    /// With a caller-built client (extra CA for TLS); it must not follow redirects.
    pub fn with_client(http: reqwest::Client, username: &str, password: &str) -> Self {
        Self {
            http,
            username: username.to_owned(),
            password: password.to_owned(),
            cookie: None,
        }
    }

    /// Opens `url`, logs in if asked, answers the consent page with
    /// `decision` if shown, and returns the redirect back to the client.
    /// The session cookie is kept, so a second authorization reuses the login.
    pub async fn authorize(&mut self, url: &Url, decision: Decision) -> anyhow::Result<Redirected> {
        let mut resp = self.send(self.http.get(url.clone())).await?;
        // login page → consent page → redirect, at most; a loop means a bug.
        for _ in 0..4 {
            if let Some(location) = resp.redirect.take() {
                let location = url.join(&location).context("redirect Location")?;
                return Ok(Redirected::parse(location));
            }
            let page = &resp.body;
            let form = Form::find(page).ok_or_else(|| {
                anyhow!(
                    "HTTP {}: the page has no form ({})",
                    resp.status,
                    first_text(page)
                )
            })?;
            let action = url.join(&form.action).context("form action")?;
            let mut fields = form.hidden.clone();
            if form.has("password") {
                if resp.status == 429 {
                    bail!("login limited: HTTP 429");
                }
                if resp.tried_login {
                    bail!("login refused ({})", first_text(page));
                }
                fields.push(("username".into(), self.username.clone()));
                fields.push(("password".into(), self.password.clone()));
                resp = self
                    .send(
                        self.http
                            .post(action)
                            .header(CONTENT_TYPE, FORM)
                            .body(encode(&fields)),
                    )
                    .await?;
                resp.tried_login = true;
            } else if form.has_decision {
                fields.push(("decision".into(), decision.as_str().into()));
                resp = self
                    .send(
                        self.http
                            .post(action)
                            .header(CONTENT_TYPE, FORM)
                            .body(encode(&fields)),
                    )
                    .await?;
            } else {
                bail!(
                    "HTTP {}: unexpected form ({})",
                    resp.status,
                    first_text(page)
                );
            }
        }
        bail!("no redirect after the login and consent pages")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> anyhow::Result<Page> {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let resp = req.send().await.context("authorization endpoint")?;
        for v in resp.headers().get_all(SET_COOKIE) {
            if let Some(pair) = v.to_str().ok().and_then(|s| s.split(';').next()) {
                self.cookie = Some(pair.trim().to_owned());
            }
        }
        let status = resp.status().as_u16();
        let redirect = if resp.status().is_redirection() {
            resp.headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        } else {
            None
        };
        let body = resp.text().await.unwrap_or_default();
        Ok(Page {
            status,
            redirect,
            body,
            tried_login: false,
        })
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

fn encode(fields: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

struct Page {
    status: u16,
    redirect: Option<String>,
    body: String,
    tried_login: bool,
}

/// The first form of a page: its action, hidden inputs and field names.
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    names: Vec<String>,
    has_decision: bool,
}

impl Form {
    fn find(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let end = html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        let body = &html[start..end];
        let tag_end = body.find('>')?;
        let action = attr(&body[..tag_end], "action").unwrap_or_default();
        let mut hidden = Vec::new();
        let mut names = Vec::new();
        let mut has_decision = false;
        for tag in body.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or("");
            let Some(name) = attr(tag, "name") else {
                continue;
            };
            if tag.starts_with("input") && attr(tag, "type").as_deref() == Some("hidden") {
                hidden.push((name.clone(), attr(tag, "value").unwrap_or_default()));
            }
            if tag.starts_with("button") && name == "decision" {
                has_decision = true;
            }
            names.push(name);
        }
        Some(Self {
            action,
            hidden,
            names,
            has_decision,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// The value of `name="..."` in a tag (double-quoted, HTML entities decoded).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let v = &tag[i..i + tag[i..].find('"')?];
    Some(
        v.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// A short, tag-free excerpt of a page for error messages.
fn first_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_like_a_browser() {
        let html = r#"<html><body><h1>Sign in</h1>
            <form method="post" action="/authorize">
              <input type="hidden" name="txn" value="t1">
              <input type="hidden" name="csrf_token" value="a&amp;b">
              <input name="username" type="text"><input name="password" type="password">
              <button type="submit">Sign in</button></form></body></html>"#;
        let f = Form::find(html).unwrap();
        assert_eq!(f.action, "/authorize");
        assert_eq!(
            f.hidden,
            vec![
                ("txn".to_owned(), "t1".to_owned()),
                ("csrf_token".to_owned(), "a&b".to_owned())
            ]
        );
        assert!(f.has("password") && !f.has_decision);
        let consent = r#"<form method="post" action="/authorize"><input type="hidden" name="txn" value="t">
            <button name="decision" value="approve">Allow</button><button name="decision" value="deny">Deny</button></form>"#;
        assert!(Form::find(consent).unwrap().has_decision);
        assert_eq!(
            first_text("<p>Wrong <b>username</b> or password</p>"),
            "Wrong username or password"
        );
    }

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        let p = Pkce::new().unwrap();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(
            p.challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier.as_bytes()))
        );
        assert_ne!(Pkce::new().unwrap().verifier, p.verifier);
    }
}
