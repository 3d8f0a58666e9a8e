//! API keys: `gth_<id>_<secret><checksum>`.
//!
//! - `id`: 12 lower-case base32 characters, public, the lookup key.
//! - `secret`: 43 base62 characters (≈ 256 bits), never stored: the store keeps
//!   HMAC-SHA-256(pepper, id ":" secret).
//! - `checksum`: 6 base62 characters of the first 32 bits of SHA-256 over everything before
//!   it, so scanners and guardrails can recognise a Gatehouse key (and typos fail fast)
//!   without any lookup.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets;

pub const PREFIX: &str = "gth_";
pub const ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

pub fn checksum(body: &str) -> String {
    secrets::base62_u32(checksum_value(body))
}

/// [`checksum`] without building a string: every request with a key checks one.
fn checksum_bytes(body: &str) -> [u8; 6] {
    secrets::base62_u32_bytes(checksum_value(body))
}

fn checksum_value(body: &str) -> u32 {
    let digest = Sha256::digest(body.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Splits a well-formed key into `(id, secret)`; `None` if the shape or checksum is wrong.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    if token.len() != TOKEN_LEN || !token.is_ascii() {
        return None;
    }
    let rest = token.strip_prefix(PREFIX)?;
    let (id, rest) = rest.split_at(ID_LEN);
    let rest = rest.strip_prefix('_')?;
    let (secret, sum) = rest.split_at(SECRET_LEN);
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    if !id_ok || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let body = &token[..token.len() - CHECKSUM_LEN];
    let valid: bool = checksum_bytes(body).ct_eq(sum.as_bytes()).into();
    valid.then_some((id, secret))
}

/// Whether `text` is a Gatehouse key with a valid checksum (for leak detection).
pub fn is_gatehouse_key(text: &str) -> bool {
    parse(text).is_some()
}
