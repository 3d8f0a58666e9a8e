//! A verified access token (RFC 9068) as the gateway caches it. Verifying one and mapping
//! its failures to refusals is the edges' (`oauth/tokens.rs`).

use std::sync::{Arc, OnceLock};

use gatehouse_model::scope::{Scope, ServerScope};

/// A verified access token, as the gateway caches it.
#[derive(Debug)]
pub struct TokenIdentity {
    pub client: Arc<str>,
    /// The signed-in user, for tokens issued on a user's behalf.
    pub subject: Arc<str>,
    pub jti: Arc<str>,
    /// The signing key: a token stops working when its key is withdrawn.
    pub kid: String,
    /// The grant (refresh-token family) it comes from, if any.
    pub grant: Option<String>,
    pub scope: Scope,
    pub audiences: Vec<String>,
    /// Unix seconds.
    pub exp: i64,
    /// `cnf.jkt` (RFC 9449 §6): the thumbprint of the key whose DPoP proof must come with
    /// every use; `None` for a bearer token.
    pub jkt: Option<Arc<str>>,
    /// `scope` for the first server the token was used on, derived once rather than per
    /// request: a token names one resource (RFC 8707) in practice, so one slot is enough.
    pub(crate) first_server_scope: OnceLock<(Box<str>, Arc<ServerScope>)>,
}

impl TokenIdentity {
    /// What the token's scope allows on `server` (by name); the same `Arc` on every
    /// request to the first server it is used on, computed afresh for any other.
    pub fn scope_for(&self, server: &str) -> Arc<ServerScope> {
        let (name, scope) = self
            .first_server_scope
            .get_or_init(|| (Box::from(server), Arc::new(self.scope.for_server(server))));
        if **name == *server {
            Arc::clone(scope)
        } else {
            Arc::new(self.scope.for_server(server))
        }
    }

    /// Whether the token was issued to act as a user rather than as the client itself.
    pub fn user(&self) -> Option<&str> {
        (*self.subject != *self.client).then_some(&*self.subject)
    }
}

impl super::token_cache::Expiring for TokenIdentity {
    fn exp(&self) -> i64 {
        self.exp
    }
}
