//! Who may do what: the scope rules, derived from the tool and resource
//! definitions (the only place a scope is written down is next to each tool
//! or resource).

use std::sync::Arc;

use auth::AccessTokenClaims;

use crate::{resources, tools};

/// The authenticated caller, put in the request extensions by the bearer
/// middleware and read by the scope check, the rate limiter, the session
/// binding and the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    claims: Arc<AccessTokenClaims>,
}

impl Caller {
    pub fn new(claims: AccessTokenClaims) -> Self {
        Self {
            claims: Arc::new(claims),
        }
    }

    /// From claims the verifier already shares (its verified-token cache).
    pub fn from_shared(claims: Arc<AccessTokenClaims>) -> Self {
        Self { claims }
    }

    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }

    /// The user, for a user token (authorization code grant: `sub` ≠
    /// `client_id`); `None` for a machine token.
    pub fn user(&self) -> Option<&str> {
        (self.claims.sub != self.claims.client_id).then_some(self.claims.sub.as_str())
    }

    /// The `sub` claim (audit events record it only when it is a user).
    pub fn sub(&self) -> &str {
        &self.claims.sub
    }

    /// Who owns budgets and sessions: the client for a machine token, the
    /// (client, user) pair for a user token, so the users of one public host
    /// do not share a budget or see each other's sessions.
    ///
    /// Both parts are percent-encoded (unreserved characters stay, so today's
    /// client ids read as before): the one `:` separator can then never come
    /// from an id, and a client id or `sub` containing `:` (CIMD client ids
    /// are URLs) or `}` cannot produce another principal's key.
    pub fn principal(&self) -> String {
        principal_key(self.client_id(), self.user())
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.contains(scope)
    }

    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }
}

/// Characters kept as they are in [`principal_key`]: RFC 3986 unreserved.
const KEY_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `client` or `client:user`, each part percent-encoded (see [`Caller::principal`]).
pub fn principal_key(client_id: &str, user: Option<&str>) -> String {
    let client = percent_encoding::utf8_percent_encode(client_id, KEY_ESCAPE);
    match user {
        None => client.to_string(),
        Some(user) => format!(
            "{client}:{}",
            percent_encoding::utf8_percent_encode(user, KEY_ESCAPE)
        ),
    }
}

/// What a JSON-RPC request asks for, as far as authorization cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `tools/call` of `name`.
    ToolCall { name: String },
    /// `resources/read` of `uri`.
    ResourceRead { uri: String },
    /// Any other method (lists, ping, initialize, notifications, ...).
    Other { method: String },
    /// A message without a method (a JSON-RPC response from the client), or a
    /// GET/DELETE on the endpoint.
    NoMethod,
}

impl Operation {
    /// Classifies `method` with its `params.name` / `params.uri`.
    pub fn from_parts(method: Option<&str>, name: Option<&str>, uri: Option<&str>) -> Self {
        match (method, name, uri) {
            (Some("tools/call"), Some(name), _) => Operation::ToolCall {
                name: name.to_owned(),
            },
            (Some("resources/read"), _, Some(uri)) => Operation::ResourceRead {
                uri: uri.to_owned(),
            },
            (Some(m), _, _) => Operation::Other {
                method: m.to_owned(),
            },
            (None, _, _) => Operation::NoMethod,
        }
    }

    /// The scope this operation needs beyond a valid token, if any. Unknown
    /// tools and resources need none here: the handler answers them with a
    /// JSON-RPC error.
    pub fn required_scope(&self) -> Option<&'static str> {
        match self {
            Operation::ToolCall { name } => tools::find(name).map(|t| t.scope),
            Operation::ResourceRead { uri } => resources::find(uri).and_then(|r| r.scope),
            Operation::Other { .. } | Operation::NoMethod => None,
        }
    }

    /// `tools/call` weighs more for the rate limiter than list calls.
    pub fn is_tool_call(&self) -> bool {
        matches!(self, Operation::ToolCall { .. })
    }

    /// Tool name or resource URI, for audit events.
    pub fn target(&self) -> Option<&str> {
        match self {
            Operation::ToolCall { name } => Some(name),
            Operation::ResourceRead { uri } => Some(uri),
            _ => None,
        }
    }
}

/// Every scope this server understands, tools first, in definition order
/// (RFC 9728 `scopes_supported`, the 401 challenge's `scope`).
pub fn scopes_supported() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let all = tools::ALL
        .iter()
        .map(|t| t.scope)
        .chain(resources::ALL.iter().filter_map(|r| r.scope));
    for s in all {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_supported_is_derived_in_design_order() {
        assert_eq!(
            scopes_supported(),
            [
                "customer:read",
                "ticket:create",
                "account:calculate",
                "security:read"
            ]
        );
    }

    #[test]
    fn principal_keys_are_unambiguous() {
        assert_eq!(
            principal_key("mcp-secure-client", None),
            "mcp-secure-client"
        );
        assert_eq!(
            principal_key("claude-desktop-client", Some("alice")),
            "claude-desktop-client:alice"
        );
        // A `:` or `}` in either part is escaped, so the one separator splits uniquely.
        assert_eq!(principal_key("app", Some("a:b}")), "app:a%3Ab%7D");
        assert_eq!(
            principal_key("https://h/c.json", Some("bob")),
            "https%3A%2F%2Fh%2Fc.json:bob"
        );
        let pairs = [
            ("app", None),
            ("app:alice", None),
            ("app", Some("alice")),
            ("app:alice", Some("bob")),
            ("app", Some("alice:bob")),
            ("app%3Aalice", None),
            ("app}", Some("x")),
            ("app", Some("}x")),
        ];
        let keys: std::collections::HashSet<_> =
            pairs.iter().map(|(c, u)| principal_key(c, *u)).collect();
        assert_eq!(keys.len(), pairs.len(), "{keys:?}");
    }

    proptest::proptest! {
        /// The key decodes back to exactly its (client, user): no two
        /// principals share a key, whatever characters their ids hold.
        #[test]
        fn principal_key_round_trips(
            client in "[a-z:}{%/.~ -]{0,12}",
            user in proptest::option::of("[a-z:}{%/.~ -]{0,12}"),
        ) {
            let key = principal_key(&client, user.as_deref());
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned();
            let mut parts = key.split(':');
            let c = parts.next().map(decode);
            let u = parts.next().map(decode);
            proptest::prop_assert_eq!(parts.next(), None, "one separator at most: {}", key);
            proptest::prop_assert_eq!((c, u), (Some(client), user));
        }
    }

    #[test]
    fn required_scopes() {
        let tool = |n: &str| Operation::ToolCall { name: n.into() }.required_scope();
        assert_eq!(tool("get_customer_info"), Some("customer:read"));
        assert_eq!(tool("get_recent_customers"), Some("customer:read"));
        assert_eq!(tool("create_support_ticket"), Some("ticket:create"));
        assert_eq!(tool("calculate_account_value"), Some("account:calculate"));
        assert_eq!(tool("nope"), None);
        let res = |u: &str| Operation::ResourceRead { uri: u.into() }.required_scope();
        assert_eq!(res("security://events"), Some("security:read"));
        assert_eq!(res("health://status"), None);
        assert_eq!(res("test://nope"), None);
        assert_eq!(
            Operation::from_parts(Some("tools/list"), None, None).required_scope(),
            None
        );
        assert_eq!(
            Operation::from_parts(Some("tools/call"), None, None),
            Operation::Other {
                method: "tools/call".into()
            }
        );
    }
}
