//! Signed, self-contained values for the browser flow: the sign-in session cookie and the
//! pending authorization request carried between the login and consent pages.
//!
//! Each is `base64url(JSON) "." base64url(HMAC-SHA-256)` under a key derived from the master
//! key with a purpose label, so a value made for one purpose is worthless for another and
//! nothing needs storing (any replica can check it). Every value carries its own expiry.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::{Serialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use crate::secrets::Keyring;

/// Values larger than this are refused before any work (they arrive in URLs and cookies).
const MAX_SEALED_LEN: usize = 8 * 1024;

fn mac(keyring: &Keyring, purpose: &str, payload: &str) -> [u8; 32] {
    keyring.hash_secret(format!("sealed:{purpose}:{payload}").as_bytes())
}

#[derive(serde::Deserialize, Serialize)]
struct Envelope<T> {
    exp: i64,
    v: T,
}

/// Seals `value` for `purpose`, valid until `expires_ms`.
pub fn seal<T: Serialize>(keyring: &Keyring, purpose: &str, value: &T, expires_ms: i64) -> String {
    let json = serde_json::to_vec(&Envelope {
        exp: expires_ms,
        v: value,
    })
    .unwrap_or_default();
    let payload = B64.encode(json);
    let tag = B64.encode(mac(keyring, purpose, &payload));
    format!("{payload}.{tag}")
}

/// The value, if `sealed` was made by [`seal`] for `purpose` and has not expired.
pub fn open<T: DeserializeOwned>(
    keyring: &Keyring,
    purpose: &str,
    sealed: &str,
    now_ms: i64,
) -> Option<T> {
    if sealed.len() > MAX_SEALED_LEN {
        return None;
    }
    let (payload, tag) = sealed.split_once('.')?;
    let tag = B64.decode(tag).ok()?;
    let expected = mac(keyring, purpose, payload);
    if !bool::from(expected.as_slice().ct_eq(tag.as_slice())) {
        return None;
    }
    let envelope: Envelope<T> = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    (envelope.exp > now_ms).then_some(envelope.v)
}

/// A CSRF token bound to a secret the attacker cannot read (the HttpOnly session cookie or
/// login nonce) and to the request being confirmed.
pub fn csrf_token(keyring: &Keyring, purpose: &str, bound_to: &str, request: &str) -> String {
    B64.encode(mac(
        keyring,
        &format!("csrf:{purpose}"),
        &format!("{bound_to}|{request}"),
    ))
}

pub fn csrf_ok(
    keyring: &Keyring,
    purpose: &str,
    bound_to: &str,
    request: &str,
    presented: &str,
) -> bool {
    let expected = csrf_token(keyring, purpose, bound_to, request);
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// One cookie's value from a `Cookie` header.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_bound_to_purpose_and_time() {
        let ring = Keyring::from_master(&[9; 32]);
        let sealed = seal(&ring, "session", &"usr_1", 1_000);
        assert_eq!(
            open::<String>(&ring, "session", &sealed, 999).as_deref(),
            Some("usr_1")
        );
        assert_eq!(open::<String>(&ring, "session", &sealed, 1_000), None);
        assert_eq!(open::<String>(&ring, "authz", &sealed, 0), None);
        let other = Keyring::from_master(&[8; 32]);
        assert_eq!(open::<String>(&other, "session", &sealed, 0), None);
        let mut tampered = sealed.clone();
        tampered.replace_range(0..1, if sealed.starts_with('e') { "f" } else { "e" });
        assert_eq!(open::<String>(&ring, "session", &tampered, 0), None);
    }

    #[test]
    fn csrf_tokens_bind_both_values() {
        let ring = Keyring::from_master(&[9; 32]);
        let token = csrf_token(&ring, "consent", "cookie", "req");
        assert!(csrf_ok(&ring, "consent", "cookie", "req", &token));
        assert!(!csrf_ok(&ring, "consent", "other", "req", &token));
        assert!(!csrf_ok(&ring, "consent", "cookie", "req2", &token));
        assert!(!csrf_ok(&ring, "login", "cookie", "req", &token));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a_session=x; session=y"),
        );
        assert_eq!(cookie(&headers, "session"), Some("y"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
