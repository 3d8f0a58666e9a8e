//! MCP servers that run as local programs, spoken to over stdin/stdout with newline-delimited
//! JSON-RPC (ADR 0006). `mux` is the bookkeeping that lets one child serve many callers
//! safely; `supervisor` runs the child (start, initialise, route, log stderr, restart with
//! back-off); `pool` keeps this process's children by server (shared or per principal);
//! `transport` is the [`crate::upstream::Upstream`] the request path calls; `resumable`
//! keeps its SSE streams for resumption (SEP-1699).

mod modern;
pub mod mux;
pub mod pool;
mod resumable;
pub mod supervisor;
mod transport;

pub use pool::{InMemoryChildren, StdioChildren, release_ended_sessions};
pub use resumable::resumed_tools;
pub use transport::{ChannelBody, StdioTimeouts, StdioUpstream};
