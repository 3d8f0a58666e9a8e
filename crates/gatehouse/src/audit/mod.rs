//! The audit trail: one event per request (and per operator change), written off the request
//! path by a batching writer, chained with a keyed hash so edits and deletions are detectable;
//! one chain per writer, listed in a chained registry.

pub mod chain;
pub mod checkpoint;
pub mod evidence;
mod operator;
pub mod registry;
pub mod retention;
pub mod verify;
pub mod writer;

pub use writer::{AuditSink, AuditWriter, CommittedRows};
