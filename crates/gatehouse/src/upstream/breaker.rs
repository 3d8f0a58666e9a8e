//! A circuit breaker per upstream, so a server that is down or hanging costs its callers one
//! quick 503 instead of a connect attempt or a timeout each, and is not hammered while it
//! recovers.
//!
//! Per replica, keyed by server name and URL (a server whose URL changes starts closed), and
//! held by `AppState`, so a snapshot rebuild keeps every breaker's state. After
//! `gateway.breaker_failures` consecutive failures the breaker opens for
//! `gateway.breaker_open_for`: requests are refused with `upstream_circuit_open` and
//! `Retry-After` without connecting. Then one request is let through as a probe: its success
//! closes the breaker, its failure opens it again; others are refused while it runs.
//!
//! What counts as a failure ([`counts_against`], [`status_counts_against`]) is what says the
//! upstream itself is unwell: no connection, no answer in time, a 502/503/504, a body that
//! broke off while Gatehouse read it. Anything a caller's request can provoke from a healthy
//! server (4xx, 500 from a tool, an answer too large or unreadable for the rules) does not:
//! otherwise one client could switch a server off for everybody.
//!
//! The closed path reads the map without a lock (it changes only when a server is first
//! called or deleted) and costs two atomic loads and the breaker's reference count per request;
//! no state is written while requests succeed.

use arc_swap::ArcSwap;
use http::{StatusCode, Uri};
use parking_lot::Mutex;
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{config::GatewayConfig, error::GatewayError};

/// While a probe is out, how long others are told to wait.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Every upstream's breaker in this process.
pub struct Breakers {
    by_server: ArcSwap<HashMap<Box<str>, Arc<Breaker>>>,
    /// Taken by the rare writers, so two of them do not lose each other's entry.
    writing: Mutex<()>,
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
}

/// One upstream's breaker.
pub struct Breaker {
    url: Uri,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 while closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
    server: Box<str>,
}

/// Leave to send one request to an upstream; [`Attempt::settle`] says how it went. Dropped
/// unsettled (the caller went away), a probe frees its place for the next request.
pub struct Attempt {
    breaker: Option<Arc<Breaker>>,
    probe: bool,
}

impl Breakers {
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            by_server: ArcSwap::default(),
            writing: Mutex::new(()),
            threshold: config.breaker_failures,
            open_for: config.breaker_open_for,
            epoch: Instant::now(),
        }
    }

    /// Leave to call `server` at `url`, or how long until the breaker lets a request through.
    pub fn admit(&self, server: &str, url: &Uri) -> Result<Attempt, GatewayError> {
        if self.threshold == 0 {
            return Ok(Attempt::untracked());
        }
        let breaker = self.breaker(server, url);
        breaker
            .admit()
            .map_err(|retry_after| GatewayError::UpstreamCircuitOpen { retry_after })
    }

    fn breaker(&self, server: &str, url: &Uri) -> Arc<Breaker> {
        if let Some(breaker) = self.by_server.load().get(server)
            && breaker.url == *url
        {
            return breaker.clone();
        }
        let _writing = self.writing.lock();
        let mut by_server = HashMap::clone(&self.by_server.load());
        let breaker = match by_server.get(server) {
            Some(breaker) if breaker.url == *url => breaker.clone(),
            // New, or the server now points elsewhere: the old address's record says nothing
            // about the new one.
            _ => {
                let breaker = Arc::new(Breaker {
                    url: url.clone(),
                    consecutive_failures: AtomicU32::new(0),
                    open_until: AtomicU64::new(0),
                    probing: AtomicBool::new(false),
                    threshold: self.threshold,
                    open_for: self.open_for,
                    epoch: self.epoch,
                    server: server.into(),
                });
                by_server.insert(server.into(), breaker.clone());
                breaker
            }
        };
        self.by_server.store(Arc::new(by_server));
        breaker
    }

    /// Forgets the breakers of servers `keep` does not name (deleted servers), so the map
    /// holds no more entries than the configuration has servers.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let _writing = self.writing.lock();
        let current = self.by_server.load();
        if current.keys().all(|server| keep(server)) {
            return;
        }
        let mut by_server = HashMap::clone(&current);
        by_server.retain(|server, _| keep(server));
        self.by_server.store(Arc::new(by_server));
    }

    /// Breakers currently open, for `/metrics`.
    pub fn open_count(&self) -> usize {
        self.by_server
            .load()
            .values()
            .filter(|b| b.open_until.load(Ordering::Acquire) != 0)
            .count()
    }
}

