//! What Gatehouse keeps of upstream OpenID Connect providers: each one's discovery document
//! and keys. Signing in through them is in `oauth/upstream.rs`.

use parking_lot::Mutex;
use serde::Deserialize;
use std::{collections::HashMap, time::Instant};

use crate::tokens::keys::VerifierSet;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
}

pub(crate) struct Cached {
    pub(crate) discovery: Discovery,
    pub(crate) keys: VerifierSet,
    pub(crate) fetched: Instant,
}

/// Per-provider discovery and keys, shared by all requests.
#[derive(Default)]
pub struct Providers {
    pub(crate) cache: Mutex<HashMap<String, std::sync::Arc<Cached>>>,
}
