//! The authenticated caller, as the rest of the request path sees it.

use std::sync::Arc;

use crate::grants::ToolPattern;

#[derive(Debug, Clone)]
pub enum Credential {
    ApiKey {
        key_id: Arc<str>,
    },
    /// A server that allows anonymous callers was reached without a credential.
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Principal {
    /// The client name; `None` for anonymous callers.
    pub client: Option<Arc<str>>,
    pub credential: Credential,
    /// Tools the credential is narrowed to, within the connection's grant.
    pub narrowing: Option<Arc<[ToolPattern]>>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self {
            client: None,
            credential: Credential::Anonymous,
            narrowing: None,
        }
    }

    /// What MCP sessions are bound to. A client keeps its sessions across key rotation.
    pub fn session_owner(&self) -> &str {
        self.client.as_deref().unwrap_or("anonymous")
    }

    pub fn key_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { key_id } => Some(key_id),
            Credential::Anonymous => None,
        }
    }
}
