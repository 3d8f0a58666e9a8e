//! The effective configuration of the answering process, secrets masked: what the console's
//! settings page shows. Values whose name says they are secret, and the user-info and query of
//! every URL, are replaced; names of environment variables holding secrets stay readable.

use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::context::AppState;

/// What replaces a masked value.
pub const MASK: &str = "(masked)";

/// Parts of a key name that mark its value as secret.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "token",
    "credential",
    "authorization",
    "private",
    "pepper",
    "api_key",
    "headers",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct Settings {
    /// The configuration as this process runs with it (file and environment), secrets masked.
    #[schema(value_type = Object)]
    pub config: Value,
}

#[utoipa::path(get, path = "/admin/api/v1/settings", tag = "status", operation_id = "getSettings",
    responses((status = 200, description = "The effective configuration of the answering process, secrets masked", body = Settings)))]
pub async fn get(State(state): State<AppState>) -> Result<axum::Json<Settings>, ApiError> {
    let config = serde_json::to_value(&state.config).map_err(|_| ApiError::Internal)?;
    Ok(axum::Json(Settings {
        config: masked(config),
    }))
}

/// `value` with every secret replaced by [`MASK`].
pub fn masked(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = if is_secret_name(&key) && !value.is_null() {
                        Value::String(MASK.to_owned())
                    } else {
                        masked(value)
                    };
                    (key, value)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(masked).collect()),
        Value::String(text) => Value::String(url_masked(&text)),
        other => other,
    }
}

fn is_secret_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // `client_secret_env` names a variable, not a secret.
    !key.ends_with("_env") && SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// A URL's user-info (a password) and query (often a token) masked; other text unchanged.
fn url_masked(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    {
        return text.to_owned();
    }
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_owned(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, _)) => (path, format!("?{MASK}")),
        None => (tail, String::new()),
    };
    // A webhook's path often is its secret (`/services/T0/B0/XyZ…`): a segment that looks
    // like a token is masked.
    let path: Vec<&str> = path
        .split('/')
        .map(|segment| if token_like(segment) { MASK } else { segment })
        .collect();
    format!("{scheme}://{authority}{}{query}", path.join("/"))
}

fn token_like(segment: &str) -> bool {
    segment.len() >= 16
        && segment.chars().any(|c| c.is_ascii_digit())
        && segment.chars().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_url_passwords_are_masked_and_variable_names_kept() {
        let config = json!({
            "database_url": "postgres://gatehouse:hunter2@db.internal:5432/gh?sslpassword=x",
            "redis": {"url": "redis://:s3cret@cache:6379/0"},
            "public_url": "https://mcp.example.com",
            "oauth": {"providers": [{"client_secret_env": "CORP_SECRET", "client_secret": "abc"}]},
            "audit": {"sinks": [{"headers": {"X-Key": "k"}, "token": null}]},
            "listen": "127.0.0.1:8080",
            "hook": "https://hooks.example.com/services/T01/B02/Xq9vK2mLp8RtY4wZ",
            "jwks_uri": "https://idp.example.com/oauth2/v1/keys",
        });
        let text = masked(config.clone()).to_string();
        for secret in [
            "hunter2",
            "s3cret",
            "sslpassword",
            "\"abc\"",
            "X-Key",
            "Xq9vK2mLp8RtY4wZ",
        ] {
            assert!(!text.contains(secret), "{secret} shown: {text}");
        }
        let shown = masked(config);
        assert_eq!(
            shown["database_url"],
            "postgres://(masked)@db.internal:5432/gh?(masked)"
        );
        assert_eq!(shown["public_url"], "https://mcp.example.com");
        assert_eq!(shown["jwks_uri"], "https://idp.example.com/oauth2/v1/keys");
        assert_eq!(
            shown["hook"],
            "https://hooks.example.com/services/T01/B02/(masked)"
        );
        assert_eq!(
            shown["oauth"]["providers"][0]["client_secret_env"],
            "CORP_SECRET"
        );
        assert_eq!(shown["audit"]["sinks"][0]["token"], Value::Null);
        assert_eq!(shown["listen"], "127.0.0.1:8080");
    }
}
