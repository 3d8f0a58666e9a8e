//! One request through the gateway: identify → connection → authorise → upstream → relay,
//! with exactly one audit event whatever happens.

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, Request, State},
    response::Response,
};
use http::{HeaderMap, HeaderValue, Method, header, request::Parts};
use serde_json::Value;
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use crate::{
    context::AppState,
    edge::serve::ConnectionCut,
    error::{ErrorContext, GatewayError},
    gateway::{
        authorize,
        discovery::PrivateLists,
        identify::identify,
        inspect, observe,
        recorded::{Ending, Record},
        request_body::{declared_length, drain, read_body, starts_with_ignore_case},
        session::SessionCheck,
        tasks,
    },
    grants::Grant,
    guardrails::Direction,
    identity::Principal,
    policy::{self, Facts, client_ip},
    snapshot::{ServerEntry, Snapshot},
    upstream::{
        self, Action, Exchange, Reply, Route, SessionChange, SessionId, Upstream,
        breaker::{self, Attempt},
    },
};
use gatehouse_model::{
    audit::{BatchEntry, Decision},
    jsonrpc::{self, Kind},
    names::{Name, NameKind},
};

// A `HeaderName`, not a `&str`: a lookup by `&str` parses and lower-cases the name each time.
const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

pub async fn handle(
    State(state): State<AppState>,
    Path(server): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let Some(_permit) = state.in_flight.admit() else {
        return crate::edge::limit::overloaded(&state.metrics, started);
    };
    let snapshot = state.snapshot.current();
    let request_id = state.next_request_id();
    let client_ip = client_ip::resolve(peer.ip(), request.headers(), &state.config.policy);
    // Armed from here: whatever ends this request, its event is written (recorded.rs).
    // This connection's view of the shutdown cut (edge/serve.rs); the server-wide token only
    // for a request that did not come through the accept loop.
    let cut = request
        .extensions()
        .get::<ConnectionCut>()
        .map_or_else(|| state.audit.cut_signal(), |cut| cut.0.clone());
    let entry = snapshot.servers.get(&server);
    let mut record = Record::new(
        &state,
        started,
        request_id.clone(),
        client_ip,
        // Unknown names are the caller's words: record them only when they could be a name.
        if entry.is_some() || Name::parse(NameKind::Server, &server).is_ok() {
            server.clone()
        } else {
            "(invalid)".to_owned()
        },
        request.method().as_str().to_owned(),
        cut.clone(),
    );
    record.metrics_server = entry.map(|s| s.name.clone());
    record.trace = state.telemetry.request(request.headers());
    let (parts, body) = request.into_parts();
    let declared = declared_length(&parts.headers);
    let mut unread = Some(body);
    let outcome = tokio::select! {
        outcome = proxy(&state, &snapshot, &server, parts, &mut unread, &mut record) => outcome,
        // Shutdown's grace period is over: dropping the record writes the event.
        () = cut.cancelled() => {
            let rpc_id = record.rpc_id.take();
            return shutting_down(record, rpc_id);
        }
    };
    let (mut response, decision, reason, code) = match outcome {
        Ok(response) => {
            let notes = std::mem::take(&mut record.notes);
            for note in &notes {
                state.metrics.guardrail_note(note);
            }
            (
                response,
                Decision::Allow,
                (!notes.is_empty()).then(|| notes.join(",")),
                "-",
            )
        }
        Err(err) => {
            let entry = snapshot.servers.get(&server);
            let ctx = ErrorContext {
                rpc_id: record.rpc_id.as_ref(),
                server: entry.map(|s| &*s.name),
                resource_metadata: entry.map(|s| s.resource_metadata_url.as_str()),
            };
            let decision = if err.is_upstream_failure() {
                Decision::Error
            } else {
                Decision::Deny
            };
            observe::count_refusal(&state.metrics, entry.map(|s| &*s.name), &err);
            record.rule = err.audit_rule();
            let reason = err.audit_reason();
            let code = err.reason();
            (err.into_response(&ctx), decision, Some(reason), code)
        }
    };
    if let Some(body) = unread {
        // A refusal sent before the body was read leaves the body on the wire. Reading it
        // (after the answer has gone, bounded) keeps a kept-alive connection usable; clients
        // such as httpx reuse it and would otherwise see it drop under their next request.
        let max = state.config.gateway.max_body_bytes;
        if declared.is_some_and(|len| len > max as u64) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else {
            tokio::spawn(drain(body, max));
        }
    }
    if let Ok(value) = HeaderValue::try_from(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let ending = Ending {
        decision,
        reason,
        code,
        status: response.status().as_u16(),
        head: started.elapsed(),
    };
    if decision == Decision::Allow {
        // The upstream's body is still to come: the event says how it ends.
        return record.follow(response, ending);
    }
    if code == "audit_unavailable" {
        record.finish_detached(ending);
        return response;
    }
    record.finish(ending, None).await;
    response
}

/// The answer to a request cut by shutdown before its response was ready; dropping the
/// record writes its event (outcome `shutdown`).
fn shutting_down(record: Record, rpc_id: Option<Value>) -> Response {
    drop(record);
    let ctx = ErrorContext {
        rpc_id: rpc_id.as_ref(),
        ..ErrorContext::default()
    };
    let mut response = GatewayError::ShuttingDown.into_response(&ctx);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn proxy(
    state: &AppState,
    snapshot: &Snapshot,
    server_name: &str,
    mut parts: Parts,
    unread: &mut Option<Body>,
    record: &mut Record,
) -> Result<Response, GatewayError> {
    let hop = parts
        .extensions
        .remove::<super::virtual_server::MemberHop>();
    let server = snapshot.servers.get(server_name).ok_or_else(|| {
        if snapshot.unavailable_servers.contains_key(server_name) {
            GatewayError::ServerUnavailable
        } else {
            GatewayError::UnknownServer
        }
    })?;
    state.access.check(&parts.headers)?;
    record.begin_phase("identify");
    // A virtual server's hop to a member carries the caller it identified (ADR 0006 §4).
    let nested = hop.is_some() && !server.members.is_empty();
    let principal = match hop {
        Some(hop) => hop.principal,
        None => identify(state, snapshot, &parts, server, record).await?,
    };
    record.end_phase();
    if nested {
        // Refused when configured; stored rows could still nest, and would loop.
        return Err(GatewayError::ServerUnavailable);
    }
    if !server.members.is_empty() {
        return super::virtual_server::serve(state, server, principal, parts, unread, record).await;
    }
    let grant = match (principal.user.as_deref(), principal.client.as_deref()) {
        _ if principal.grant.is_some() => {
            principal.grant.clone().ok_or(GatewayError::NoConnection)?
        }
        (Some(user), client) => snapshot
            .delegated_grant(user, client, server_name)
            .ok_or(GatewayError::NoConnection)?,
        (None, Some(client)) => snapshot
            .grant(client, server_name)
            .ok_or(GatewayError::NoConnection)?
            .clone(),
        (None, None) => server
            .anonymous_grant
            .clone()
            .ok_or(GatewayError::MissingCredential)?,
    };
    let call = Call {
        state,
        server,
        principal: &principal,
        grant,
        client_ip: record.client_ip,
    };
    match parts.method {
        Method::POST => {
            let body = unread.take().unwrap_or_default();
            call.post(parts, body, record).await
        }
        Method::GET => call.get(parts, record).await,
        Method::DELETE => call.delete(parts, record).await,
        _ => Err(GatewayError::MethodNotAllowed {
            allow: "GET, POST, DELETE",
        }),
    }
}

pub(super) struct Call<'a> {
    pub(super) state: &'a AppState,
    pub(super) server: &'a Arc<ServerEntry>,
    pub(super) principal: &'a Principal,
    pub(super) grant: Arc<Grant>,
    client_ip: IpAddr,
}

impl Call<'_> {
    async fn post(
        &self,
        mut parts: Parts,
        body: Body,
        record: &mut Record,
    ) -> Result<Response, GatewayError> {
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| starts_with_ignore_case(v.trim_start(), "application/json"));
        if !is_json {
            return Err(GatewayError::UnsupportedMediaType);
        }
        let bytes = read_body(
            &parts.headers,
            body,
            self.state.config.gateway.max_body_bytes,
        )
        .await?;
        let mut envelope = jsonrpc::parse_with(&bytes, self.state.config.gateway.parse_limits())?;
        if let Some(first) = envelope.first() {
            if !envelope.batch && first.kind == Kind::Request {
                record.rpc_id = first.id.clone();
            }
            record.rpc_method = Some(if envelope.batch {
                format!("batch[{}]", envelope.messages.len())
            } else if first.kind == Kind::Response {
                "response".to_owned()
            } else {
                clip(first.method()).to_owned()
            });
        }
        // Named before the decision, so a refused call is audited with what it asked for.
        record.tool = envelope
            .messages
            .iter()
            .find(|m| m.method() == "tools/call")
            .and_then(|m| m.param_str("name"))
            .map(|name| clip(name).to_owned());
        if envelope.batch {
            record.batch = envelope.messages.iter().map(batch_entry).collect();
        }
        let stateless = authorize::protocol_era(&parts.headers, Some(&envelope))?;
        if let Some(trace) = record.trace.as_mut() {
            observe::open_trace(
                trace,
                &parts.headers,
                &envelope,
                &self.server.name,
                stateless,
            );
        }
        authorize::check_routing_headers(&parts.headers, &envelope, stateless)?;
        let verdict = authorize::authorize(
            &envelope,
            &self.grant,
            self.principal.narrowing.as_deref(),
            self.principal
                .scope
                .as_deref()
                .map(|scope| (&*self.server.name, scope)),
            self.server.allow_unknown_methods,
            stateless,
        )?;
        let task_tool = tasks::check_requests(
            &*self.state.tasks,
            &self.server.name,
            self.principal.owner(),
            &envelope,
            |tool| {
                self.grant
                    .allows_tool(tool, self.principal.narrowing.as_deref())
            },
        )
        .await?;
        let tool_calls: Vec<&jsonrpc::Message> = envelope
            .messages
            .iter()
            .filter(|m| m.kind == Kind::Request && m.method() == "tools/call")
            .collect();
        record.begin_phase("policies");
        if tool_calls.is_empty() {
            self.enforce(None, None).await?;
        }
        let mut tools_by_id = HashMap::new();
        let has_response_guardrails = self
            .grant
            .guardrails
            .iter()
            .any(|g| g.direction.covers(Direction::Response));
        for call in tool_calls {
            let arguments = call.params.as_ref().and_then(|p| p.get("arguments"));
            self.enforce(call.param_str("name"), arguments).await?;
            if let Some(name) = call.param_str("name")
                && self.state.pins.blocks_call(
                    &self.server.name,
                    name,
                    &self.server.pins,
                    self.server.pin_action,
                )
            {
                return Err(GatewayError::ToolPendingApproval {
                    tool: name.to_owned(),
                });
            }
            // Only response guardrails look a result's tool up by its request id.
            if has_response_guardrails
                && let (Some(id), Some(name)) = (&call.id, call.param_str("name"))
            {
                tools_by_id.insert(id.to_string(), name.to_owned());
            }
        }
        record.begin_phase("guardrails");
        let inspected = inspect::inspect_request(&self.grant, &mut envelope)?;
        record.end_phase();
        record.notes.extend(inspected.notes);
        let mut bytes = inspected.rewritten.unwrap_or(bytes);
        let session = self.bound_session(&parts.headers, stateless).await?;
        if let Some(trace) = record.trace.as_mut() {
            // The upstream call's context goes on in the headers and in every message's
            // `params._meta`; the body is serialised again from the parse.
            let cx = trace.upstream(&self.server.upstream);
            bytes = observe::propagate(&cx, &mut parts.headers, &mut envelope)?;
        }
        let injected = super::upstream_auth::injected_headers(
            self.state,
            self.server,
            self.principal,
            &record.request_id,
        )
        .await
        .map_err(|e| e.in_era(stateless, single_method(&envelope)))?;
        let route = upstream::route(
            self.server,
            &self.upstreams(),
            envelope
                .messages
                .iter()
                .find(|m| m.method() == "tools/call")
                .and_then(|m| m.param_str("name"))
                .or(task_tool.as_deref()),
            &injected,
        );

        let mut rules = self.response_rules(verdict.lists_tools, tools_by_id);
        rules.tasks = tasks::rules_for(
            &self.state.tasks,
            &self.server.name,
            self.principal.owner(),
            &envelope,
        );
        if rules.filter.is_some() {
            rules.private_lists = Some(PrivateLists {
                max_ttl_ms: u64::try_from(self.state.config.snapshot.poll_interval.as_millis())
                    .unwrap_or(u64::MAX),
                stateless_era: stateless,
            });
        }
        rules.advertise_extensions = envelope
            .messages
            .iter()
            .any(|m| m.kind == Kind::Request && m.method() == "server/discover")
            .then(|| crate::gateway::discovery::GatewayExtensions::of(&self.state.config));
        let exchange = Exchange {
            action: Action::Send {
                bytes,
                envelope: &envelope,
            },
            session: session.as_ref(),
            headers: &parts.headers,
        };
        let (reply, mut attempt) = self.send(&route, exchange, record).await?;
        if let Some(refusal) = super::upstream_auth::refused_person_token(
            self.state,
            self.server,
            self.principal,
            reply.head.status,
        )
        .await
        {
            attempt.settle(false);
            return Err(refusal.in_era(stateless, single_method(&envelope)));
        }
        self.follow_session(session.as_ref(), &reply.session).await;
        self.relay(reply, attempt, rules, record).await
    }

    async fn get(&self, parts: Parts, record: &mut Record) -> Result<Response, GatewayError> {
        if authorize::protocol_era(&parts.headers, None)? {
            return Err(GatewayError::MethodNotAllowed { allow: "POST" });
        }
        let session = self.bound_session(&parts.headers, false).await?;
        self.enforce(None, None).await?;
        // A resumed stream may replay a `tools/list` result: filter the stream by shape. A
        // stdio stream Gatehouse kept names the tool its request called, for guardrails; an
        // answer whose call is unknown (an HTTP upstream's replay) gets every guardrail.
        let resumed = upstream::stdio::resumed_tools(
            &*self.state.event_streams,
            &self.server.name,
            session.as_ref().map(SessionId::as_str),
            &parts.headers,
        );
        let mut rules = self.response_rules(true, resumed);
        rules.replays_answers = true;
        let injected = super::upstream_auth::injected_headers(
            self.state,
            self.server,
            self.principal,
            &record.request_id,
        )
        .await?;
        let route = upstream::route(self.server, &self.upstreams(), None, &injected);
        let exchange = Exchange {
            action: Action::Listen,
            session: session.as_ref(),
            headers: &parts.headers,
        };
        let (reply, attempt) = self.send(&route, exchange, record).await?;
        self.follow_session(session.as_ref(), &reply.session).await;
        self.relay(reply, attempt, rules, record).await
    }

    async fn delete(&self, parts: Parts, record: &mut Record) -> Result<Response, GatewayError> {
        if authorize::protocol_era(&parts.headers, None)? {
            return Err(GatewayError::MethodNotAllowed { allow: "POST" });
        }
        let session = self
            .bound_session(&parts.headers, false)
            .await?
            .ok_or(GatewayError::SessionRequired)?;
        self.enforce(None, None).await?;
        let rules = self.response_rules(false, HashMap::new());
        let injected = super::upstream_auth::injected_headers(
            self.state,
            self.server,
            self.principal,
            &record.request_id,
        )
        .await?;
        let route = upstream::route(self.server, &self.upstreams(), None, &injected);
        let exchange = Exchange {
            action: Action::End,
            session: Some(&session),
            headers: &parts.headers,
        };
        let (reply, attempt) = self.send(&route, exchange, record).await?;
        self.follow_session(Some(&session), &reply.session).await;
        self.relay(reply, attempt, rules, record).await
    }

    /// Keeps the session map in step with what the upstream did: a session it issued belongs
    /// to the caller; one it ended is forgotten.
    async fn follow_session(&self, sent: Option<&SessionId>, change: &SessionChange) {
        match change {
            SessionChange::Issued(id) => {
                // Bound before the answer is released: the client may send its next request
                // through another replica.
                self.state
                    .sessions
                    .bind(
                        &self.server.name,
                        id.as_str(),
                        self.principal.owner(),
                        crate::now_ms(),
                    )
                    .await;
            }
            SessionChange::Ended => {
                if let Some(id) = sent {
                    self.state
                        .sessions
                        .remove(&self.server.name, id.as_str())
                        .await;
                }
            }
            SessionChange::None => {}
        }
    }

    /// What this call reaches upstreams through: the HTTP pool, or the caller's stdio child.
    fn upstreams(&self) -> upstream::Upstreams<'_> {
        let gateway = &self.state.config.gateway;
        upstream::Upstreams {
            http: &self.state.upstream,
            stdio: &*self.state.stdio,
            stdio_timeouts: upstream::stdio::StdioTimeouts {
                start: gateway.stdio_start_timeout,
                head: gateway.upstream_timeout,
                poll_after: (!gateway.sse_poll_after.is_zero()).then_some(gateway.sse_poll_after),
                retry: gateway.sse_retry,
            },
            event_streams: &self.state.event_streams,
            owner: self.principal.owner(),
        }
    }

    /// The connection's policies, in order (docs/policies.md).
    async fn enforce(
        &self,
        tool: Option<&str>,
        arguments: Option<&Value>,
    ) -> Result<(), GatewayError> {
        if self.grant.policies.is_empty() {
            return Ok(());
        }
        let facts = Facts {
            client: self.principal.client.as_deref(),
            key_id: self.principal.key_id(),
            user: self.principal.user.as_deref(),
            ip: self.client_ip,
            server: &self.server.name,
            tool,
            arguments,
            now: jiff::Timestamp::now(),
        };
        policy::enforce(&self.grant.policies, &facts)
            .await
            .map_err(GatewayError::from)
    }

    /// The request's session id, if it has one, after checking that it belongs to the caller.
    /// Stateless-era requests carry no sessions: a stray header is ignored, never forwarded
    /// unchecked (a dual-era upstream would run the request in that session); only the
    /// session returned here reaches the upstream (`Exchange::session`).
    async fn bound_session(
        &self,
        headers: &HeaderMap,
        stateless: bool,
    ) -> Result<Option<SessionId>, GatewayError> {
        if stateless {
            return Ok(None);
        }
        let mut values = headers.get_all(SESSION_HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return if headers.contains_key(SESSION_HEADER) {
                // The upstream might act on either copy; only one can have been checked.
                Err(GatewayError::InvalidRequest(
                    "more than one Mcp-Session-Id header".into(),
                ))
            } else {
                Ok(None)
            };
        };
        let id = SessionId::from_client(value).ok_or(GatewayError::SessionNotFound)?;
        let checked = self
            .state
            .sessions
            .check(
                &self.server.name,
                id.as_str(),
                self.principal.owner(),
                crate::now_ms(),
            )
            .await;
        match checked {
            SessionCheck::Owned => Ok(Some(id)),
            SessionCheck::NotFound => Err(GatewayError::SessionNotFound),
        }
    }

    async fn send(
        &self,
        route: &Route<'_>,
        exchange: Exchange<'_>,
        record: &mut Record,
    ) -> Result<(Reply, Attempt), GatewayError> {
        self.state
            .audit
            .admit()
            .await
            .map_err(|_| GatewayError::AuditUnavailable)?;
        let mut attempt = self
            .state
            .breakers
            .admit(&self.server.name, &self.server.upstream)?;
        record.forwarded = true;
        if let Some(trace) = record.trace.as_mut() {
            trace.upstream(&self.server.upstream);
        }
        let asked = Instant::now();
        let sent = route.upstream.send(exchange).await;
        record.upstream_elapsed = Some(asked.elapsed());
        if let Some(trace) = record.trace.as_mut() {
            trace.upstream_done(sent.as_ref().ok().map(|r| r.head.status.as_u16()));
        }
        let reply = match sent {
            Ok(reply) => reply,
            Err(err) => {
                attempt.settle(breaker::counts_against(&err));
                return Err(err);
            }
        };
        record.upstream_status = Some(reply.head.status.as_u16());
        Ok((reply, attempt))
    }
}

/// What the audit trail keeps of one message of a batch.
/// The method of a body holding one message, for answers that depend on it.
fn single_method(envelope: &jsonrpc::Envelope) -> Option<&str> {
    (!envelope.batch)
        .then(|| envelope.messages.first())
        .flatten()
        .map(|m| m.method())
}

fn batch_entry(message: &jsonrpc::Message) -> BatchEntry {
    let method = if message.kind == Kind::Response {
        "response"
    } else {
        clip(message.method())
    };
    BatchEntry {
        method: method.to_owned(),
        tool: (message.method() == "tools/call")
            .then(|| message.param_str("name"))
            .flatten()
            .map(|name| clip(name).to_owned()),
    }
}

/// The first 128 characters: what the audit trail keeps of a caller-chosen name.
fn clip(text: &str) -> &str {
    text.char_indices()
        .nth(128)
        .map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_128_characters_on_a_character_boundary() {
        assert_eq!(clip("tools/call"), "tools/call");
        let long = "é".repeat(200);
        assert_eq!(clip(&long).chars().count(), 128);
        assert_eq!(clip(&long).len(), 256);
        let exact = "a".repeat(128);
        assert_eq!(clip(&exact), exact);
    }
}
