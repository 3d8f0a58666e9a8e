//! The gateway face: `/{server}/mcp`, the MCP Streamable HTTP transport, governed.

pub mod authorize;
mod bearer;
pub mod discovery;
mod identify;
mod inspect;
mod observe;
mod proxy;
mod recorded;
mod relay;
mod request_body;
mod respond;
pub mod session;
pub mod sse;
mod sse_watch;
pub mod tasks;
mod upstream_auth;
pub(crate) mod virtual_names;
mod virtual_server;

pub use proxy::handle;
#[doc(hidden)]
pub use respond::tools_list_rewrite;
