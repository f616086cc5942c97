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

    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.contains(scope)
    }

    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
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
