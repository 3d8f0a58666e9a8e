//! Gatehouse's model: the plain values every other layer shares.
//!
//! What belongs here: the records the store keeps, validated names and URIs (parse, don't
//! validate), value types (tool patterns, the scope language, durations, the closed sets stored
//! as text), the audit event and row, and strict JSON parsing.
//!
//! The rule: plain values and their validation only. No I/O, no async runtime, no HTTP
//! server or client, no database, no cryptography; nothing here imports the library. The
//! compiler enforces the direction (this crate cannot name `gatehouse`), and CI checks that
//! `cargo tree -p gatehouse-model` stays free of tokio, axum, hyper and sqlx.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod audit;
pub mod duration;
pub mod host_pattern;
pub mod jsonrpc;
pub mod names;
pub mod pin_action;
pub mod policy_kind;
pub mod records;
pub mod registration_mode;
pub mod scope;
pub mod tool_pattern;
pub mod upstream_auth;
