//! Gatehouse: an authentication and governance gateway for MCP servers.
//!
//! The request path (see `docs/ARCHITECTURE.md`):
//! accept → identify → connection → upstream → client, with an audit event for every
//! decision. Nothing on that path waits on the database: it reads an immutable
//! [`snapshot::Snapshot`] that a background task rebuilds whenever the store changes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_api;
pub mod app;
pub mod audit;
pub mod audit_sinks;
pub mod change_feed;
pub mod config;
pub mod console;
pub mod context;
pub mod edge;
pub mod entries;
pub mod error;
pub mod federation;
pub mod gateway;
pub mod grants;
pub mod guardrails;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod pinning;
pub mod policy;
pub mod replicas;
pub mod secrets;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod upstream;

pub use app::RunningServer;
pub use config::Config;
pub use context::AppState;

/// Milliseconds since the Unix epoch, the one time unit stored and compared everywhere.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
