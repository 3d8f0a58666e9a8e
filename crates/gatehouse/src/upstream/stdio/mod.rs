//! MCP servers that run as local programs, spoken to over stdin/stdout with newline-delimited
//! JSON-RPC (ADR 0006). Built in steps: `mux` is the bookkeeping that lets one child serve
//! many callers safely; `supervisor` runs the child (start, initialise, route, log stderr,
//! restart with back-off); the `Transport` variant that puts it on the request path, the
//! configuration and resource limits come next.

pub mod mux;
pub mod supervisor;
