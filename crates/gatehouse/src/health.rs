//! Readiness as a list of components, each judged by a [`Check`]: `/readyz` asks them all and
//! answers 503 only when one says this replica cannot serve correctly (or it is draining).
//! A degraded component is listed but keeps the replica in the load balancer: taking every
//! replica out at once for a shared dependency would turn a partial outage into a full one.
//!
//! A backend adds itself with one line where the server is built (`app.rs`,
//! `readiness_checks`): an `Arc` of anything implementing [`Check`].

use std::{
    fmt::Write as _,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// How a component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    /// Working with a fallback; the replica still serves correctly.
    Degraded,
    /// This replica cannot serve correctly: `/readyz` answers 503.
    Unready,
}

/// One line of `/readyz`: `name: detail`.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: &'static str,
    pub health: Health,
    /// What an operator reads. The endpoint is public: no addresses, secrets or reasons that
    /// describe configuration.
    pub detail: String,
}

impl Component {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            health: Health::Ok,
            detail: detail.into(),
        }
    }
}

pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Component> + Send + 'a>>;

/// A component of readiness. Checks run on every `/readyz` request: keep them cheap and
/// bounded in time (answer from state the component keeps, or a short probe).
pub trait Check: Send + Sync {
    fn check(&self) -> CheckFuture<'_>;
}

/// What `/readyz` consults.
pub struct Readiness {
    checks: Vec<Arc<dyn Check>>,
    draining: Draining,
}

/// Whether shutdown has begun, for those who act on it besides `/readyz` (the accept loop
/// asks clients to close their connections). Cloning shares the flag.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `/readyz`'s answer: 503 when `ready` is false.
pub struct Report {
    pub ready: bool,
    pub text: String,
}

impl Readiness {
    pub fn new(checks: Vec<Arc<dyn Check>>) -> Self {
        Self {
            checks,
            draining: Draining::default(),
        }
    }

    /// From now on `/readyz` answers 503 `draining`: the load balancer stops sending new
    /// requests while those already sent are still served.
    pub fn start_draining(&self) {
        self.draining.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_draining()
    }

    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    pub async fn report(&self) -> Report {
        let mut components = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            components.push(check.check().await);
        }
        render(self.is_draining(), &components)
    }
}

/// The first line says whether the replica takes traffic; one line per component follows.
pub fn render(draining: bool, components: &[Component]) -> Report {
    let worst = components
        .iter()
        .map(|c| c.health)
        .max()
        .unwrap_or(Health::Ok);
    let (ready, first) = match (draining, worst) {
        (true, _) => (false, "draining"),
        (false, Health::Unready) => (false, "not ready"),
        (false, Health::Degraded) => (true, "ready, degraded"),
        (false, Health::Ok) => (true, "ready"),
    };
    let mut text = format!("{first}\n");
    for component in components {
        let _ = writeln!(text, "{}: {}", component.name, component.detail);
    }
    Report { ready, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &'static str, health: Health) -> Component {
        Component {
            name,
            health,
            detail: format!("{health:?}"),
        }
    }

    #[test]
    fn only_an_unready_component_or_draining_makes_the_replica_unready() {
        let ok = [component("store", Health::Ok)];
        let report = render(false, &ok);
        assert!(report.ready);
        assert_eq!(report.text, "ready\nstore: Ok\n");
        let degraded = [
            component("store", Health::Ok),
            component("redis", Health::Degraded),
        ];
        let report = render(false, &degraded);
        assert!(report.ready, "degraded still serves");
        assert!(report.text.starts_with("ready, degraded\n"));
        let unready = [
            component("store", Health::Unready),
            component("redis", Health::Degraded),
        ];
        assert!(!render(false, &unready).ready);
        let report = render(true, &ok);
        assert!(!report.ready);
        assert!(report.text.starts_with("draining\n"), "{}", report.text);
    }

    struct Fixed(Health);
    impl Check for Fixed {
        fn check(&self) -> CheckFuture<'_> {
            Box::pin(async move { component("fixed", self.0) })
        }
    }

    #[tokio::test]
    async fn draining_is_a_switch_that_stays_on() {
        let readiness = Readiness::new(vec![Arc::new(Fixed(Health::Ok))]);
        assert!(readiness.report().await.ready);
        readiness.start_draining();
        assert!(!readiness.report().await.ready);
        assert!(readiness.is_draining());
    }
}
