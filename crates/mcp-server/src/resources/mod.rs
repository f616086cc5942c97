//! Resources. Like tools, each declares its scope next to its definition;
//! `None` means any valid token may read it.

use futures::future::BoxFuture;
use rmcp::model::{JsonObject, MetaObject, Resource};

use crate::state::AppState;
use crate::tools::SCOPES_META_KEY;

pub mod health_status;
pub mod security_events;

/// Every resource, in the order `resources/list` shows them.
pub const ALL: &[ResourceDef] = &[health_status::DEF, security_events::DEF];

/// Static description of one resource.
#[derive(Clone, Copy)]
pub struct ResourceDef {
    pub uri: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub mime_type: &'static str,
    /// Scope required to read it; `None`: any valid token.
    pub scope: Option<&'static str>,
    /// Produces the resource text.
    pub read: for<'a> fn(&'a AppState) -> BoxFuture<'a, String>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDef")
            .field("uri", &self.uri)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ResourceDef {
    /// The MCP resource definition, with `_meta["securemcp/scopes"]`.
    pub fn to_resource(&self) -> Resource {
        let mut meta = JsonObject::new();
        meta.insert(
            SCOPES_META_KEY.to_owned(),
            serde_json::json!(self.scope.into_iter().collect::<Vec<_>>()),
        );
        Resource::new(self.uri, self.name)
            .with_title(self.title)
            .with_description(self.description)
            .with_mime_type(self.mime_type)
            .with_meta(MetaObject(meta))
    }
}

/// The resource at `uri`.
pub fn find(uri: &str) -> Option<&'static ResourceDef> {
    ALL.iter().find(|r| r.uri == uri)
}
