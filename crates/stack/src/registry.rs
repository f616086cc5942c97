//! The client registry a stack's oauth-server loads: a copy of
//! `config/clients.toml` (the dev clients, whose `allowed_resources` gain the
//! stack's own resource URIs) followed by the caller's extra [`Client`]s.

use std::fmt::Write as _;

/// The dev registry, compiled in so a stack starts from any directory.
pub const DEV_CLIENTS: &str = include_str!("../../../config/clients.toml");

/// The dev users (alice, bob), compiled in like [`DEV_CLIENTS`]; every
/// stack's oauth-server loads a copy.
pub const DEV_USERS: &str = include_str!("../../../config/users.toml");

/// The dev users' public passwords (DESIGN.md §2; local use only).
pub const ALICE: (&str, &str) = ("alice", "alice-dev-password");
/// See [`ALICE`].
pub const BOB: (&str, &str) = ("bob", "bob-dev-password");

/// The dev clients' public secrets (DESIGN.md §2; local use only).
pub const OPENAI_CLIENT: (&str, &str) = ("openai-mcp-client", "openai-client-secret");
/// See [`OPENAI_CLIENT`].
pub const ANTHROPIC_CLIENT: (&str, &str) = ("anthropic-mcp-client", "anthropic-client-secret");
/// The all-scopes dev client. See [`OPENAI_CLIENT`].
pub const SECURE_CLIENT: (&str, &str) = (
    "mcp-secure-client",
    "secure-client-secret-change-in-production",
);

/// One extra `[[client]]` entry.
///
/// Secrets are stored as fast `sha256:` hashes (what `oauth-server
/// generate-secret` produces). Without [`resources`](Self::resources) the
/// client may get tokens for the stack's resource URIs.
#[derive(Debug, Clone)]
pub struct Client {
    id: String,
    credential: Option<String>,
    allowed_scopes: Vec<String>,
    default_scopes: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    lines: Vec<String>,
}

impl Client {
    /// A client with no credential line (a public client, or one that gets
    /// its key through [`line`](Self::line)).
    pub fn new(id: &str) -> Client {
        Client {
            id: id.to_owned(),
            credential: None,
            allowed_scopes: Vec::new(),
            default_scopes: None,
            resources: None,
            lines: Vec::new(),
        }
    }

    /// A confidential client with `secret` (stored as its sha256 hash).
    pub fn with_secret(id: &str, secret: &str) -> Client {
        let hash = oauth_server::clients::hash_sha256(secret.as_bytes());
        Client {
            credential: Some(format!("secret_hash = \"{hash}\"")),
            ..Client::new(id)
        }
    }

    /// A private_key_jwt client with a PEM public key.
    pub fn with_public_key_pem(id: &str, pem: &str) -> Client {
        Client {
            credential: Some(format!("public_key_pem = \"\"\"{pem}\"\"\"")),
            ..Client::new(id)
        }
    }

    /// `allowed_scopes`.
    pub fn allowed_scopes(mut self, scopes: &[&str]) -> Client {
        self.allowed_scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// `default_scopes` (omitted unless set).
    pub fn default_scopes(mut self, scopes: &[&str]) -> Client {
        self.default_scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// `allowed_resources` (default: the stack's resource URIs).
    pub fn resources(mut self, resources: &[&str]) -> Client {
        self.resources = Some(resources.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Any other TOML line of the entry, e.g. `can_introspect = true`.
    pub fn line(mut self, toml: &str) -> Client {
        self.lines.push(toml.to_owned());
        self
    }

    fn render(&self, stack_resources: &[String], out: &mut String) {
        let _ = writeln!(out, "[[client]]\nclient_id = {:?}", self.id);
        if let Some(c) = &self.credential {
            let _ = writeln!(out, "{c}");
        }
        let _ = writeln!(out, "allowed_scopes = {}", list(&self.allowed_scopes));
        if let Some(d) = &self.default_scopes {
            let _ = writeln!(out, "default_scopes = {}", list(d));
        }
        let resources = self.resources.as_deref().unwrap_or(stack_resources);
        let _ = writeln!(out, "allowed_resources = {}", list(resources));
        for l in &self.lines {
            let _ = writeln!(out, "{l}");
        }
        out.push('\n');
    }
}

/// A TOML array of (ASCII) strings.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The registry text: the dev clients (when `dev`) with `resources` added to
/// each `allowed_resources`, then `extra`.
pub fn render(dev: bool, resources: &[String], extra: &[Client]) -> String {
    let mut out = String::new();
    if dev {
        for line in DEV_CLIENTS.lines() {
            match line
                .strip_prefix("allowed_resources = [")
                .and_then(|l| l.strip_suffix(']'))
            {
                Some(items) => {
                    let mut all: Vec<String> = items
                        .split(',')
                        .map(|i| i.trim().trim_matches('"').to_owned())
                        .filter(|i| !i.is_empty())
                        .collect();
                    for r in resources {
                        if !all.contains(r) {
                            all.push(r.clone());
                        }
                    }
                    let _ = writeln!(out, "allowed_resources = {}", list(&all));
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        out.push('\n');
    }
    for client in extra {
        client.render(resources, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_clients_gain_the_stack_resources_once() {
        let text = render(
            true,
            &[
                "http://127.0.0.1:1/mcp".to_owned(),
                "http://localhost:8000/mcp".to_owned(),
            ],
            &[],
        );
        assert!(text.contains(
            r#"allowed_resources = ["http://localhost:8000/mcp", "https://localhost:8001/mcp", "http://127.0.0.1:1/mcp"]"#
        ));
        assert!(text.contains("client_id = \"openai-mcp-client\""));
    }

    #[test]
    fn extra_clients_render_as_registry_entries() {
        let text = render(
            false,
            &["https://localhost:9/mcp".to_owned()],
            &[Client::with_secret("c", "s")
                .allowed_scopes(&["customer:read"])
                .line("can_introspect = true")],
        );
        assert_eq!(
            text,
            format!(
                "[[client]]\nclient_id = \"c\"\nsecret_hash = \"{}\"\nallowed_scopes = [\"customer:read\"]\n\
                 allowed_resources = [\"https://localhost:9/mcp\"]\ncan_introspect = true\n\n",
                oauth_server::clients::hash_sha256(b"s")
            )
        );
    }
}
