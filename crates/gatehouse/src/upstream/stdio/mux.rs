//! One stdio child shared by many callers (ADR 0006 §2): which caller each message from the
//! child belongs to, and how callers' messages are rewritten so they cannot collide or reach
//! each other's requests.
//!
//! Pure bookkeeping, no I/O: the supervisor feeds it the messages it writes and reads and
//! delivers what it answers. A caller is one client request in flight (or one session's
//! listening stream), named by a [`CallerKey`] the supervisor hands out.
//!
//! - Request ids are replaced by Gatehouse's own (`"g{n}"`), so two callers' id `1` cannot
//!   collide; the child's response goes back under the caller's original id.
//! - Progress tokens (`params._meta.progressToken`) are replaced the same way, so progress
//!   reaches the request that asked for it.
//! - `notifications/cancelled` names a request by the caller's id; it is rewritten to the
//!   child's id, and dropped if that caller has no such request in flight.
//! - Requests from the child (sampling, elicitation, roots) go to the one caller in flight;
//!   with several in flight nothing in the message says which asked, so the child is answered
//!   with an error rather than one person's prompt shown to another.

use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// A caller of the shared child, as the supervisor numbers them.
pub type CallerKey = u64;

/// The JSON-RPC error code for "the gateway cannot route this".
const INTERNAL_ERROR: i64 = -32603;
const METHOD_NOT_FOUND: i64 = -32601;

/// Why a caller's message was not passed to the child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a JSON-RPC message object")]
    NotAMessage,
    #[error("a response to a request the child did not send to this caller")]
    UnknownServerRequest,
    #[error("cancels a request this caller does not have in flight")]
    NotYourRequest,
}

/// Where a message from the child goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// To one caller; `last` when it is the response that ends the caller's request.
    To {
        caller: CallerKey,
        message: Value,
        last: bool,
    },
    /// To every caller listening for the child's own messages (list changes, log messages,
    /// resource updates).
    Broadcast(Value),
    /// Straight back to the child: Gatehouse answers it itself.
    Reply(Value),
    /// Nothing to deliver (a response or progress for a request that is gone).
    Drop,
}

struct Pending {
    caller: CallerKey,
    original_id: Value,
    progress: Option<String>,
}

/// The bookkeeping of one child's lifetime (a restarted child starts a new one).
#[derive(Default)]
pub struct Multiplexer {
    next: u64,
    /// By the id Gatehouse gave the request.
    pending: HashMap<String, Pending>,
    /// By the progress token Gatehouse gave the request: (caller, the caller's token).
    progress: HashMap<String, (CallerKey, Value)>,
    /// Requests of the child's, by its id (as JSON text), to the caller they went to.
    server_requests: HashMap<String, CallerKey>,
    /// Callers that declared each client capability (`sampling`, `elicitation`, `roots`).
    capabilities: HashMap<CallerKey, Vec<String>>,
}

