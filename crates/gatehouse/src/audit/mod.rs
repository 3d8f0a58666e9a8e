//! The audit trail: one event per request, written off the request path by a batching
//! writer, chained with a keyed hash so edits and deletions are detectable.

pub mod chain;
pub mod event;
pub mod writer;

pub use event::{AuditEvent, AuditFilter, AuditRow, Decision};
pub use writer::{AuditSink, AuditWriter};
