//! Token formats and their cryptography, below every endpoint that issues or checks tokens:
//! the API-key format (`api_key.rs`), compact JWS and JWK/JWKS on `ring` (`jwt.rs`, `keys.rs`; the `rsa` crate only generates RSA
//! keys, which ring cannot), the signing keys and their rotation (`signing.rs`), and the cache
//! of tokens whose signature was verified (`token_cache.rs`). Errors here are format-level
//! ([`jwt::JwtError`], [`signing::SigningError`]); each edge maps them to its own refusal.

pub mod access;
pub mod api_key;
pub mod dpop;
pub mod jwt;
pub mod keys;
pub mod signing;
pub mod token_cache;

/// How a revoked grant is listed among revoked token ids.
pub const GRANT_REVOCATION_PREFIX: &str = "grant:";