impl Multiplexer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records which client capabilities `caller` declared, so a request of the child's that
    /// needs one it lacks is answered by Gatehouse.
    pub fn declare(&mut self, caller: CallerKey, capabilities: &[&str]) {
        self.capabilities.insert(
            caller,
            capabilities.iter().map(|c| (*c).to_owned()).collect(),
        );
    }

    /// Rewrites a message `caller` sends to the child. Requests get Gatehouse's id (and
    /// progress token); a cancellation is aimed at the child's id; a response to one of the
    /// child's requests must come from the caller it went to.
    pub fn outgoing(&mut self, caller: CallerKey, mut message: Value) -> Result<Value, Refused> {
        let object = message.as_object_mut().ok_or(Refused::NotAMessage)?;
        let is_request = object.contains_key("method") && object.contains_key("id");
        if is_request {
            self.next += 1;
            let id = format!("g{}", self.next);
            let original_id = object.insert("id".into(), Value::String(id.clone()));
            let progress = rewrite_progress_token(object, &id).map(|theirs| {
                self.progress.insert(id.clone(), (caller, theirs));
                id.clone()
            });
            self.pending.insert(
                id,
                Pending {
                    caller,
                    original_id: original_id.unwrap_or(Value::Null),
                    progress,
                },
            );
            return Ok(message);
        }
        if object.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let theirs = object
                .get("params")
                .and_then(|p| p.get("requestId"))
                .cloned()
                .ok_or(Refused::NotYourRequest)?;
            let ours = self
                .pending
                .iter()
                .find(|(_, p)| p.caller == caller && p.original_id == theirs)
                .map(|(id, _)| id.clone())
                .ok_or(Refused::NotYourRequest)?;
            if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
                params.insert("requestId".into(), Value::String(ours));
            }
            return Ok(message);
        }
        if !object.contains_key("method") {
            // A response: to one of the child's requests, from the caller it was sent to.
            let key = object.get("id").map(Value::to_string).unwrap_or_default();
            match self.server_requests.get(&key) {
                Some(owner) if *owner == caller => {
                    self.server_requests.remove(&key);
                    return Ok(message);
                }
                _ => return Err(Refused::UnknownServerRequest),
            }
        }
        Ok(message)
    }

    /// Routes a message the child wrote.
    pub fn incoming(&mut self, mut message: Value) -> Delivery {
        let Some(object) = message.as_object_mut() else {
            return Delivery::Drop;
        };
        let method = object
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (method, object.get("id").cloned()) {
            (None, Some(id)) => {
                let Some(pending) = id.as_str().and_then(|id| self.pending.remove(id)) else {
                    return Delivery::Drop;
                };
                if let Some(token) = &pending.progress {
                    self.progress.remove(token);
                }
                object.insert("id".into(), pending.original_id);
                Delivery::To {
                    caller: pending.caller,
                    message,
                    last: true,
                }
            }
            (Some(method), Some(id)) => self.server_request(&method, id, message),
            (Some(method), None) if method == "notifications/progress" => {
                let token = object
                    .get("params")
                    .and_then(|p| p.get("progressToken"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let Some((caller, theirs)) = token.and_then(|t| self.progress.get(&t).cloned())
                else {
                    return Delivery::Drop;
                };
                if let Some(params) = object.get_mut("params").and_then(Value::as_object_mut) {
                    params.insert("progressToken".into(), theirs);
                }
                Delivery::To {
                    caller,
                    message,
                    last: false,
                }
            }
            (Some(method), None) if method == "notifications/cancelled" => {
                // The child gave up on a request of its own; the caller holding it is told.
                let id = object
                    .get("params")
                    .and_then(|p| p.get("requestId"))
                    .map(Value::to_string)
                    .unwrap_or_default();
                match self.server_requests.remove(&id) {
                    Some(caller) => Delivery::To {
                        caller,
                        message,
                        last: false,
                    },
                    None => Delivery::Drop,
                }
            }
            (Some(_), None) => Delivery::Broadcast(message),
            (None, None) => Delivery::Drop,
        }
    }

    fn server_request(&mut self, method: &str, id: Value, message: Value) -> Delivery {
        let needs = match method {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            "ping" => None,
            _ => {
                return Delivery::Reply(error_reply(
                    id,
                    METHOD_NOT_FOUND,
                    "the gateway does not route this request to clients",
                ));
            }
        };
        let mut callers: Vec<CallerKey> = self.pending.values().map(|p| p.caller).collect();
        callers.sort_unstable();
        callers.dedup();
        let [caller] = callers[..] else {
            let why = if callers.is_empty() {
                "no client request is in flight to ask"
            } else {
                "several clients' requests are in flight and the request does not say which \
                 one it belongs to; run this server with sharing = \"per_principal\""
            };
            return Delivery::Reply(error_reply(id, INTERNAL_ERROR, why));
        };
        if let Some(capability) = needs
            && !self
                .capabilities
                .get(&caller)
                .is_some_and(|declared| declared.iter().any(|c| c == capability))
        {
            return Delivery::Reply(error_reply(
                id,
                METHOD_NOT_FOUND,
                &format!("the client did not declare the {capability} capability"),
            ));
        }
        self.server_requests.insert(id.to_string(), caller);
        Delivery::To {
            caller,
            message,
            last: false,
        }
    }

    /// A caller that went away: its requests' responses will be dropped, and requests of the
    /// child's it held are answered with an error (returned, to write to the child).
    pub fn forget(&mut self, caller: CallerKey) -> Vec<Value> {
        self.pending.retain(|_, p| p.caller != caller);
        self.progress.retain(|_, (c, _)| *c != caller);
        self.capabilities.remove(&caller);
        let mut orphaned = Vec::new();
        self.server_requests.retain(|id, c| {
            if *c == caller {
                if let Ok(id) = serde_json::from_str::<Value>(id) {
                    orphaned.push(error_reply(id, INTERNAL_ERROR, "the client went away"));
                }
                false
            } else {
                true
            }
        });
        orphaned
    }

    /// The child died: every request in flight, with the error each caller gets.
    pub fn fail_all(&mut self, reason: &str) -> Vec<(CallerKey, Value)> {
        self.progress.clear();
        self.server_requests.clear();
        self.pending
            .drain()
            .map(|(_, p)| (p.caller, error_reply(p.original_id, INTERNAL_ERROR, reason)))
            .collect()
    }

    /// Requests in flight (for the supervisor's drain and metrics).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

/// Replaces `params._meta.progressToken` with `ours`, returning the caller's token.
fn rewrite_progress_token(object: &mut Map<String, Value>, ours: &str) -> Option<Value> {
    let meta = object
        .get_mut("params")?
        .as_object_mut()?
        .get_mut("_meta")?
        .as_object_mut()?;
    let theirs = meta.get("progressToken")?.clone();
    meta.insert("progressToken".into(), Value::String(ours.to_owned()));
    Some(theirs)
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: Value, tool: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": tool, "_meta": {"progressToken": "p1"}}})
    }

    #[test]
    fn two_callers_with_the_same_id_get_their_own_responses() {
        let mut mux = Multiplexer::new();
        let a = mux.outgoing(1, call(json!(1), "echo")).unwrap();
        let b = mux.outgoing(2, call(json!(1), "add")).unwrap();
        assert_ne!(a["id"], b["id"], "ids are Gatehouse's own");
        assert_ne!(
            a["params"]["_meta"]["progressToken"],
            b["params"]["_meta"]["progressToken"]
        );
        // The child answers b first.
        let delivery = mux.incoming(json!({"jsonrpc": "2.0", "id": b["id"], "result": {}}));
        assert_eq!(
            delivery,
            Delivery::To {
                caller: 2,
                message: json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
                last: true
            }
        );
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": a["params"]["_meta"]["progressToken"], "progress": 1}});
        let Delivery::To {
            caller, message, ..
        } = mux.incoming(progress)
        else {
            panic!("progress is routed")
        };
        assert_eq!(
            (caller, &message["params"]["progressToken"]),
            (1, &json!("p1"))
        );
        // A second response to b's request (a confused child) reaches nobody.
        assert_eq!(
            mux.incoming(json!({"jsonrpc": "2.0", "id": b["id"], "result": {}})),
            Delivery::Drop
        );
        assert_eq!(mux.in_flight(), 1);
    }

    #[test]
    fn a_caller_cancels_only_its_own_requests() {
        let mut mux = Multiplexer::new();
        let a = mux.outgoing(1, call(json!("x"), "slow")).unwrap();
        let cancel = |id: &str| {
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": id}})
        };
        assert_eq!(mux.outgoing(2, cancel("x")), Err(Refused::NotYourRequest));
        let sent = mux.outgoing(1, cancel("x")).unwrap();
        assert_eq!(sent["params"]["requestId"], a["id"]);
    }

    #[test]
    fn a_server_request_goes_to_the_one_caller_in_flight_and_only_it_may_answer() {
        let mut mux = Multiplexer::new();
        mux.declare(1, &["sampling"]);
        mux.outgoing(1, call(json!(7), "sample")).unwrap();
        let ask = json!({"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage",
                         "params": {}});
        assert_eq!(
            mux.incoming(ask.clone()),
            Delivery::To {
                caller: 1,
                message: ask,
                last: false
            }
        );
        let answer = json!({"jsonrpc": "2.0", "id": 0, "result": {"content": {}}});
        assert_eq!(
            mux.outgoing(2, answer.clone()),
            Err(Refused::UnknownServerRequest)
        );
        assert_eq!(mux.outgoing(1, answer.clone()), Ok(answer.clone()));
        assert_eq!(
            mux.outgoing(1, answer),
            Err(Refused::UnknownServerRequest),
            "answered once"
        );
    }

    #[test]
    fn a_server_request_that_cannot_be_attributed_is_refused_not_guessed() {
        let mut mux = Multiplexer::new();
        mux.declare(1, &["sampling"]);
        mux.declare(2, &["sampling"]);
        mux.outgoing(1, call(json!(1), "sample")).unwrap();
        mux.outgoing(2, call(json!(1), "sample")).unwrap();
        let ask = json!({"jsonrpc": "2.0", "id": 5, "method": "sampling/createMessage"});
        let Delivery::Reply(reply) = mux.incoming(ask) else {
            panic!("answered by the gateway")
        };
        assert_eq!(
            (reply["id"].clone(), reply["error"]["code"].clone()),
            (json!(5), json!(-32603))
        );
        // Nobody in flight: refused too.
        let mut idle = Multiplexer::new();
        let ask = json!({"jsonrpc": "2.0", "id": 6, "method": "roots/list"});
        assert!(matches!(idle.incoming(ask), Delivery::Reply(_)));
    }

    #[test]
    fn a_capability_the_caller_did_not_declare_is_answered_by_the_gateway() {
        let mut mux = Multiplexer::new();
        mux.declare(1, &["roots"]);
        mux.outgoing(1, call(json!(1), "ask")).unwrap();
        let ask = json!({"jsonrpc": "2.0", "id": 9, "method": "elicitation/create"});
        let Delivery::Reply(reply) = mux.incoming(ask) else {
            panic!("answered by the gateway")
        };
        assert_eq!(reply["error"]["code"], json!(-32601));
    }

    #[test]
    fn notifications_without_a_request_are_broadcast() {
        let mut mux = Multiplexer::new();
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert_eq!(mux.incoming(changed.clone()), Delivery::Broadcast(changed));
    }

    #[test]
    fn a_crash_fails_every_request_in_flight_under_its_callers_ids() {
        let mut mux = Multiplexer::new();
        mux.outgoing(1, call(json!(1), "a")).unwrap();
        mux.outgoing(2, call(json!("two"), "b")).unwrap();
        let mut failed = mux.fail_all("the server process exited");
        failed.sort_by_key(|(caller, _)| *caller);
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].1["id"], json!(1));
        assert_eq!(failed[1].1["id"], json!("two"));
        assert_eq!(failed[1].1["error"]["code"], json!(-32603));
        assert_eq!(mux.in_flight(), 0);
    }

    #[test]
    fn a_caller_that_goes_away_leaves_no_request_of_the_childs_unanswered() {
        let mut mux = Multiplexer::new();
        mux.declare(1, &["elicitation"]);
        mux.outgoing(1, call(json!(1), "ask")).unwrap();
        let ask = json!({"jsonrpc": "2.0", "id": 3, "method": "elicitation/create"});
        assert!(matches!(mux.incoming(ask), Delivery::To { caller: 1, .. }));
        let orphaned = mux.forget(1);
        assert_eq!(orphaned.len(), 1);
        assert_eq!(orphaned[0]["id"], json!(3));
        assert_eq!(mux.in_flight(), 0);
    }
}
