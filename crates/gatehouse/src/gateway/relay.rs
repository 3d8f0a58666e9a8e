//! The way back: the upstream's reply relayed to the client, rewritten only where the
//! connection's rules need it (`tools/list` filtering, pins, response guardrails), and the
//! upstream's breaker told how the call went.

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::header;
use std::{collections::HashMap, sync::Arc};

use super::{
    proxy::Call,
    recorded::Record,
    respond::{self, ResponseRules},
    sse,
};
use crate::{
    error::GatewayError,
    upstream::{
        self, Reply, ReplyHead, ReplyKind,
        breaker::{self, Attempt},
    },
};
use gatehouse_model::pin_action::PinAction;

impl Call<'_> {
    pub(super) fn response_rules(
        &self,
        lists_tools: bool,
        tools_by_id: HashMap<String, String>,
    ) -> ResponseRules {
        let filter = (lists_tools && !self.sees_every_tool())
            .then(|| (self.grant.clone(), self.principal.narrowing.clone()));
        ResponseRules {
            filter,
            guardrails: respond::response_guardrails(&self.grant),
            tools_by_id,
            replays_answers: false,
            notes: Arc::default(),
            late: None,
            late_findings: None,
            tasks: None,
            private_lists: None,
            advertise_extensions: None,
            pins: (lists_tools && self.server.pin_action != PinAction::Off)
                .then(|| (self.server.clone(), self.state.pins.clone())),
        }
    }

    /// [`Self::relay_body`], telling the upstream's breaker how the call went: by the status,
    /// and for a body Gatehouse reads whole, by whether it could be read.
    pub(super) async fn relay(
        &self,
        reply: Reply,
        mut attempt: Attempt,
        rules: ResponseRules,
        record: &mut Record,
    ) -> Result<Response, GatewayError> {
        let failed_head = breaker::status_counts_against(reply.head.status);
        let relayed = self.relay_body(reply, rules, record).await;
        // A JSON answer that does not parse is replaced by an error for the client (respond.rs)
        // and is the upstream's fault: a healthy server does not send it.
        let unreadable = record
            .notes
            .iter()
            .any(|note| note == "upstream_message_unreadable");
        attempt.settle(
            failed_head || unreadable || relayed.as_ref().is_err_and(breaker::counts_against),
        );
        relayed
    }

    /// Streams the upstream's reply back, rewriting it only when the rules need to:
    /// `tools/list` filtering and response guardrails, event by event for SSE.
    async fn relay_body(
        &self,
        reply: Reply,
        rules: ResponseRules,
        record: &mut Record,
    ) -> Result<Response, GatewayError> {
        let Reply {
            kind,
            head,
            encoded,
            body,
            ..
        } = reply;
        // Every request asks for `identity`; an upstream that compresses anyway sends bytes
        // that neither rules nor the watch on an SSE stream's end could read, so a call the
        // trail could only guess the outcome of is refused, rules or not.
        if encoded {
            return Err(GatewayError::UpstreamEncodingUnfilterable);
        }
        let watchable = kind == ReplyKind::Events;
        let body = super::sse_watch::watch(body, watchable, &mut record.ended_mid_event);
        if !rules.needed() {
            return Ok(answer(head, Body::new(body)));
        }
        let max = self.state.config.gateway.max_response_bytes;
        let (mut head, body) = match kind {
            ReplyKind::Events => {
                let mut rules = rules;
                if !rules.guardrails.is_empty() {
                    rules.late =
                        Some((self.state.audit.clone(), record.template(&self.server.name)));
                    rules.late_findings = Some(self.state.metrics.guardrail_findings.clone());
                }
                let rules = Arc::new(rules);
                let transform: sse::Transform = Box::new(move |data: &[u8]| rules.rewrite(data));
                let events = sse::rewrite_stream(body, transform, max);
                (head, Body::from_stream(events))
            }
            ReplyKind::Json => {
                let timeout = self.state.config.gateway.upstream_read_timeout;
                let bytes = upstream::read_whole(body, max, timeout).await?;
                let rewritten = rules.rewrite(&bytes).map_or(bytes, Bytes::from);
                record.notes.extend(rules.notes.lock().drain(..));
                (head, Body::from(rewritten))
            }
            ReplyKind::Accepted | ReplyKind::Failed | ReplyKind::Unknown => {
                return respond::unfilterable(head.status, &head.headers, body, max).await;
            }
        };
        head.headers.remove(header::CONTENT_LENGTH);
        Ok(answer(head, body))
    }

    fn sees_every_tool(&self) -> bool {
        self.principal.narrowing.is_none() && self.grant.tools.iter().any(|p| p.as_str() == "*")
    }
}

fn answer(head: ReplyHead, body: Body) -> Response {
    let mut out = Response::new(body);
    *out.status_mut() = head.status;
    *out.headers_mut() = head.headers;
    out
}
