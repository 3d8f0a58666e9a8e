//! At most `http.max_concurrent_requests` gateway requests are processed at once; more are
//! refused at once with 503 (`overloaded`) instead of queueing without bound. A request counts
//! until its response head is ready: long streams are bounded by the connection cap instead.

use axum::response::Response;
use std::{sync::Arc, time::Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    error::{ErrorContext, GatewayError},
    metrics::Metrics,
};

/// Permits for requests in flight on `/{server}/mcp`.
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))))
    }
}

impl InFlight {
    /// A permit for one gateway request, held until its response head is ready; `None` when
    /// every permit is taken (answer with [`overloaded`]).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// The refusal of a request over the cap, counted in the metrics.
pub fn overloaded(metrics: &Metrics, started: Instant) -> Response {
    metrics.record(&crate::metrics::Observed {
        server: None,
        method: "-",
        tool: None,
        forwarded: false,
        decision: "deny",
        reason: GatewayError::Overloaded.reason(),
        head: started.elapsed(),
        upstream: None,
    });
    GatewayError::Overloaded.into_response(&ErrorContext::default())
}
