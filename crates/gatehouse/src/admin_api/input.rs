//! Reading an operation's input: JSON bodies, query strings and pagination. A rejection is a
//! problem document (400 `malformed`), never axum's plain-text one.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use base64::Engine;
use serde::{Deserialize, de::DeserializeOwned};
use utoipa::IntoParams;

use super::problem::ApiError;

/// The most a request body may hold.
const MAX_BODY: usize = 1024 * 1024;
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 500;

/// A JSON body read as `T`, unknown fields refused (the types say `deny_unknown_fields`).
/// Keeps the bytes for the idempotency hash.
pub struct JsonBody<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::Malformed(format!("the body must be at most {MAX_BODY} bytes"))
            })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Malformed(format!("body: {e}")))?;
        Ok(JsonBody { value, bytes })
    }
}

/// A query string read as `T`.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(Params)
            .map_err(|e| ApiError::Malformed(format!("query: {e}")))
    }
}

/// `limit` and `cursor` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// At most this many items (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=500) => Ok(usize::try_from(n).unwrap_or(MAX_LIMIT)),
            Some(n) => Err(ApiError::Malformed(format!(
                "limit {n}: give 1-{MAX_LIMIT}"
            ))),
        }
    }

    /// The key the previous page ended at.
    pub fn after(&self) -> Result<Option<String>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| ApiError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| ApiError::BadCursor)?;
        text.strip_prefix("v1:")
            .map(|key| Some(key.to_owned()))
            .ok_or(ApiError::BadCursor)
    }
}

pub fn cursor_for(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{key}"))
}

/// One page of `items` (already filtered and ordered by `key`): those after the cursor, at
/// most `limit`, and the cursor of the next page when more remain.
pub fn page<T>(
    items: Vec<T>,
    params: &PageParams,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = params.limit()?;
    let after = params.after()?;
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_ref().is_none_or(|after| key(item) > *after))
        .collect();
    let next = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|last| cursor_for(&key(last)))
    } else {
        None
    };
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_their_cursor_to_the_end_and_foreign_cursors_are_refused() {
        let items: Vec<String> = (0..7).map(|n| format!("k{n}")).collect();
        let mut params = PageParams {
            limit: Some(3),
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = page(items.clone(), &params, Clone::clone).unwrap();
            seen.extend(page);
            match next {
                Some(cursor) => params.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, items);
        params.cursor = Some("not-ours".into());
        assert_eq!(params.after(), Err(ApiError::BadCursor));
        params.limit = Some(0);
        assert!(params.limit().is_err());
    }
}
