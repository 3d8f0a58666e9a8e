//! One integration-test binary: every test starts a real Gatehouse on port 0 in front of a
//! real MCP server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod canned_upstream;
mod helpers;
mod scripted_upstream;

mod audit;
mod audit_chains;
mod audit_outcomes;
mod country;
mod docs;
mod edge;
mod errors;
mod example_finance;
mod external_issuer;
mod filtering;
mod guardrails;
mod host;
mod keys;
mod layers;
mod limits;
mod metrics;
mod oauth;
mod oauth_assertion;
mod oauth_attacks;
mod oauth_browser;
mod oauth_cimd;
mod oauth_code;
mod oauth_code_attacks;
mod oauth_lifecycle;
mod oauth_refresh;
mod oauth_registration;
mod operator_audit;
mod pinning;
mod policies;
mod proxying;
mod quota_deltas;
mod records;
mod replicas;
mod runtime_state;
mod sessions;
mod store_contract;
mod tasks;
mod tls;
mod upstream_encoding;
mod versions;
