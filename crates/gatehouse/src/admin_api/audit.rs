//! Audit search (newest first, by cursor) and export (JSON lines, oldest first, streamed).

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    input::{PageParams, Params, cursor_for},
    problem::{ApiError, Problem},
};
use crate::context::AppState;
use gatehouse_model::audit::{AuditFilter, AuditRow, Decision, EventKind};

/// Rows read from the store per page of an export.
const EXPORT_BATCH: i64 = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At most this many events (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events at or after this time (milliseconds since the Unix epoch).
    pub since: Option<i64>,
    /// Events before this time (milliseconds since the Unix epoch).
    pub until: Option<i64>,
    pub client: Option<String>,
    /// The user's id.
    pub user: Option<String>,
    /// The credential's id (an API key's id).
    pub key: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    /// `allow`, `deny` or `error`.
    pub decision: Option<String>,
    /// A reason as the trail records it (`tool_not_granted`, `rate_limit:<policy id>`,
    /// `guardrail:<name>:<detector>:block`, …; docs/audit.md); also finds the more specific
    /// reasons under it, up to a `:` (`rate_limit` finds every rate-limit refusal).
    pub reason: Option<String>,
    /// The rule that decided (`policy:<id>`, `guardrail:<name>`, `grant`, `scope`, `pin`).
    pub rule: Option<String>,
    /// `request` or `operator` events only.
    pub kind: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let decision = match &self.decision {
            Some(text) => Some(Decision::parse(text).ok_or_else(|| {
                ApiError::Malformed(format!("decision {text:?}: give allow, deny or error"))
            })?),
            None => None,
        };
        let kind = match &self.kind {
            Some(text) => Some(EventKind::parse(text).ok_or_else(|| {
                ApiError::Malformed(format!("kind {text:?}: give request or operator"))
            })?),
            None => None,
        };
        Ok(AuditFilter {
            client: self.client.clone(),
            server: self.server.clone(),
            decision,
            since_ms: self.since,
            until_ms: self.until,
            user: self.user.clone(),
            credential_id: self.key.clone(),
            tool: self.tool.clone(),
            reason: self.reason.clone(),
            rule: self.rule.clone(),
            kind,
            ..AuditFilter::default()
        })
    }
}

/// One page of events, newest first. Each event is a stored audit row as
/// `gatehouse audit query -o json` prints it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AuditRow>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/audit/events", tag = "audit", operation_id = "searchAudit",
    params(AuditQuery),
    responses((status = 200, description = "Matching events, newest first", body = AuditPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    Params(query): Params<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = page.limit()?;
    let before_seq = match page.after()? {
        Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::BadCursor)?),
        None => None,
    };
    let filter = AuditFilter {
        before_seq,
        newest_first: true,
        // One more than asked tells whether another page follows.
        limit: i64::try_from(limit).unwrap_or(500) + 1,
        ..query.filter()?
    };
    let mut rows = state.store.query_audit(&filter).await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| cursor_for(&row.seq.to_string()))
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        items: rows,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/audit/export", tag = "audit", operation_id = "exportAudit",
    params(AuditQuery),
    responses((status = 200, description = "Every matching event, oldest first, one JSON object per line",
            content_type = "application/jsonl", body = String),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json")))]
pub async fn export(
    State(state): State<AppState>,
    Params(query): Params<AuditQuery>,
) -> Result<Response, ApiError> {
    if query.cursor.is_some() || query.limit.is_some() {
        return Err(ApiError::Malformed(
            "an export has no pages: leave out limit and cursor".into(),
        ));
    }
    let filter = query.filter()?;
    // Read page by page as the body is sent, so an export of the whole trail holds one page.
    let pages = futures_util::stream::unfold(Some(0_i64), move |after| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let after = after?;
            let page = AuditFilter {
                after_seq: Some(after),
                newest_first: false,
                limit: EXPORT_BATCH,
                ..filter
            };
            match state.store.query_audit(&page).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|r| r.seq);
                    let mut text = String::new();
                    for row in &rows {
                        match serde_json::to_string(row) {
                            Ok(line) => {
                                text.push_str(&line);
                                text.push('\n');
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "admin API: audit row unserialisable");
                                return Some((Err(std::io::Error::other("export failed")), None));
                            }
                        }
                    }
                    Some((Ok::<_, std::io::Error>(text), next))
                }
                Err(err) => {
                    // The status is sent: cutting the body short is how the client learns.
                    tracing::error!(error = %err, "admin API: audit export failed");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
            }
        }
    });
    let mut response = Body::from_stream(pages).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(response)
}
