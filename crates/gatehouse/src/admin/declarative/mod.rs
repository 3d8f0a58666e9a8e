//! Declarative configuration (`gatehouse export`, `gatehouse apply`, `/admin/api/v1/state`):
//! a deployment's servers, clients, connections, policies, guardrails, users, groups and
//! admin tokens as one versioned document that diffs well in git (docs/gitops.md, ADR 0012).
//!
//! - [`document`]: the document's types; values only, no I/O.
//! - [`secret_ref`]: secrets by reference (`env:NAME`, `file:PATH`), resolved at apply time.
//! - [`export`]: the store as a document.
//! - [`normalize`]: every check made before the first write, and values in stored form.
//! - [`plan`]: what changes, in the order it can be made; pure. `fields`: one record's
//!   fields, before and after.
//! - [`apply`]: the plan made through [`crate::admin::AdminService`].

pub mod apply;
pub mod document;
pub mod export;
mod fields;
pub mod normalize;
pub mod plan;
pub mod secret_ref;

pub use apply::{ApplyError, Options, Outcome, apply, supplied_values};
pub use document::{State, parse, to_yaml};
pub use export::{export, live_secret};
pub use plan::{Change, Plan, render};
pub use secret_ref::{LocalResolver, Resolve, SecretRef, SuppliedResolver};

#[cfg(test)]
mod tests;
