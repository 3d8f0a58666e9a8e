//! The audit trail: one event per request (and per operator change), written off the request
//! path by a batching writer, chained with a keyed hash so edits and deletions are detectable.

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod operator;
pub mod writer;

pub use checkpoint::Checkpoint;
pub use event::{AuditEvent, AuditFilter, AuditRow, BatchEntry, Decision, Outcome};
pub use operator::{EventKind, OperatorAction};
pub use writer::{AuditSink, AuditWriter};
