//! The HTTP edge: accepting connections and reading requests within limits, so slow, large or
//! numerous clients cannot hold the server (docs/configuration.md, `[http]`).
//!
//! - `serve.rs`: the accept loop (hyper HTTP/1): head timeout and size limit, a connection
//!   cap that sheds the oldest idle connection, back-off when descriptors run out, graceful
//!   shutdown.
//! - `body.rs`: every request body has a deadline, and a body a handler did not read is
//!   drained (bounded) after the answer, so the client reads its refusal instead of a reset.
//! - `limit.rs`: the cap on gateway requests in flight.
//! - `access.rs`: which `Host` and `Origin` reach the server, one authority per request, and
//!   where a request's credential is read from.

pub mod access;
pub mod body;
pub mod limit;
pub mod serve;
