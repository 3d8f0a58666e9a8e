//! The bundled example MCP server of Gatehouse.
//!
//! A Streamable HTTP MCP server (built on `rmcp`) serving at `/mcp`. It carries two sets of
//! capabilities:
//!
//! * the **demo tools** ([`DEMO_TOOLS`]) used by the Gatehouse quick-start: `echo`, `add`,
//!   `current_time`, and the deliberately dangerous `delete_records`
//!   ([`UNGRANTED_DEMO_TOOL`]) which the demo policy does not grant;
//! * every **fixture of the MCP conformance suite's server scenarios**
//!   (`@modelcontextprotocol/conformance`): `test_*` tools, `test://` resources and a resource
//!   template, `test_*` prompts, logging, completion and resource subscriptions, plus the
//!   `test_reconnection` tool of the SSE-polling scenario (SEP-1699).
//!
//! Sessions are stateful (the `rmcp` default): `initialize` returns an `Mcp-Session-Id`, POST
//! responses are SSE streams, and a standalone GET stream is supported. DNS-rebinding
//! protection is on: only loopback `Host` and `Origin` values are accepted unless more hosts
//! are allowed explicitly with [`router_with_allowed_hosts`].
#![forbid(unsafe_code)]

mod demo_tools;
mod fixtures;
mod handler;
mod reconnect;
mod time;

use std::{net::SocketAddr, sync::Arc};

use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub use demo_tools::{DEMO_TOOLS, UNGRANTED_DEMO_TOOL};

/// The path the MCP endpoint is served at.
pub const MCP_PATH: &str = "/mcp";

/// Hosts accepted in the `Host` header by default (any port): loopback only.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A running example server: its bound address and the means to stop it.
#[derive(Debug)]
pub struct ExampleServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl ExampleServer {
    /// Bind `addr` (port 0 picks a free port) and serve in the background until `cancel` is
    /// cancelled or [`ExampleServer::shutdown`] is called.
    pub async fn start(addr: SocketAddr, cancel: CancellationToken) -> std::io::Result<Self> {
        Self::start_with_allowed_hosts(addr, cancel, &[]).await
    }

    /// Like [`ExampleServer::start`], additionally accepting the given `Host` names (see
    /// [`router_with_allowed_hosts`]).
    pub async fn start_with_allowed_hosts(
        addr: SocketAddr,
        cancel: CancellationToken,
        extra_hosts: &[String],
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router_with_allowed_hosts(cancel.clone(), extra_hosts);
        let shutdown = cancel.clone();
        let listener = with_nodelay(listener);
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "example MCP server stopped with an error");
            }
        });
        Ok(Self { addr, cancel, task })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The full URL of the MCP endpoint, e.g. `http://127.0.0.1:9090/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Stop serving and wait for the server task to finish.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "example MCP server task failed");
        }
    }
}

/// Axum router serving MCP at `/mcp` (stateful sessions, SSE responses per rmcp defaults;
/// GET stream supported). Only loopback `Host`/`Origin` values are accepted.
///
/// Cancelling `cancel` terminates all MCP sessions.
pub fn router(cancel: CancellationToken) -> axum::Router {
    router_with_allowed_hosts(cancel, &[])
}

/// Like [`router`], but also accepts the `Host` names in `extra_hosts` (a bare name matches
/// any port, `name:port` only that port) and `http(s)://` origins on those names.
///
/// Use this when the server is reached under a non-loopback name, e.g. a container's service
/// name behind the gateway.
pub fn router_with_allowed_hosts(
    cancel: CancellationToken,
    extra_hosts: &[String],
) -> axum::Router {
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    hosts.extend(extra_hosts.iter().cloned());
    let origins: Vec<String> = hosts
        .iter()
        .flat_map(|host| allowed_origins_for(host))
        .collect();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .with_cancellation_token(cancel.child_token());
    let service = StreamableHttpService::new(
        || Ok(handler::ExampleHandler::default()),
        Arc::new(reconnect::ReconnectingSessionManager::default()),
        config,
    );
    axum::Router::new().route_service(MCP_PATH, service)
}

/// Serves the example server over stdin/stdout (newline-delimited JSON-RPC, the MCP stdio
/// transport) until stdin closes: how Gatehouse runs it as a stdio server.
pub async fn serve_stdio() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use rmcp::ServiceExt;
    let running = handler::ExampleHandler::default()
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

/// Origins (`http` and `https`) a browser page served from `host` would send.
fn allowed_origins_for(host: &str) -> Vec<String> {
    let (name, port) = match host.rsplit_once(':') {
        // `::1` and other bare IPv6 literals contain colons but no port.
        Some((name, port))
            if port.parse::<u16>().is_ok()
                && (!name.contains(':') || (name.starts_with('[') && name.ends_with(']'))) =>
        {
            (name.to_owned(), port.to_owned())
        }
        _ => (host.to_owned(), "*".to_owned()),
    };
    let name = if name.contains(':') && !name.starts_with('[') {
        format!("[{name}]")
    } else {
        name
    };
    ["http", "https"]
        .iter()
        .map(|scheme| format!("{scheme}://{name}:{port}"))
        .collect()
}

/// The listener with `TCP_NODELAY` set on every accepted socket. Without it, a response
/// written in two parts (head, then an SSE body) waits for the client's delayed ACK: about
/// 40 ms per response, which capped the demo at about a thousand requests a second.
fn with_nodelay(listener: TcpListener) -> axum::serve::TapIo<TcpListener, fn(&mut TcpStream)> {
    use axum::serve::ListenerExt;
    fn set_nodelay(tcp: &mut TcpStream) {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    }
    listener.tap_io(set_nodelay)
}

/// Bind and serve in the background; returns the bound address. `addr` may use port 0.
///
/// The server runs until `cancel` is cancelled.
pub async fn spawn(addr: SocketAddr, cancel: CancellationToken) -> std::io::Result<SocketAddr> {
    ExampleServer::start(addr, cancel)
        .await
        .map(|server| server.addr())
}

#[cfg(test)]
mod tests {
    use super::allowed_origins_for;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() -> std::io::Result<()> {
        use axum::serve::Listener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut listener = super::with_nodelay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await?;
        let (accepted, _) = listener.accept().await;
        assert!(
            accepted.nodelay()?,
            "accepted sockets must not wait for delayed ACKs"
        );
        Ok(())
    }

    #[test]
    fn origins_cover_both_schemes_and_any_port() {
        assert_eq!(
            allowed_origins_for("localhost"),
            ["http://localhost:*", "https://localhost:*"]
        );
        assert_eq!(
            allowed_origins_for("::1"),
            ["http://[::1]:*", "https://[::1]:*"]
        );
        assert_eq!(
            allowed_origins_for("[::1]:9090"),
            ["http://[::1]:9090", "https://[::1]:9090"]
        );
        assert_eq!(
            allowed_origins_for("example:9090"),
            ["http://example:9090", "https://example:9090"]
        );
    }
}
