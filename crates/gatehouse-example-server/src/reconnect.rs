//! SEP-1699 (SSE polling) fixture: the `test_reconnection` tool.
//!
//! The server closes the POST SSE stream of a `test_reconnection` call right after the priming
//! event (which carries an event id and a `retry` hint), before the tool has answered. The
//! client resumes with `GET` + `Last-Event-ID` and receives the answer on the resumed stream.
//!
//! rmcp keeps request streams resumable (events are cached per request until the response is
//! delivered), but offers no way for a tool to close its own stream, so this is done by a thin
//! [`SessionManager`] wrapper around [`LocalSessionManager`] that ends that one stream early.

use std::{sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use rmcp::{
    model::{ClientJsonRpcMessage, ClientRequest, JsonRpcRequest, ServerJsonRpcMessage},
    transport::streamable_http_server::session::{
        EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
        local::LocalSessionManager,
    },
};

/// The tool whose POST stream the server closes before answering.
pub(crate) const RECONNECTION_TOOL: &str = "test_reconnection";

/// How long `test_reconnection` waits before answering. It is longer than the SSE `retry`
/// hint (3 s, the rmcp default) so that a client honouring the hint has resumed the stream
/// before the answer is sent: rmcp drops a request's event cache once it has answered.
pub(crate) const RECONNECTION_DELAY: Duration = Duration::from_millis(3_500);

/// [`LocalSessionManager`] that closes the POST stream of `test_reconnection` calls after
/// their first (priming) event. Everything else is delegated unchanged.
#[derive(Debug, Default)]
pub(crate) struct ReconnectingSessionManager {
    inner: LocalSessionManager,
}

fn is_reconnection_call(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        ClientJsonRpcMessage::Request(JsonRpcRequest {
            request: ClientRequest::CallToolRequest(call),
            ..
        }) if call.params.name == RECONNECTION_TOOL
    )
}

impl SessionManager for ReconnectingSessionManager {
    type Error = <LocalSessionManager as SessionManager>::Error;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // The first event of a request stream is the priming event (rmcp sends one whenever
        // an SSE retry interval is configured, which it is by default).
        let events = if is_reconnection_call(&message) {
            1
        } else {
            usize::MAX
        };
        let stream = self.inner.create_stream(id, message).await?;
        Ok(stream.take(events))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, RequestId};

    use super::*;

    fn call(name: &'static str) -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::request(
            ClientRequest::CallToolRequest(CallToolRequest::new(CallToolRequestParams::new(name))),
            RequestId::Number(1),
        )
    }

    #[test]
    fn only_reconnection_calls_are_cut_short() {
        assert!(is_reconnection_call(&call(RECONNECTION_TOOL)));
        assert!(!is_reconnection_call(&call("echo")));
    }
}
