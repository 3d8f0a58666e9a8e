//! At most `http.max_concurrent_requests` gateway requests are processed at once; more are
//! refused at once with 503 (`overloaded`) instead of queueing without bound. A request counts
//! until its response head is ready: long streams are bounded by the connection cap instead.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use std::{sync::Arc, time::Instant};
use tokio::sync::Semaphore;

use crate::{
    AppState,
    error::{ErrorContext, GatewayError},
};

/// Permits for requests in flight on `/{server}/mcp`.
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))))
    }
}

pub async fn gateway_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let Ok(_permit) = state.in_flight.0.clone().try_acquire_owned() else {
        state.metrics.record(
            None,
            "deny",
            GatewayError::Overloaded.reason(),
            started.elapsed(),
        );
        return GatewayError::Overloaded.into_response(&ErrorContext::default());
    };
    next.run(request).await
}
