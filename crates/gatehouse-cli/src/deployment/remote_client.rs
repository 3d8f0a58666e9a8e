//! The admin API's HTTP client under [`super::remote::Remote`]: one request with the admin
//! token and its timeouts, a problem document read into a [`RemoteError`], lists followed
//! page by page, and a change waited for until every running replica applied it.

use bytes::Bytes;
use gatehouse::admin_api::views::{Replica, Status};
use gatehouse_model::audit::{AuditFilter, AuditRow, EventKind};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use std::time::Duration;

use super::{Result, selection::Target};

/// The most items the API hands out per page.
const PAGE_LIMIT: usize = 500;
/// How long a request may take (a connection that hangs is an error, not a wait forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change may take to reach every running replica (they poll every 250 ms by
/// default), and how often to ask.
const APPLY_WAIT: Duration = Duration::from_secs(5);
const APPLY_POLL: Duration = Duration::from_millis(100);
/// Why a call to the admin API failed: a problem document the server answered with, or no
/// answer at all. `output` renders it with a hint and `main` picks the exit code from it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{detail} (HTTP {status} {code})")]
    Problem {
        status: u16,
        code: String,
        detail: String,
        /// The request path, which names the kind of thing that was not found.
        path: String,
    },
    #[error("cannot reach the admin API at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("the admin API at {url} answered {what}")]
    Unexpected { url: String, what: String },
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Items<T> {
    pub(super) items: Vec<T>,
}

pub struct Remote {
    /// `https://host:port` (no trailing slash).
    base: String,
    token: String,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Remote {
    pub fn connect(target: Target) -> Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(false);
        let tls = gatehouse::upstream::client::tls_config(&target.ca_files)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            base: target.server,
            token: target.token,
            http: HttpClient::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Sends one request; a 2xx answer's body, or the problem as a [`RemoteError`].
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Bytes> {
        let url = format!("{}/admin/api/v1{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(value)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let unreachable = |why: String| RemoteError::Unreachable {
            url: self.base.clone(),
            why,
        };
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Err(unreachable(cause(&err)).into()),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                ))
                .into());
            }
        };
        let status = response.status();
        let bytes =
            match tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect()).await {
                Ok(Ok(body)) => body.to_bytes(),
                Ok(Err(err)) => return Err(unreachable(cause(&err)).into()),
                Err(_) => return Err(unreachable("the answer stalled".into()).into()),
            };
        if status.is_success() {
            return Ok(bytes);
        }
        Err(problem(&self.base, status, path, &bytes).into())
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let bytes = self.call(Method::GET, path, None).await?;
        self.parse(&bytes)
    }

    /// A change: its answer once every running replica applied it.
    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<T> {
        let bytes = self.call(method, path, Some(&body)).await?;
        self.applied().await?;
        self.parse(&bytes)
    }

    pub(super) async fn send_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<()> {
        self.call(method, path, body.as_ref()).await?;
        self.applied().await
    }

    /// Waits until every live replica applied the store's generation as it is after the
    /// change, as the local mode does: "revoked" means revoked everywhere when the command
    /// returns. The server answers after its commit; its replicas apply the change at their
    /// next poll or change notification.
    async fn applied(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        let mut status: Status = self.get("/status").await?;
        let generation = status.generation;
        loop {
            let behind: Vec<&Replica> = status
                .replicas
                .iter()
                .filter(|r| r.live && r.applied_generation < generation)
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let live = status.replicas.iter().filter(|r| r.live).count();
                anyhow::bail!(
                    "the change is stored (generation {generation}) but {} of {live} running \
                     replica(s) {} not applied it within {}s: {}; see `gatehouse status`",
                    behind.len(),
                    if behind.len() == 1 { "has" } else { "have" },
                    APPLY_WAIT.as_secs(),
                    behind
                        .iter()
                        .map(|r| format!(
                            "{:?} runs generation {}",
                            r.replica_id, r.applied_generation
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            tokio::time::sleep(APPLY_POLL).await;
            status = self.get("/status").await?;
        }
    }

    fn parse<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            RemoteError::Unexpected {
                url: self.base.clone(),
                what: format!("a body this gatehouse cannot read ({e}); are the versions apart?"),
            }
            .into()
        })
    }

    /// Every item of a list, following `next_cursor` to the end.
    pub(super) async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = vec![("limit", PAGE_LIMIT.to_string())];
            pairs.extend(query.iter().cloned());
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor.clone()));
            }
            let page: Page<T> = self
                .get(&format!("{path}?{}", query_string(&pairs)))
                .await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Events matching `filter`, newest first, until `enough` says stop (given the rows so
    /// far and the last page).
    pub(super) async fn audit_pages(
        &self,
        filter: &AuditFilter,
        mut enough: impl FnMut(&[AuditRow]) -> bool,
    ) -> Result<Vec<AuditRow>> {
        let mut query = vec![("limit", PAGE_LIMIT.to_string())];
        let text = |v: &Option<String>| v.clone();
        for (name, value) in [
            ("client", text(&filter.client)),
            ("server", text(&filter.server)),
            ("user", text(&filter.user)),
            ("key", text(&filter.credential_id)),
            ("tool", text(&filter.tool)),
            ("reason", text(&filter.reason)),
            ("rule", text(&filter.rule)),
            ("decision", filter.decision.map(|d| d.as_str().to_owned())),
            ("kind", filter.kind.map(|k| kind_name(k).to_owned())),
            ("since", filter.since_ms.map(|ms| ms.to_string())),
            ("until", filter.until_ms.map(|ms| ms.to_string())),
        ] {
            if let Some(value) = value {
                query.push((name, value));
            }
        }
        let mut rows: Vec<AuditRow> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = query.clone();
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor.clone()));
            }
            let page: Page<AuditRow> = self
                .get(&format!("/audit/events?{}", query_string(&pairs)))
                .await?;
            let stop = enough(&page.items);
            rows.extend(page.items);
            match page.next_cursor {
                Some(next) if !stop => cursor = Some(next),
                _ => return Ok(rows),
            }
        }
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Request => "request",
        EventKind::Operator => "operator",
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)").
fn cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        last = inner.to_string();
        source = inner.source();
    }
    last
}

fn problem(base: &str, status: StatusCode, path: &str, body: &[u8]) -> RemoteError {
    match serde_json::from_slice::<Value>(body) {
        Ok(doc) if doc.get("code").is_some() => RemoteError::Problem {
            status: status.as_u16(),
            code: doc["code"].as_str().unwrap_or("unknown").to_owned(),
            detail: doc["detail"]
                .as_str()
                .or(doc["title"].as_str())
                .unwrap_or("refused")
                .to_owned(),
            path: path.to_owned(),
        },
        _ => RemoteError::Unexpected {
            url: base.to_owned(),
            what: format!(
                "HTTP {status} without a problem document; is this the admin listener \
                 (`admin_listen`)?"
            ),
        },
    }
}
