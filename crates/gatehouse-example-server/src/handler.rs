//! The MCP request handler: one instance per session.
// Logging and `resources/subscribe` are deprecated in rmcp by SEP-2577 (protocol 2026-07-28),
// but they are part of the 2025-06-18 and 2025-11-25 protocols this server implements.
#![allow(deprecated)]

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU8, Ordering},
    },
};

use rmcp::{
    ErrorData as McpError, Peer, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
        GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
        LoggingMessageNotificationParam, PaginatedRequestParams, ReadResourceRequestParams,
        ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, UnsubscribeRequestParams,
    },
    service::{RequestContext, ServiceError},
};
use serde_json::json;

use crate::{demo_tools, fixtures};

const INSTRUCTIONS: &str = "Gatehouse example server. Demo tools: echo, add, current_time and \
     delete_records (a dangerous tool the demo policy does not grant). The test_* tools, \
     test:// resources and test_* prompts are fixtures of the MCP conformance suite.";

/// Per-session MCP handler.
#[derive(Clone, Default)]
pub(crate) struct ExampleHandler {
    session: Arc<Session>,
}

/// State of one MCP session: its log level and resource subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Log notifications below this severity are dropped (0 = debug: everything is sent).
    min_log_severity: AtomicU8,
    subscriptions: Mutex<BTreeSet<String>>,
}

impl Session {
    /// Send a `notifications/message` to the client unless `level` is below the level the
    /// client set with `logging/setLevel`.
    pub(crate) async fn log(
        &self,
        peer: &Peer<RoleServer>,
        level: LoggingLevel,
        logger: &str,
        message: &str,
    ) -> Result<(), ServiceError> {
        if severity(level) < self.min_log_severity.load(Ordering::Relaxed) {
            return Ok(());
        }
        let params =
            LoggingMessageNotificationParam::new(level, json!(message)).with_logger(logger);
        peer.notify_logging_message(params).await
    }

    fn set_log_level(&self, level: LoggingLevel) {
        self.min_log_severity
            .store(severity(level), Ordering::Relaxed);
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // The set stays consistent even if a holder panicked: every update is one call.
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions().contains(uri)
    }
}

/// RFC 5424 severity order of the MCP log levels (debug lowest).
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl ServerHandler for ExampleHandler {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("gatehouse-example-server", env!("CARGO_PKG_VERSION"))
                    .with_title("Gatehouse example MCP server"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = demo_tools::tools();
        tools.extend(fixtures::tools::list());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        let name = request.name.as_ref();
        if let Some(result) = demo_tools::call(name, &args) {
            return Ok(result.into());
        }
        match fixtures::tools::call(name, &args, &context, &self.session).await {
            Some(result) => Ok(result.into()),
            None => Err(McpError::invalid_params(
                format!("Unknown tool: {name}"),
                Some(json!({ "name": name })),
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(
            fixtures::resources::list(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            fixtures::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        fixtures::resources::read(&request.uri).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !fixtures::resources::exists(&request.uri) {
            return Err(McpError::resource_not_found(
                format!("Resource not found: {}", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        }
        self.session.subscriptions().insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session.subscriptions().remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(fixtures::prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        fixtures::prompts::get(&request.name, &args).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let completion = fixtures::complete(
            &request.r#ref,
            &request.argument.name,
            &request.argument.value,
        );
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session.set_log_level(request.level);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_advertise_every_feature() {
        let info = serde_json::to_value(ExampleHandler::default().get_info()).unwrap();
        let capabilities = &info["capabilities"];
        for capability in ["tools", "resources", "prompts", "logging", "completions"] {
            assert!(capabilities.get(capability).is_some(), "{capability}");
        }
        assert_eq!(capabilities["resources"]["subscribe"], true);
        assert_eq!(info["serverInfo"]["name"], "gatehouse-example-server");
    }

    #[test]
    fn severity_is_ordered() {
        assert!(severity(LoggingLevel::Debug) < severity(LoggingLevel::Info));
        assert!(severity(LoggingLevel::Error) < severity(LoggingLevel::Emergency));
    }

    #[test]
    fn subscriptions_are_tracked() {
        let session = Session::default();
        session
            .subscriptions()
            .insert("test://watched-resource".into());
        assert!(session.is_subscribed("test://watched-resource"));
        session.subscriptions().remove("test://watched-resource");
        assert!(!session.is_subscribed("test://watched-resource"));
    }
}
