//! The authenticated caller, as the rest of the request path sees it.

use std::sync::Arc;

pub use crate::state::{Owner, OwnerId};
use gatehouse_model::{scope::ServerScope, tool_pattern::ToolPattern};

#[derive(Debug, Clone)]
pub enum Credential {
    ApiKey {
        key_id: Arc<str>,
    },
    /// An access token issued by Gatehouse's authorization server.
    AccessToken {
        jti: Arc<str>,
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
    /// An access token's scope on the server it is presented to.
    pub scope: Option<Arc<ServerScope>>,
    /// The user a token acts for (its `sub`, when that is not the client itself).
    pub user: Option<Arc<str>>,
    /// The grant, when the credential decided it already (tokens of external issuers, whose
    /// users and groups are not in the store).
    pub grant: Option<Arc<crate::grants::Grant>>,
    /// The person a token was issued to, when it names one: the user for Gatehouse's tokens,
    /// `{issuer}:{sub}` for an external issuer's (whose users may share one client and carry no
    /// groups). What sessions and tasks are bound to, besides the client.
    pub subject: Option<Arc<str>>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self {
            client: None,
            credential: Credential::Anonymous,
            narrowing: None,
            scope: None,
            user: None,
            grant: None,
            subject: None,
        }
    }

    /// What MCP sessions and tasks are bound to.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            client: self.client.as_deref(),
            subject: self.subject.as_deref(),
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::ApiKey { key_id } => Some(key_id),
            Credential::AccessToken { .. } | Credential::Anonymous => None,
        }
    }
}