impl Breakers {
    /// Each breaker's state by server, for `/metrics`: `closed`, `open`, or `half_open` (its
    /// open time is over, so the next request, or the one running, is a probe).
    pub fn states(&self) -> Vec<(String, &'static str)> {
        let mut states: Vec<(String, &'static str)> = self
            .by_server
            .load()
            .iter()
            .map(|(server, breaker)| (server.to_string(), breaker.state()))
            .collect();
        states.sort();
        states
    }
}

impl Breaker {
    fn state(&self) -> &'static str {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            "closed"
        } else if self.probing.load(Ordering::Acquire) || self.now_ms() >= until {
            "half_open"
        } else {
            "open"
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn admit(self: Arc<Self>) -> Result<Attempt, Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(Attempt {
                breaker: Some(self),
                probe: false,
            });
        }
        let now = self.now_ms();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(server = %self.server, "upstream circuit half-open: one probe request");
            return Ok(Attempt {
                breaker: Some(self),
                probe: true,
            });
        }
        Err(PROBE_RETRY_AFTER)
    }

    /// Opens (again) from now; 0 is never a deadline, as `open_for` is positive.
    fn open(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        self.open_until.store(until, Ordering::Release);
    }

    fn failed(&self, probe: bool) {
        if probe {
            self.open();
            self.probing.store(false, Ordering::Release);
            tracing::warn!(server = %self.server, "upstream still failing: circuit open again");
            return;
        }
        let failures = self
            .consecutive_failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= self.threshold && self.open_until.load(Ordering::Acquire) == 0 {
            self.open();
            tracing::warn!(
                server = %self.server,
                failures,
                open_for = ?self.open_for,
                "upstream failing: circuit open"
            );
        }
    }

    fn succeeded(&self, probe: bool) {
        if self.consecutive_failures.load(Ordering::Acquire) != 0 {
            self.consecutive_failures.store(0, Ordering::Release);
        }
        if probe {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::info!(server = %self.server, "upstream answered the probe: circuit closed");
        }
    }
}

impl Attempt {
    fn untracked() -> Self {
        Self {
            breaker: None,
            probe: false,
        }
    }

