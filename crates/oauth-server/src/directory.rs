//! Finding a client by `client_id`, wherever it was registered: the file
//! registry (`OAUTH_CLIENTS_FILE`), dynamic registration (RFC 7591) or a
//! client ID metadata document (an https `client_id` URL).
//!
//! Every endpoint that takes a `client_id` (/authorize, /token, /revoke,
//! /introspect) resolves it here, so the three sources behave alike.
//! Order: the file registry, then `oauth:client:<id>` in the key/value store
//! (ids starting with `dyn-`), then the metadata document when the id is a
//! URL. A registry id can therefore never be shadowed by a registration.

use std::sync::Arc;

use crate::argon::ClientSecrets;
use crate::cimd::{self, MetadataDocuments};
use crate::clients::{Client, Registry};
use crate::registration::Registrations;

/// Why a client could not be resolved (besides "unknown").
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The backing store failed (Redis down): answer 503-ish, not "unknown".
    #[error("client store unavailable: {0}")]
    Unavailable(String),
    /// A client ID metadata document was refused (fetch failed, invalid,
    /// blocked). Callers treat it as an unknown client; the message is a
    /// sentence fit for the /authorize error page (no secrets in it).
    #[error("client metadata document refused: {0}")]
    Refused(String),
}

/// Every source of clients.
pub struct ClientDirectory {
    registry: Registry,
    /// Secret checks for `registry` (its dummy hash and its memo): made with
    /// the registry, so a registry loaded anew starts with nothing remembered.
    secrets: ClientSecrets,
    registered: Option<Registrations>,
    documents: Option<MetadataDocuments>,
}

impl ClientDirectory {
    /// The file registry only.
    pub fn new(registry: Registry, secrets: ClientSecrets) -> Self {
        Self {
            registry,
            secrets,
            registered: None,
            documents: None,
        }
    }

    /// Every source: the registry, stored registrations and metadata documents.
    pub fn with_sources(
        registry: Registry,
        secrets: ClientSecrets,
        registered: Registrations,
        documents: MetadataDocuments,
    ) -> Self {
        Self {
            registry,
            secrets,
            registered: Some(registered),
            documents: Some(documents),
        }
    }

    /// The file registry (static clients).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Client-secret checks for the registry (only registry clients have secrets).
    pub fn secrets(&self) -> &ClientSecrets {
        &self.secrets
    }

    /// Dynamic registrations (`POST /register` stores through this).
    pub fn registrations(&self) -> Option<&Registrations> {
        self.registered.as_ref()
    }

    /// Resolves `client_id`; `Ok(None)` when no source knows it.
    pub async fn find(&self, client_id: &str) -> Result<Option<Arc<Client>>, LookupError> {
        if let Some(c) = self.registry.get(client_id) {
            return Ok(Some(c.clone()));
        }
        if cimd::is_document_id(client_id) {
            return match &self.documents {
                Some(docs) => docs
                    .resolve(client_id)
                    .await
                    .map(Some)
                    .map_err(|r| LookupError::Refused(r.message)),
                None => Ok(None),
            };
        }
        match &self.registered {
            Some(regs) => regs
                .find(client_id)
                .await
                .map(|c| c.map(Arc::new))
                .map_err(|e| LookupError::Unavailable(e.to_string())),
            None => Ok(None),
        }
    }
}
