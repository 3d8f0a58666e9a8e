//! A virtual server (ADR 0006 §4): one `/{virtual}/mcp` over several member servers.
//! Gatehouse answers `initialize` itself; lists fan out to the members at once and are merged
//! under member-prefixed names; a call goes to the member that owns the name, under its
//! original name. Every message to a member is a request of its own through the gateway
//! (`proxy::handle` on `/{member}/mcp` with the caller already identified), so the member's
//! connection, policies, guardrails, pins and audit apply exactly as if the client had called
//! it directly.

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::{collections::BTreeMap, future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use super::{
    authorize,
    recorded::Record,
    request_body::{read_body, starts_with_ignore_case},
    virtual_names::{self, MergedCursor},
};
use crate::{
    context::AppState, edge::serve::ConnectionCut, error::GatewayError, identity::Principal,
    snapshot::ServerEntry,
};
use gatehouse_model::jsonrpc::{self, Kind};

const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-session-id");
/// The `_meta` key naming the members a list was answered without.
pub const UNAVAILABLE_META: &str = "io.gatehouse/unavailable";
/// Pages of a member's list read to find the tool a hashed name stands for.
const MAX_LOOKUP_PAGES: usize = 10;

/// The caller of a member hop, identified once on the virtual server. Only this module
/// inserts it, so a client cannot present one.
#[derive(Clone)]
pub(super) struct MemberHop {
    pub principal: Principal,
}

/// Serves one request to virtual server `server`, made by `principal`.
pub(super) async fn serve(
    state: &AppState,
    server: &Arc<ServerEntry>,
    principal: Principal,
    parts: Parts,
    unread: &mut Option<Body>,
    record: &mut Record,
) -> Result<Response, GatewayError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .ok_or(GatewayError::ServerUnavailable)?;
    let virtual_server = Virtual {
        state,
        server,
        principal,
        peer,
        cut: parts.extensions.get::<ConnectionCut>().cloned(),
        headers: &parts.headers,
    };
    match parts.method {
        Method::POST => {
            let body = unread.take().unwrap_or_default();
            virtual_server.post(body, record).await
        }
        Method::DELETE => virtual_server.end_session().await,
        _ => Err(GatewayError::MethodNotAllowed {
            allow: "POST, DELETE",
        }),
    }
}

struct Virtual<'a> {
    state: &'a AppState,
    server: &'a Arc<ServerEntry>,
    principal: Principal,
    peer: SocketAddr,
    cut: Option<ConnectionCut>,
    headers: &'a HeaderMap,
}

/// How one member answered a request.
enum Answer {
    Result(Value, Option<String>),
    /// Refused for this caller (no connection, a policy): left out without comment, since
    /// the member's own audit event says why.
    Refused,
    /// Down, timed out or broken: left out and named.
    Unavailable,
}

