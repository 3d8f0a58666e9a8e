//! What Gatehouse keeps of trusted external authorization servers: their keys, and the
//! tokens of theirs already verified and mapped. Fetching keys and verifying tokens are in
//! `oauth/external.rs`.

use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc, time::Instant};

use crate::tokens::{
    keys::VerifierSet,
    token_cache::{Expiring, TokenCache},
};
use gatehouse_model::scope::Scope;

/// A verified external token, mapped.
#[derive(Debug)]
pub struct ExternalIdentity {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) exp: i64,
    /// The calling application, as a Gatehouse client name when mapped.
    pub(crate) client: Option<String>,
    /// `{issuer name}:{sub}` when the token names groups.
    pub(crate) user: Option<String>,
    /// `{issuer name}:{sub}`: the person sessions and tasks are bound to.
    pub(crate) subject: Option<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) jti: String,
    pub(crate) scope: Scope,
    /// `cnf.jkt` (RFC 9449 §6): an issuer that binds its tokens to a DPoP key (Okta,
    /// Keycloak, Auth0 can) makes them usable only with a proof by that key, here as at
    /// Gatehouse's own tokens.
    pub(crate) jkt: Option<Arc<str>>,
}

impl Expiring for ExternalIdentity {
    fn exp(&self) -> i64 {
        self.exp
    }
}

pub(crate) struct IssuerKeys {
    pub(crate) keys: VerifierSet,
    pub(crate) fetched: Instant,
}

#[derive(Default)]
pub struct ExternalIssuers {
    pub(crate) keys: Mutex<HashMap<String, Arc<IssuerKeys>>>,
    pub(crate) cache: TokenCache<ExternalIdentity>,
}
