//! Who is calling: credentials are read from the request and checked against the snapshot.

pub mod admin_tokens;
pub mod api_keys;
pub mod login_guard;
pub mod oauth_clients;
pub mod passwords;
pub mod principal;

pub use principal::{Credential, Principal};