impl Virtual<'_> {
    async fn post(&self, body: Body, record: &mut Record) -> Result<Response, GatewayError> {
        let is_json = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| starts_with_ignore_case(v.trim_start(), "application/json"));
        if !is_json {
            return Err(GatewayError::UnsupportedMediaType);
        }
        let gateway = &self.state.config.gateway;
        let bytes = read_body(self.headers, body, gateway.max_body_bytes).await?;
        let envelope = jsonrpc::parse_with(&bytes, gateway.parse_limits())?;
        if envelope.batch {
            return Err(GatewayError::BatchUnsupported);
        }
        let Some(message) = envelope.first() else {
            return Err(GatewayError::InvalidRequest("empty body".into()));
        };
        record.rpc_id = message.id.clone();
        record.rpc_method = Some(message.method().chars().take(128).collect());
        let stateless = authorize::protocol_era(self.headers, Some(&envelope))?;
        if message.kind != Kind::Request {
            // `notifications/initialized` was sent to each member when Gatehouse initialised
            // it; a cancellation cannot be matched to a member's request.
            return Ok(empty(StatusCode::ACCEPTED));
        }
        let id = message.id.clone().unwrap_or(Value::Null);
        let params = message.params.clone().unwrap_or_else(|| json!({}));
        let sessions = self.member_sessions(stateless, message.method()).await?;
        let method = message.method();
        match method {
            "initialize" if !stateless => self.initialize(&id, &params, record).await,
            "ping" => Ok(json_answer(&id, json!({}), None)),
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                self.list(method, &id, &params, &sessions, record).await
            }
            "tools/call" | "prompts/get" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                if method == "tools/call" {
                    record.tool = Some(name.chars().take(128).collect());
                }
                self.call_named(method, &id, params.clone(), &sessions)
                    .await
            }
            "resources/read" => self.read(&id, &params, &sessions).await,
            other => Err(GatewayError::MethodNotFound {
                method: other.to_owned(),
                stateless_era: stateless,
            }),
        }
    }

    /// Each member's session of the caller's virtual session (legacy era), after checking the
    /// virtual session is the caller's.
    async fn member_sessions(
        &self,
        stateless: bool,
        method: &str,
    ) -> Result<BTreeMap<String, String>, GatewayError> {
        if stateless || method == "initialize" {
            return Ok(BTreeMap::new());
        }
        let Some(value) = self.headers.get(SESSION_HEADER) else {
            return Ok(BTreeMap::new());
        };
        let id = value.to_str().map_err(|_| GatewayError::SessionNotFound)?;
        let owned = self
            .state
            .sessions
            .check(
                &self.server.name,
                id,
                self.principal.owner(),
                crate::now_ms(),
            )
            .await;
        if owned != super::session::SessionCheck::Owned {
            return Err(GatewayError::SessionNotFound);
        }
        Ok(decode_sessions(id).unwrap_or_default())
    }

    /// Initialises every member (each its own session, bound to the caller by the member's
    /// hop) and answers with the union of their capabilities and a session of Gatehouse's.
    async fn initialize(
        &self,
        id: &Value,
        params: &Value,
        record: &mut Record,
    ) -> Result<Response, GatewayError> {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": params});
        let answers = self
            .fan_out(|member| self.ask(member, request.clone(), None))
            .await;
        let mut capabilities = Map::new();
        capabilities.insert("tools".into(), json!({}));
        let mut version = None;
        let mut sessions = BTreeMap::new();
        let mut unavailable = Vec::new();
        for (member, answer) in answers {
            match answer {
                Answer::Result(result, session) => {
                    if let Some(Value::Object(theirs)) = result.get("capabilities") {
                        for family in ["tools", "prompts", "resources"] {
                            if theirs.contains_key(family) {
                                capabilities.insert(family.into(), json!({}));
                            }
                        }
                    }
                    version = version.or_else(|| result.get("protocolVersion").cloned());
                    if let Some(session) = session {
                        sessions.insert(member.to_owned(), session);
                    }
                }
                Answer::Refused => {}
                Answer::Unavailable => unavailable.push(member),
            }
        }
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        join_all(sessions.iter().map(|(member, session)| {
            self.hop(member, Method::POST, Some(&initialized), Some(session))
        }))
        .await;
        let session = format!(
            "{}.{}",
            crate::secrets::random_id(16).map_err(|_| GatewayError::StateUnavailable)?,
            encode_sessions(&sessions)
        );
        self.state
            .sessions
            .bind(
                &self.server.name,
                &session,
                self.principal.owner(),
                crate::now_ms(),
            )
            .await;
        note_unavailable(record, &unavailable);
        let result = json!({
            "protocolVersion": version.or_else(|| params.get("protocolVersion").cloned()),
            "capabilities": capabilities,
            "serverInfo": {"name": &*self.server.name, "version": env!("CARGO_PKG_VERSION")},
        });
        let mut response = json_answer(id, result, Some(&unavailable));
        if let Ok(value) = HeaderValue::try_from(session) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        Ok(response)
    }

    /// A list from every member still to be paged, merged in member order.
    async fn list(
        &self,
        method: &str,
        id: &Value,
        params: &Value,
        sessions: &BTreeMap<String, String>,
        record: &mut Record,
    ) -> Result<Response, GatewayError> {
        let pages: Vec<(String, Option<String>)> = match params.get("cursor") {
            Some(Value::String(text)) => {
                MergedCursor::decode(text, &self.server.members)
                    .ok_or_else(|| GatewayError::InvalidRequest("unknown cursor".into()))?
                    .members
            }
            _ => self
                .server
                .members
                .iter()
                .map(|m| (m.to_string(), None))
                .collect(),
        };
        let key = match method {
            "tools/list" => "tools",
            "prompts/list" => "prompts",
            "resources/list" => "resources",
            _ => "resourceTemplates",
        };
        let answers = join_all(pages.iter().map(|(member, cursor)| {
            let mut params = params.clone();
            // A cursor came from the client's params, so they are an object whenever there is
            // one; an array or no params pass as they came.
            if let Value::Object(map) = &mut params {
                match cursor {
                    Some(cursor) => map.insert("cursor".into(), json!(cursor)),
                    None => map.remove("cursor"),
                };
            }
            let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            async move {
                let session = sessions.get(member).map(String::as_str);
                (member.as_str(), self.ask(member, request, session).await)
            }
        }))
        .await;
        let mut items = Vec::new();
        let mut next = MergedCursor::default();
        let mut unavailable = Vec::new();
        for (member, answer) in answers {
            let Answer::Result(result, _) = answer else {
                if matches!(answer, Answer::Unavailable) {
                    unavailable.push(member);
                }
                continue;
            };
            for mut item in result
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                // Resources keep their URIs: clients construct them (ADR 0006 §4).
                if matches!(key, "tools" | "prompts")
                    && let Some(name) = item.get("name").and_then(Value::as_str)
                {
                    item["name"] = json!(virtual_names::exposed(member, name));
                }
                items.push(item);
            }
            if let Some(cursor) = result.get("nextCursor").and_then(Value::as_str) {
                next.members
                    .push((member.to_owned(), Some(cursor.to_owned())));
            }
        }
        note_unavailable(record, &unavailable);
        let mut result = json!({ key: items });
        if !next.members.is_empty() {
            result["nextCursor"] = json!(next.encode());
        }
        Ok(json_answer(id, result, Some(&unavailable)))
    }

    /// `tools/call` or `prompts/get`: to the member whose name the request carries, under the
    /// name the member knows; its answer is relayed as it comes.
    async fn call_named(
        &self,
        method: &str,
        id: &Value,
        mut params: Value,
        sessions: &BTreeMap<String, String>,
    ) -> Result<Response, GatewayError> {
        let kind = if method == "tools/call" {
            "tool"
        } else {
            "prompt"
        };
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let unknown = || GatewayError::VirtualTargetUnknown {
            kind,
            name: name.clone(),
        };
        let target = virtual_names::resolve(&self.server.members, &name).ok_or_else(unknown)?;
        let member = target.member.to_owned();
        let session = sessions.get(&member).map(String::as_str);
        let hashed = if virtual_names::may_be_hashed(&name) || target.original.is_none() {
            self.find_hashed(&member, method, &name, session).await
        } else {
            None
        };
        let original = hashed.or(target.original).ok_or_else(unknown)?;
        // A name was found, so the params are an object; the type is checked rather than
        // assumed, since indexing a `Value` that is not one would panic.
        let Value::Object(fields) = &mut params else {
            return Err(unknown());
        };
        fields.insert("name".into(), json!(original));
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut response = self
            .hop(&member, Method::POST, Some(&request), session)
            .await;
        // The member's own session stays Gatehouse's business.
        response.headers_mut().remove(SESSION_HEADER);
        Ok(response)
    }

    /// The original name behind a hashed one, from the member's own list.
    async fn find_hashed(
        &self,
        member: &str,
        call: &str,
        exposed: &str,
        session: Option<&str>,
    ) -> Option<String> {
        let (method, key) = if call == "tools/call" {
            ("tools/list", "tools")
        } else {
            ("prompts/list", "prompts")
        };
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LOOKUP_PAGES {
            let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
            let request =
                json!({"jsonrpc": "2.0", "id": "lookup", "method": method, "params": params});
            let Answer::Result(result, _) = self.ask(member, request, session).await else {
                return None;
            };
            let found = result.get(key).and_then(Value::as_array).and_then(|items| {
                items
                    .iter()
                    .filter_map(|item| item.get("name").and_then(Value::as_str))
                    .find(|name| virtual_names::exposed(member, name) == exposed)
            });
            if let Some(found) = found {
                return Some(found.to_owned());
            }
            cursor = Some(result.get("nextCursor")?.as_str()?.to_owned());
        }
        None
    }

    /// `resources/read`: each member in order until one has the URI (a URI names no member,
    /// and rewriting URIs breaks clients that construct them).
    async fn read(
        &self,
        id: &Value,
        params: &Value,
        sessions: &BTreeMap<String, String>,
    ) -> Result<Response, GatewayError> {
        let request =
            json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": params});
        for member in self.server.members.iter() {
            let session = sessions.get(&**member).map(String::as_str);
            if let Answer::Result(result, _) = self.ask(member, request.clone(), session).await {
                return Ok(json_answer(id, result, None));
            }
        }
        Err(GatewayError::VirtualTargetUnknown {
            kind: "resource",
            name: params
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        })
    }

    /// Ends the caller's virtual session and each member's.
    async fn end_session(&self) -> Result<Response, GatewayError> {
        let sessions = self.member_sessions(false, "").await?;
        let Some(id) = self
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(GatewayError::SessionRequired);
        };
        join_all(
            sessions
                .iter()
                .map(|(member, session)| self.hop(member, Method::DELETE, None, Some(session))),
        )
        .await;
        self.state.sessions.remove(&self.server.name, id).await;
        Ok(empty(StatusCode::OK))
    }

    /// `ask` to every member at once, in member order.
    async fn fan_out<'m, F, Fut>(&'m self, ask: F) -> Vec<(&'m str, Answer)>
    where
        F: Fn(&'m str) -> Fut,
        Fut: Future<Output = Answer>,
    {
        let members: Vec<&str> = self.server.members.iter().map(|m| &**m).collect();
        let answers = join_all(members.iter().map(|m| ask(m))).await;
        members.into_iter().zip(answers).collect()
    }

    /// One request to a member, read whole within the upstream timeout.
    async fn ask(&self, member: &str, request: Value, session: Option<&str>) -> Answer {
        let gateway = &self.state.config.gateway;
        let asked = async {
            let response = self
                .hop(member, Method::POST, Some(&request), session)
                .await;
            let status = response.status();
            let session = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let events = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| starts_with_ignore_case(v, "text/event-stream"));
            let body =
                http_body_util::Limited::new(response.into_body(), gateway.max_response_bytes)
                    .collect()
                    .await
                    .ok()?
                    .to_bytes();
            Some((
                status,
                session,
                final_message(&body, events, request.get("id")),
            ))
        };
        match tokio::time::timeout(gateway.upstream_timeout, asked).await {
            Ok(Some((_, session, Some(message)))) if message.get("result").is_some() => {
                Answer::Result(message["result"].clone(), session)
            }
            Ok(Some((status, _, message))) => {
                let code = message
                    .as_ref()
                    .and_then(|m| m.pointer("/error/code"))
                    .and_then(Value::as_i64);
                if status == StatusCode::FORBIDDEN
                    || code == Some(crate::error::codes::FORBIDDEN)
                    || code == Some(crate::error::codes::RATE_LIMITED)
                {
                    Answer::Refused
                } else {
                    Answer::Unavailable
                }
            }
            _ => Answer::Unavailable,
        }
    }

    /// One message to `/{member}/mcp` through the whole gateway path, as this caller.
    fn hop<'s>(
        &'s self,
        member: &str,
        method: Method,
        message: Option<&Value>,
        session: Option<&str>,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 's>> {
        let mut request = http::Request::new(
            message.map_or_else(Body::empty, |m| Body::from(Bytes::from(m.to_string()))),
        );
        *request.method_mut() = method;
        *request.uri_mut() = format!("/{member}/mcp")
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let headers = request.headers_mut();
        for (name, value) in self.headers {
            // The caller is already identified; its credentials go nowhere further, and the
            // headers describing the body are the hop's own.
            let own = matches!(
                name.as_str(),
                "authorization"
                    | "cookie"
                    | "dpop"
                    | "content-length"
                    | "content-type"
                    | "accept"
                    | "mcp-session-id"
                    | "mcp-name"
                    | "mcp-method"
                    | "last-event-id"
            );
            if !own {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if let Some(value) = session.and_then(|s| HeaderValue::try_from(s).ok()) {
            headers.insert(SESSION_HEADER, value);
        }
        if self.headers.contains_key("mcp-method")
            && let Some(message) = message
        {
            routing_headers(headers, message);
        }
        let extensions = request.extensions_mut();
        extensions.insert(MemberHop {
            principal: self.principal.clone(),
        });
        extensions.insert(ConnectInfo(self.peer));
        if let Some(cut) = &self.cut {
            extensions.insert(cut.clone());
        }
        Box::pin(super::proxy::handle(
            State(self.state.clone()),
            Path(member.to_owned()),
            ConnectInfo(self.peer),
            request,
        ))
    }
}

/// The 2026-07-28 routing headers of the message a hop carries (its name rewritten).
fn routing_headers(headers: &mut HeaderMap, message: &Value) {
    if let Some(value) = message
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| HeaderValue::try_from(m).ok())
    {
        headers.insert("mcp-method", value);
    }
    let name = message
        .pointer("/params/name")
        .or_else(|| message.pointer("/params/uri"))
        .and_then(Value::as_str)
        .and_then(|n| HeaderValue::try_from(n).ok());
    if let Some(value) = name {
        headers.insert("mcp-name", value);
    }
}