    /// Records how the call went; only the first verdict counts.
    pub fn settle(&mut self, failed: bool) {
        if let Some(breaker) = self.breaker.take() {
            if failed {
                breaker.failed(self.probe);
            } else {
                breaker.succeeded(self.probe);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.probe
            && let Some(breaker) = self.breaker.take()
        {
            breaker.probing.store(false, Ordering::Release);
        }
    }
}

/// Whether an error from the hop says the upstream is unwell (see the module's notes).
pub fn counts_against(err: &GatewayError) -> bool {
    matches!(
        err,
        GatewayError::UpstreamUnavailable
            | GatewayError::UpstreamTimeout
            | GatewayError::UpstreamResponseBroken
            | GatewayError::UpstreamCrashed
    )
}

/// Whether the upstream's status says it cannot serve: what proxies and overloaded servers
/// answer. A 500 is left out: a tool that fails on one caller's arguments answers it.
pub fn status_counts_against(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(threshold: u32, open_for: Duration) -> Breakers {
        Breakers::new(&GatewayConfig {
            breaker_failures: threshold,
            breaker_open_for: open_for,
            ..GatewayConfig::default()
        })
    }

    fn url(text: &str) -> Uri {
        text.parse().unwrap()
    }

    fn fail(b: &Breakers, server: &str, u: &Uri) {
        b.admit(server, u).unwrap().settle(true);
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_only() {
        let b = breakers(3, Duration::from_secs(60));
        let u = url("http://a.internal/mcp");
        fail(&b, "a", &u);
        fail(&b, "a", &u);
        // A success in between starts the count again.
        b.admit("a", &u).unwrap().settle(false);
        fail(&b, "a", &u);
        fail(&b, "a", &u);
        assert!(b.admit("a", &u).is_ok(), "two consecutive failures");
        fail(&b, "a", &u);
        match b.admit("a", &u) {
            Err(GatewayError::UpstreamCircuitOpen { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(60) && !retry_after.is_zero());
            }
            _ => panic!("open after three consecutive failures"),
        }
        assert!(
            b.admit("b", &u).is_ok(),
            "another server has its own breaker"
        );
        assert_eq!(b.open_count(), 1);
    }

    #[test]
    fn a_new_url_starts_closed_and_retain_forgets_deleted_servers() {
        let b = breakers(1, Duration::from_secs(60));
        let old = url("http://old.internal/mcp");
        fail(&b, "a", &old);
        assert!(b.admit("a", &old).is_err());
        assert!(b.admit("a", &url("http://new.internal/mcp")).is_ok());
        fail(&b, "gone", &old);
        b.retain(|server| server != "gone");
        assert!(b.admit("gone", &old).is_ok(), "forgotten, so closed");
    }

    #[test]
    fn half_open_lets_one_probe_through_which_decides() {
        let b = breakers(1, Duration::from_millis(1));
        let u = url("http://a.internal/mcp");
        fail(&b, "a", &u);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut probe = loop {
            match b.admit("a", &u) {
                Ok(probe) => break probe,
                Err(_) => assert!(Instant::now() < deadline, "never half-open"),
            }
        };
        assert!(
            matches!(b.admit("a", &u), Err(GatewayError::UpstreamCircuitOpen { retry_after }) if retry_after == PROBE_RETRY_AFTER),
            "one probe at a time"
        );
        probe.settle(false);
        assert!(b.admit("a", &u).is_ok(), "closed after the probe succeeded");
        assert_eq!(b.open_count(), 0);
    }

    #[test]
    fn a_probe_dropped_without_a_verdict_frees_its_place() {
        let b = breakers(1, Duration::from_millis(1));
        let u = url("http://a.internal/mcp");
        fail(&b, "a", &u);
        let deadline = Instant::now() + Duration::from_secs(5);
        let probe = loop {
            if let Ok(probe) = b.admit("a", &u) {
                break probe;
            }
            assert!(Instant::now() < deadline, "never half-open");
        };
        drop(probe);
        assert!(b.admit("a", &u).is_ok(), "the next request probes");
    }

    #[test]
    fn zero_failures_turns_the_breaker_off() {
        let b = breakers(0, Duration::from_secs(60));
        let u = url("http://a.internal/mcp");
        for _ in 0..100 {
            fail(&b, "a", &u);
        }
        assert!(b.admit("a", &u).is_ok());
    }

    #[test]
    fn only_what_says_the_upstream_is_unwell_counts() {
        assert!(counts_against(&GatewayError::UpstreamUnavailable));
        assert!(counts_against(&GatewayError::UpstreamTimeout));
        assert!(counts_against(&GatewayError::UpstreamResponseBroken));
        assert!(!counts_against(&GatewayError::UpstreamResponseTooLarge));
        assert!(!counts_against(&GatewayError::UpstreamContentUnfilterable));
        assert!(!counts_against(&GatewayError::ParseError("x".into())));
        assert!(status_counts_against(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!status_counts_against(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!status_counts_against(StatusCode::NOT_FOUND));
        assert!(!status_counts_against(StatusCode::BAD_REQUEST));
    }
}
