//! One integration-test binary: every test starts a real Gatehouse on port 0 in front of a
//! real MCP server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod scripted_upstream;

mod audit;
mod country;
mod errors;
mod example_finance;
mod external_issuer;
mod filtering;
mod guardrails;
mod keys;
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
mod pinning;
mod policies;
mod proxying;
mod sessions;
mod tls;
