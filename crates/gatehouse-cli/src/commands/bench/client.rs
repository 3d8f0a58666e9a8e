//! The load generator's HTTP side: one keep-alive HTTP/1.1 connection per worker (a client
//! of its own, so its pool holds exactly one), MCP sessions over it, and the OAuth form posts.

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use std::time::Duration;

/// The protocol version of the sessions the bench opens: the session era, which the example
/// server (and most servers today) speak; the gateway serves both eras.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// One request may take this long before it counts as an error, so a stalled server ends the
/// run instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client with its own connection pool: a worker making one request at a time keeps one
/// connection alive.
pub fn worker_client() -> anyhow::Result<HttpClient> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let tls = gatehouse::upstream::client::tls_config(&[])?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One POST, its whole answer read (so the connection goes back to the pool).
pub async fn post(
    client: &HttpClient,
    url: &Uri,
    headers: &[(header::HeaderName, HeaderValue)],
    body: Bytes,
) -> anyhow::Result<Answer> {
    let mut request = Request::post(url.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body))?;
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(answer) => answer.with_context(|| format!("POST {url}")),
        Err(_) => bail!(
            "POST {url}: no answer within {}s",
            REQUEST_TIMEOUT.as_secs()
        ),
    }
}

/// An OAuth endpoint's form post with HTTP Basic client authentication; its JSON answer
/// when 200.
pub async fn oauth_form(
    client: &HttpClient,
    url: &Uri,
    basic: &HeaderValue,
    form: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let answer = post(
        client,
        url,
        &[
            (header::AUTHORIZATION, basic.clone()),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
        ],
        Bytes::from(body),
    )
    .await?;
    if answer.status != StatusCode::OK {
        bail!(
            "POST {url} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    serde_json::from_slice(&answer.body).with_context(|| format!("POST {url}: not JSON"))
}

/// `Authorization: Basic` for a client id and secret (RFC 6749 §2.3.1: each form-encoded
/// first).
pub fn basic(client_id: &str, secret: &str) -> anyhow::Result<HeaderValue> {
    use base64::Engine;
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    let mut value = HeaderValue::from_str(&value)?;
    value.set_sensitive(true);
    Ok(value)
}

pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the credential is not a valid header value")?;
    value.set_sensitive(true);
    Ok(value)
}

/// An MCP session of the session era: `initialize` and `notifications/initialized` once,
/// then `tools/call`s carrying its `Mcp-Session-Id`.
pub struct McpSession {
    url: Uri,
    session: Option<HeaderValue>,
    next_id: u64,
}

impl McpSession {
    pub async fn open(
        client: &HttpClient,
        url: &Uri,
        auth: Option<&HeaderValue>,
    ) -> anyhow::Result<Self> {
        let mut session = Self {
            url: url.clone(),
            session: None,
            next_id: 0,
        };
        let initialize = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "gatehouse-bench", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let answer = session.send(client, auth, &initialize).await?;
        result_of(&answer, 0).context("initialize")?;
        session.session = answer.headers.get("mcp-session-id").cloned();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let answer = session.send(client, auth, &initialized).await?;
        if !answer.status.is_success() {
            bail!(
                "notifications/initialized answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(session)
    }

    /// One `tools/call`; an error unless it answers a result that is not a tool error.
    pub async fn call(
        &mut self,
        client: &HttpClient,
        auth: Option<&HeaderValue>,
        tool: &str,
        arguments: &Value,
    ) -> anyhow::Result<()> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        });
        let answer = self.send(client, auth, &message).await?;
        let result = result_of(&answer, id)?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("the tool answered an error: {result}");
        }
        Ok(())
    }

    async fn send(
        &self,
        client: &HttpClient,
        auth: Option<&HeaderValue>,
        message: &Value,
    ) -> anyhow::Result<Answer> {
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            ),
            (
                header::HeaderName::from_static("mcp-protocol-version"),
                HeaderValue::from_static(PROTOCOL_VERSION),
            ),
        ];
        if let Some(auth) = auth {
            headers.push((header::AUTHORIZATION, auth.clone()));
        }
        if let Some(session) = &self.session {
            headers.push((
                header::HeaderName::from_static("mcp-session-id"),
                session.clone(),
            ));
        }
        post(
            client,
            &self.url,
            &headers,
            Bytes::from(serde_json::to_vec(message)?),
        )
        .await
    }
}

/// The JSON-RPC result answering `id`, from a JSON body or an SSE stream's events.
fn result_of(answer: &Answer, id: u64) -> anyhow::Result<Value> {
    if answer.status != StatusCode::OK {
        bail!(
            "answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let text = std::str::from_utf8(&answer.body).context("the answer is not UTF-8")?;
    let stream = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let messages: Vec<Value> = if stream {
        sse_data(text)
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        vec![serde_json::from_str(text).context("the answer is not JSON")?]
    };
    let Some(reply) = messages.into_iter().find(|m| m["id"] == json!(id)) else {
        bail!("no answer to request {id} in: {text}");
    };
    if let Some(error) = reply.get("error") {
        bail!("JSON-RPC error: {error}");
    }
    reply
        .get("result")
        .cloned()
        .with_context(|| format!("an answer without a result: {reply}"))
}

/// The data of each event of an SSE stream (its `data:` lines joined).
fn sse_data(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            events.extend(data.take());
        } else if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_owned()),
            }
        }
    }
    events.extend(data);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_read_with_their_ids_and_priming_events_ignored() {
        let text = "id: 0\nretry: 3000\ndata:\n\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\
                    \"result\":{\"content\":[]}}\n\n";
        let answer = Answer {
            status: StatusCode::OK,
            headers: HeaderMap::from_iter([(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            )]),
            body: Bytes::from(text),
        };
        assert_eq!(result_of(&answer, 1).unwrap(), json!({"content": []}));
        assert!(result_of(&answer, 2).is_err());
    }

    #[test]
    fn a_json_rpc_error_is_an_error() {
        let answer = Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602}}"#),
        };
        assert!(result_of(&answer, 3).is_err());
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let value = basic("a b", "s:t").unwrap();
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.to_str().unwrap().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"a+b:s%3At");
    }
}
