//! `Idempotency-Key` on creates: the same key with the same request gets the first answer
//! again (status and body, marked `Idempotent-Replayed: true`); the same key with another
//! request gets 422 `idempotency_key_reused`; while the first is still running, 409
//! `idempotency_in_progress`. Keys are per admin token and kept in the store for a day, so a
//! retry that reaches another replica is answered the same. Only successes are kept: a
//! refused create changed nothing, so its key is released and a retry runs again. The kept answer is sealed with the
//! master key: a create's answer can hold a secret shown once.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use std::future::Future;

use super::{auth::Caller, problem::ApiError};
use crate::{context::AppState, store::admin_api::Claim};

pub const HEADER: &str = "idempotency-key";
/// How long an answer is kept (milliseconds).
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

/// What a create answers: its status and JSON body.
pub type Answer = (StatusCode, serde_json::Value);

fn context(caller: &Caller, key: &str) -> String {
    format!("admin-idempotency:{}:{key}", caller.token_id)
}

fn respond(answer: Answer) -> Response {
    (answer.0, axum::Json(answer.1)).into_response()
}

/// Runs `create` once per `(token, Idempotency-Key)`; without the header, runs it.
pub async fn once<F>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    operation: &str,
    body: &[u8],
    create: F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Answer, ApiError>>,
{
    let Some(key) = headers.get(HEADER) else {
        return create.await.map(respond);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::Malformed("Idempotency-Key: give 1-255 visible ASCII characters".into())
        })?;
    let mut hash = Sha256::new();
    hash.update(operation.as_bytes());
    hash.update([0]);
    hash.update(body);
    let request_hash = hex::encode(hash.finalize());
    let now = crate::now_ms();
    if let Err(err) = state.store.forget_idempotency_before(now - KEEP_MS).await {
        tracing::warn!(error = %err, "admin API: could not forget old idempotency keys");
    }
    let claim = state
        .store
        .claim_idempotency(&caller.token_id, key, &request_hash, now)
        .await
        .map_err(|err| match err {
            crate::store::StoreError::Conflict { .. } => ApiError::IdempotencyInProgress,
            other => other.into(),
        })?;
    match claim {
        Claim::Claimed => {}
        Claim::Held(held) if held.request_hash != request_hash => {
            return Err(ApiError::IdempotencyKeyReused);
        }
        Claim::Held(held) => {
            let Some((status, sealed)) = held.answer else {
                return Err(ApiError::IdempotencyInProgress);
            };
            let body = state
                .keyring
                .decrypt(&sealed, &context(caller, key))
                .map_err(|_| ApiError::Internal)?;
            let mut response = (
                StatusCode::from_u16(status).map_err(|_| ApiError::Internal)?,
                body,
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
    }
    let (status, body) = match create.await {
        Ok((status, value)) => (status, value.to_string()),
        Err(err) => {
            // A refused or failed create changed nothing and is not kept: a retry with the
            // same key runs again.
            if let Err(release) = state.store.release_idempotency(&caller.token_id, key).await {
                tracing::warn!(error = %release, "admin API: could not release an idempotency key");
            }
            return Err(err);
        }
    };
    let sealed = state
        .keyring
        .encrypt(body.as_bytes(), &context(caller, key))
        .map_err(|_| ApiError::Internal)?;
    state
        .store
        .answer_idempotency(&caller.token_id, key, status.as_u16(), &sealed)
        .await?;
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
