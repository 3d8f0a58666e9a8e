//! `test-connection`: asks an upstream for its tools as an MCP client would (initialize,
//! initialized, tools/list, end the session), with the server's injected credential, before
//! anything is granted. Nothing it sees is pinned or recorded: it reads, it does not govern.

use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use std::time::Duration;

use super::problem::ApiError;
use crate::{context::AppState, snapshot::credential_context, upstream::read_whole};
use gatehouse_model::records::ServerRecord;

const MAX_REPLY: usize = 4 * 1024 * 1024;
const PROTOCOL: &str = "2025-06-18";

use super::probe_outcome::{Outcome, Unreachable};

/// The tools the upstream lists, or why it could not be asked. `Err` only for a failure of
/// Gatehouse itself (the sealed credential). A virtual server has no upstream of its own:
/// `probe_virtual` asks its members through this.
pub async fn list_tools(state: &AppState, server: &ServerRecord) -> Result<Outcome, ApiError> {
    if server.stdio.is_some() {
        return Ok(super::probe_stdio::list_tools(state, server).await);
    }
    let credential = match (&server.credential_header, &server.credential_sealed) {
        (Some(name), Some(sealed)) => {
            let value = state
                .keyring
                .decrypt(sealed, &credential_context(&server.name))
                .map_err(|_| ApiError::Internal)?;
            let name =
                axum::http::HeaderName::try_from(name.as_str()).map_err(|_| ApiError::Internal)?;
            let value = HeaderValue::from_bytes(&value).map_err(|_| ApiError::Internal)?;
            Some((name, value))
        }
        _ => None,
    };
    // A server that gets upstream tokens is probed with one, as its calls are.
    let credential =
        match crate::snapshot::upstream_auth::compile(server, &state.keyring, credential)
            .map_err(|_| ApiError::Internal)?
        {
            crate::snapshot::upstream_auth::UpstreamAuth::ClientCredentials(auth) => {
                match state.upstream_tokens.authorization(&auth).await {
                    Ok(value) => Some((header::AUTHORIZATION, value)),
                    Err(_) => {
                        return Ok(Outcome::Unreachable(
                            "the upstream's authorization server gave no token".into(),
                        ));
                    }
                }
            }
            other => other.static_header().cloned(),
        };
    let probe = Probe {
        state,
        url: &server.url,
        credential,
    };
    Ok(match ask(&probe).await {
        Ok(tools) => Outcome::Tools(tools),
        Err(why) => why.into(),
    })
}

async fn ask(probe: &Probe<'_>) -> Result<Vec<Value>, Unreachable> {
    let (init, session) = probe
        .call(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "gatehouse-test-connection", "version": env!("CARGO_PKG_VERSION")}
        }}), None)
        .await?;
    if let Some(error) = init.get("error") {
        return Err(Unreachable(format!("initialize: {error}")));
    }
    probe
        .notify(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            session.as_ref(),
        )
        .await?;
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    // A bounded number of pages: an upstream that pages forever is not followed forever.
    for id in 2..102 {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let (reply, _) = probe
            .call(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params}),
                session.as_ref(),
            )
            .await?;
        let result = reply.get("result").ok_or_else(|| {
            Unreachable(format!(
                "tools/list: {}",
                reply.get("error").cloned().unwrap_or(Value::Null)
            ))
        })?;
        if let Some(Value::Array(page)) = result.get("tools") {
            tools.extend(page.iter().cloned());
        }
        cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
    }
    if let Some(session) = &session {
        probe.end(session).await;
    }
    Ok(tools)
}

struct Probe<'a> {
    state: &'a AppState,
    url: &'a str,
    credential: Option<(axum::http::HeaderName, HeaderValue)>,
}

impl Probe<'_> {
    fn request(
        &self,
        method: Method,
        body: Bytes,
        session: Option<&HeaderValue>,
    ) -> Result<Request<Full<Bytes>>, Unreachable> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url)
            .body(Full::new(body))
            .map_err(|e| Unreachable(e.to_string()))?;
        let headers: &mut HeaderMap = request.headers_mut();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("mcp-protocol-version", HeaderValue::from_static(PROTOCOL));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        if let Some(session) = session {
            headers.insert("mcp-session-id", session.clone());
        }
        if let Some((name, value)) = &self.credential {
            headers.insert(name.clone(), value.clone());
        }
        Ok(request)
    }

    /// Sends a request and reads its response (JSON, or the first SSE event that answers it).
    async fn call(
        &self,
        message: Value,
        session: Option<&HeaderValue>,
    ) -> Result<(Value, Option<HeaderValue>), Unreachable> {
        let id = message.get("id").cloned();
        let request = self.request(Method::POST, Bytes::from(message.to_string()), session)?;
        let response = self
            .state
            .upstream
            .send(request)
            .await
            .map_err(|e| Unreachable(e.to_string()))?;
        let status = response.status();
        let session = response.headers().get("mcp-session-id").cloned();
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !status.is_success() {
            return Err(Unreachable(format!("the upstream answered {status}")));
        }
        let body = read_whole(response.into_body(), MAX_REPLY, Duration::from_secs(30))
            .await
            .map_err(|e| Unreachable(e.to_string()))?;
        let reply = if is_sse {
            sse_reply(&body, id.as_ref())
        } else {
            serde_json::from_slice(&body).ok()
        };
        let reply = reply
            .ok_or_else(|| Unreachable("the upstream's reply is not a JSON-RPC response".into()))?;
        Ok((reply, session))
    }

    async fn notify(
        &self,
        message: Value,
        session: Option<&HeaderValue>,
    ) -> Result<(), Unreachable> {
        let request = self.request(Method::POST, Bytes::from(message.to_string()), session)?;
        self.state
            .upstream
            .send(request)
            .await
            .map_err(|e| Unreachable(e.to_string()))?;
        Ok(())
    }

    async fn end(&self, session: &HeaderValue) {
        if let Ok(request) = self.request(Method::DELETE, Bytes::new(), Some(session)) {
            let _ended = self.state.upstream.send(request).await;
        }
    }
}

/// The event of an SSE body that answers `id`.
fn sse_reply(body: &[u8], id: Option<&Value>) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .find(|message| message.get("id") == id && message.get("method").is_none())
}
