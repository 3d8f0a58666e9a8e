//! Strict `application/x-www-form-urlencoded` request bodies for the OAuth endpoints.
//!
//! RFC 6749 §3.1/§3.2: parameters must not repeat (the exceptions, like RFC 8707 `resource`,
//! are named by the caller) and a parameter without a value counts as absent. A body that is
//! JSON, too large or not UTF-8 is an `invalid_request`, never a guess.

use axum::body::Body;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, Limited};

use crate::error::OAuthError;

/// Token and revocation requests are small; anything near this is not a real client.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Reads and parses the body; `repeatable` names the parameters that may occur more than
    /// once.
    pub async fn read(
        headers: &HeaderMap,
        body: Body,
        repeatable: &[&str],
    ) -> Result<Self, OAuthError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        // RFC 6749 §5.2: a request in another format is an `invalid_request` (400).
        if !is_form {
            return Err(OAuthError::InvalidRequest(
                "the body must be application/x-www-form-urlencoded".into(),
            ));
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_FORM_BYTES as u64) {
            return Err(OAuthError::PayloadTooLarge {
                limit: MAX_FORM_BYTES,
            });
        }
        let bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(OAuthError::PayloadTooLarge {
                    limit: MAX_FORM_BYTES,
                });
            }
            Err(err) if crate::edge::body::is_timeout(&*err) => {
                return Err(OAuthError::RequestTimeout);
            }
            Err(_) => {
                return Err(OAuthError::InvalidRequest(
                    "the request body could not be read".into(),
                ));
            }
        };
        Self::parse(&bytes, repeatable)
    }

    pub fn parse(bytes: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        if std::str::from_utf8(bytes).is_err() {
            return Err(OAuthError::InvalidRequest(
                "the form body is not UTF-8".into(),
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            if value.is_empty() {
                continue;
            }
            if !repeatable.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter {name:?} is repeated"
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("parameter {name:?} is required")))
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_unless_allowed() {
        let err = Form::parse(b"grant_type=a&grant_type=b", &[]).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let form = Form::parse(b"resource=x&resource=y&scope=a+b", &["resource"]).unwrap();
        assert_eq!(form.all("resource").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(form.get("scope"), Some("a b"));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = Form::parse(b"scope=&client_id=abc", &[]).unwrap();
        assert_eq!(form.get("scope"), None);
        assert!(form.require("scope").is_err());
        assert_eq!(form.require("client_id").unwrap(), "abc");
    }

    #[test]
    fn non_utf8_is_refused() {
        assert!(Form::parse(b"a=\xff", &[]).is_err());
    }
}
