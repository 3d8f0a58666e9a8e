//! MCP servers that run as local programs, spoken to over stdin/stdout with newline-delimited
//! JSON-RPC (ADR 0006). Built in steps: `mux` is the bookkeeping that lets one child serve
//! many callers safely; the supervisor (spawn, restart, limits) and the `Transport` variant
//! come next.

pub mod mux;
