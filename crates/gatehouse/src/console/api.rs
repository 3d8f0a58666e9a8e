//! The admin API, called in process: every console page reads and changes through it, so the
//! role table, validation, problem documents and operator events are the API's (ADR 0014).

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{HeaderValue, Method, Request, StatusCode, header},
};
use serde_json::Value;
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tower_service::Service;

use crate::context::AppState;

/// The largest answer a page reads from the API (an audit page of 500 rows fits).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The admin API's router, ready to be called without a socket.
#[derive(Clone)]
pub struct Api {
    router: Router,
    /// The last verification of the audit chains run from this process's console: walking
    /// every chain is too costly for each overview, so the overview shows this and a button.
    last_verification: Arc<Mutex<Option<Verification>>>,
}

/// What a verification answered, and when (milliseconds since the epoch).
#[derive(Clone, Debug)]
pub struct Verification {
    pub at_ms: i64,
    pub answer: Value,
}

/// What the API answered: its status and its JSON (a problem document when it refused).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The refusal's explanation (`detail`, else `title`), for the page that shows it.
    pub fn problem(&self) -> String {
        let text = |key| self.body.get(key).and_then(Value::as_str);
        text("detail")
            .filter(|d| !d.is_empty())
            .or_else(|| text("title"))
            .unwrap_or("the request failed")
            .to_owned()
    }

    pub fn items(&self) -> &[Value] {
        self.body
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl Api {
    pub fn new(state: AppState) -> Api {
        Api {
            router: crate::admin_api::routes(state.clone()).with_state(state),
            last_verification: Arc::default(),
        }
    }

    /// Keeps `answer` as the last verification if it is one (a refusal is not).
    pub fn remember_verification(&self, answer: &Answer) {
        if !answer.ok() {
            return;
        }
        if let Ok(mut last) = self.last_verification.lock() {
            *last = Some(Verification {
                at_ms: crate::now_ms(),
                answer: answer.body.clone(),
            });
        }
    }

    pub fn last_verification(&self) -> Option<Verification> {
        self.last_verification
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }

    /// `method path` with `token` as the bearer, as if from `peer`.
    pub async fn call(
        &self,
        token: &str,
        peer: SocketAddr,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let failed = Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::json!({"title": "the console could not ask the admin API"}),
        };
        let bytes = match body.map(serde_json::to_vec).transpose() {
            Ok(bytes) => bytes,
            Err(_) => return failed,
        };
        let mut builder = Request::builder().method(method).uri(path);
        if let Ok(value) = HeaderValue::try_from(format!("Bearer {token}")) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if bytes.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let Ok(mut request) = builder.body(Body::from(bytes.unwrap_or_default())) else {
            return failed;
        };
        request.extensions_mut().insert(ConnectInfo(peer));
        let response: Result<_, Infallible> = self.router.clone().call(request).await;
        let Ok(response) = response;
        let status = response.status();
        let Ok(bytes) = to_bytes(response.into_body(), MAX_ANSWER_BYTES).await else {
            return failed;
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer { status, body }
    }
}

/// A string field of an API answer, empty when absent: pages show what the API returned and
/// never fail on a field a newer API left out.
pub(super) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A list of strings in an API answer, joined for a table cell; empty when absent.
pub(super) fn list(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
