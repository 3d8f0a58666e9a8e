//! `/metrics` on the admin listener: the registered metrics, and the gauges read from the
//! running state at each scrape (docs/observability.md).

use axum::{
    extract::{ConnectInfo, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::net::SocketAddr;

use crate::{context::AppState, metrics::Scraped};

/// OpenMetrics 1.0, which Prometheus asks for first and every current scraper reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let ip = peer.ip().to_canonical();
    if !state
        .config
        .metrics
        .allow
        .iter()
        .any(|net| net.contains(&ip))
    {
        return (
            StatusCode::FORBIDDEN,
            "metrics are not served to this address\n",
        )
            .into_response();
    }
    let snapshot = state.snapshot.current();
    let value = |name, help, value| Scraped::Value { name, help, value };
    let circuits = state
        .breakers
        .states()
        .into_iter()
        .flat_map(|(server, current)| {
            ["closed", "open", "half_open"].map(|s| {
                (
                    vec![("server", server.clone()), ("state", s.to_owned())],
                    f64::from(u8::from(s == current)),
                )
            })
        })
        .collect();
    let gauges = [
        value(
            "gatehouse_snapshot_generation",
            "Store generation the running configuration was built from",
            snapshot.generation as f64,
        ),
        value(
            "gatehouse_api_keys",
            "Usable API keys in the running configuration",
            snapshot.keys.len() as f64,
        ),
        value(
            "gatehouse_tool_observations_dropped",
            "Tool definitions not sent to the store because too many were waiting (still held)",
            state.pins.dropped_observations() as f64,
        ),
        value(
            "gatehouse_sessions",
            "Legacy MCP sessions bound to their owner",
            state.sessions.len() as f64,
        ),
        value(
            "gatehouse_task_owners",
            "MCP tasks whose creator Gatehouse remembers",
            state.tasks.len() as f64,
        ),
        value(
            "gatehouse_upstream_circuits_open",
            "Upstreams whose circuit breaker is open or probing on this replica",
            state.breakers.open_count() as f64,
        ),
        Scraped::ByLabels {
            name: "gatehouse_upstream_circuit_state",
            help: "1 for the state each upstream's circuit breaker is in on this replica (closed, open, half_open)",
            values: circuits,
        },
        value(
            "gatehouse_config_record_errors",
            "Stored records the running configuration could not compile (each denies its scope)",
            snapshot.issues.len() as f64,
        ),
        value(
            "gatehouse_config_reload_failed",
            "1 while the last configuration reload failed and the previous one is still running",
            f64::from(u8::from(state.snapshot.report().error.is_some())),
        ),
        value(
            "gatehouse_audit_queue_depth",
            "Audit events waiting for the writer",
            state.audit.queued() as f64,
        ),
        value(
            "gatehouse_audit_queue_capacity",
            "Room in the audit queue (audit.queue_capacity)",
            state.audit.queue_capacity() as f64,
        ),
    ];
    let sinks = state
        .audit_sinks
        .counters()
        .into_iter()
        .flat_map(|(sink, counters)| {
            [
                ("delivered", &counters.delivered),
                ("dropped", &counters.dropped),
                ("failed", &counters.failed),
                ("dead_lettered", &counters.dead_lettered),
            ]
            .map(|(outcome, count)| {
                (
                    vec![("sink", sink.clone()), ("outcome", outcome.to_owned())],
                    count.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
        })
        .collect();
    let mut gauges = Vec::from(gauges);
    gauges.push(Scraped::CountersByLabels {
        name: "gatehouse_audit_sink_events",
        help: "Audit events each sink delivered, dropped (its queue was full), failed to deliver, or wrote to its dead-letter file",
        values: sinks,
    });
    let backends = super::readiness::backend_up_metric(&state.backends).await;
    let text = state.metrics.render(&gauges, &backends);
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
