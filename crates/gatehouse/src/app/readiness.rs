//! The components `/readyz` lists for this server (`health.rs`): the store and the snapshot;
//! other backends add their own check in [`readiness_checks`].

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    health::{Check, CheckFuture, Component, Health},
    snapshot::SnapshotHandle,
    store::DynStore,
};
use gatehouse_model::records::ReloadReport;

/// A store that has not answered within this is unreachable for `/readyz`.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every component of this server's readiness, in the order `/readyz` lists them.
pub(super) fn readiness_checks(
    store: DynStore,
    snapshot: Arc<SnapshotHandle>,
    durable: bool,
    backends: Vec<Arc<dyn Check>>,
) -> Vec<Arc<dyn Check>> {
    let mut checks: Vec<Arc<dyn Check>> = vec![
        Arc::new(StoreCheck {
            store,
            durable,
            down_since: parking_lot::Mutex::new(None),
        }),
        Arc::new(SnapshotCheck { snapshot }),
    ];
    checks.extend(backends);
    checks
}

/// `gatehouse_backend_up{backend="…"}`: 1 while the backend answers, 0 while it does not
/// (degraded or unready alike).
pub(super) async fn backend_up_metric(backends: &[Arc<dyn Check>]) -> String {
    if backends.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP gatehouse_backend_up 1 while the shared backend answers, else 0.\n\
         # TYPE gatehouse_backend_up gauge\n",
    );
    for backend in backends {
        let component = backend.check().await;
        let up = u8::from(component.health == Health::Ok);
        let _ = writeln!(
            out,
            "gatehouse_backend_up{{backend=\"{}\"}} {up}",
            component.name
        );
    }
    out
}

/// The store answers a one-row read. While it does not, requests are still served from the
/// snapshot, but no audit event can be committed: with `audit.durable` no request can be
/// answered correctly (unready); without it events queue (degraded).
struct StoreCheck {
    store: DynStore,
    durable: bool,
    down_since: parking_lot::Mutex<Option<Instant>>,
}

impl Check for StoreCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let answered = tokio::time::timeout(STORE_PROBE_TIMEOUT, self.store.generation()).await;
            if matches!(answered, Ok(Ok(_))) {
                if let Some(since) = self.down_since.lock().take() {
                    tracing::info!(
                        down_for_s = since.elapsed().as_secs(),
                        "the store is reachable again"
                    );
                }
                return Component::ok("store", "ok");
            }
            let since = *self.down_since.lock().get_or_insert_with(|| {
                tracing::warn!("the store is unreachable: serving from the last snapshot");
                Instant::now()
            });
            let (health, effect) = if self.durable {
                (Health::Unready, "audit events cannot be committed")
            } else {
                (Health::Degraded, "audit events queue")
            };
            Component {
                name: "store",
                health,
                detail: format!("unreachable for {}s; {effect}", since.elapsed().as_secs()),
            }
        })
    }
}

/// The generation being served, and whether the last reload or some records failed: both
/// leave the replica serving (the previous snapshot, a deny-all for a broken record).
struct SnapshotCheck {
    snapshot: Arc<SnapshotHandle>,
}

impl Check for SnapshotCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { snapshot_component(&self.snapshot.report()) })
    }
}

fn snapshot_component(report: &ReloadReport) -> Component {
    let mut detail = format!("generation {} applied", report.generation);
    let mut health = Health::Ok;
    if report.error.is_some() {
        health = Health::Degraded;
        detail.push_str("; the last reload failed, still running it");
    }
    if !report.issues.is_empty() {
        health = Health::Degraded;
        let _ = write!(
            detail,
            "; {} stored record(s) could not be compiled:",
            report.issues.len()
        );
        // Kind and name only: this endpoint is public, and the reasons (in the log and
        // `gatehouse status`) may describe configuration.
        for issue in &report.issues {
            let _ = write!(
                detail,
                "\n  {} {:?}: {}",
                issue.record, issue.id, issue.effect
            );
        }
    }
    Component {
        name: "snapshot",
        health,
        detail,
    }
}