/// The response to request `id` in a member's answer: the body itself, or the event of an
/// SSE stream that carries it.
fn final_message(body: &[u8], events: bool, id: Option<&Value>) -> Option<Value> {
    if !events {
        return serde_json::from_slice(body).ok();
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut data = String::new();
    let mut found = None;
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            data.push('\n');
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(message) = serde_json::from_str::<Value>(&data)
                && message.get("id") == id
                && (message.get("result").is_some() || message.get("error").is_some())
            {
                found = Some(message);
            }
            data.clear();
        }
    }
    found
}

fn note_unavailable(record: &mut Record, unavailable: &[&str]) {
    for member in unavailable {
        record.notes.push(format!("member_unavailable:{member}"));
    }
}

fn json_answer(id: &Value, mut result: Value, unavailable: Option<&[&str]>) -> Response {
    if let Some(members) = unavailable.filter(|m| !m.is_empty())
        && let Value::Object(map) = &mut result
    {
        map.entry("_meta")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|meta| meta.insert(UNAVAILABLE_META.into(), json!(members)));
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Each member's session, carried in the virtual session's id after its random part: the id
/// is bound to its owner like any session, and each member session to the same owner, so
/// a changed id reaches nothing of anyone else's, and no replica needs a map of its own.
fn encode_sessions(sessions: &BTreeMap<String, String>) -> String {
    B64.encode(serde_json::to_vec(sessions).unwrap_or_default())
}

fn decode_sessions(id: &str) -> Option<BTreeMap<String, String>> {
    let (_, encoded) = id.split_once('.')?;
    serde_json::from_slice(&B64.decode(encoded).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_found_among_an_sse_streams_events() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                     data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[]}}\n\n";
        let found = final_message(body, true, Some(&json!(7))).unwrap();
        assert_eq!(found["result"], json!({"tools": []}));
        assert_eq!(final_message(body, true, Some(&json!(8))), None);
    }

    #[test]
    fn member_sessions_round_trip_through_the_virtual_session_id() {
        let sessions = BTreeMap::from([("a".to_owned(), "s-1".to_owned())]);
        let id = format!("random.{}", encode_sessions(&sessions));
        assert_eq!(decode_sessions(&id), Some(sessions));
        assert_eq!(decode_sessions("random"), None);
    }
}
