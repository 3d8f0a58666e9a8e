//! What stands between `/oauth/login` and the CPU: password checks (argon2id, tens of
//! milliseconds each) run on threads of their own, a few at a time, never on the blocking
//! pool the audit writer uses; and an address or username with too many recent failures is
//! refused before any check runs.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;

use crate::{config::HttpConfig, identity::passwords};

/// Subjects remembered at most; beyond it expired entries go, then arbitrary ones (a flood of
/// addresses cannot grow memory without bound).
const MAX_TRACKED: usize = 65_536;
/// How long a sign-in waits for a free password checker before it is told to retry.
const CHECK_QUEUE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: retry after this long.
    Throttled(Duration),
    /// Every password checker is busy.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    Username(String),
}

struct Failures {
    count: u32,
    since: Instant,
}

pub struct LoginGuard {
    checkers: Arc<Semaphore>,
    failures: Mutex<HashMap<Subject, Failures>>,
    max_failures: u32,
    window: Duration,
}

impl LoginGuard {
    pub fn new(config: &HttpConfig) -> Self {
        Self {
            checkers: Arc::new(Semaphore::new(config.max_concurrent_logins.max(1))),
            failures: Mutex::new(HashMap::new()),
            max_failures: config.login_max_failures,
            window: config.login_window,
        }
    }

    /// Refuses when the address or the username has used up its failures in the window.
    pub fn admit(&self, ip: IpAddr, username: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        let failures = self.failures.lock();
        let locked = [Subject::Address(ip), Subject::Username(username.to_owned())]
            .iter()
            .filter_map(|subject| failures.get(subject))
            .filter(|f| f.count >= self.max_failures)
            .filter_map(|f| self.window.checked_sub(now.duration_since(f.since)))
            .max();
        match locked {
            Some(wait) if !wait.is_zero() => Err(Refusal::Throttled(wait)),
            _ => Ok(()),
        }
    }

    /// [`LoginGuard::admit`] for a credential that names no username (an admin token): only
    /// the address's failures count.
    pub fn admit_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let failures = self.failures.lock();
        let wait = failures
            .get(&Subject::Address(ip))
            .filter(|f| f.count >= self.max_failures)
            .and_then(|f| self.window.checked_sub(now.duration_since(f.since)));
        match wait {
            Some(wait) if !wait.is_zero() => Err(Refusal::Throttled(wait)),
            _ => Ok(()),
        }
    }

    /// Counts a failure against the address alone.
    pub fn failed_address(&self, ip: IpAddr) {
        self.count_failures(&[Subject::Address(ip)]);
    }

    pub fn failed(&self, ip: IpAddr, username: &str) {
        self.count_failures(&[Subject::Address(ip), Subject::Username(username.to_owned())]);
    }

    fn count_failures(&self, subjects: &[Subject]) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| now.duration_since(f.since) < self.window);
            let excess = failures.len().saturating_sub(MAX_TRACKED / 2);
            let evict: Vec<Subject> = failures.keys().take(excess).cloned().collect();
            for subject in evict {
                failures.remove(&subject);
            }
        }
        for subject in subjects {
            let entry = failures.entry(subject.clone()).or_insert(Failures {
                count: 0,
                since: now,
            });
            if now.duration_since(entry.since) >= self.window {
                *entry = Failures {
                    count: 0,
                    since: now,
                };
            }
            entry.count = entry.count.saturating_add(1);
        }
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .remove(&Subject::Username(username.to_owned()));
    }

    /// Checks a password on a thread of its own, at most `max_concurrent_logins` at once.
    pub async fn verify(&self, phc: Option<String>, password: String) -> Result<bool, Refusal> {
        let permit = tokio::time::timeout(CHECK_QUEUE_WAIT, self.checkers.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-password".into())
            .spawn(move || {
                let ok = passwords::verify(phc.as_deref(), &password);
                drop(permit);
                let _ = tx.send(ok);
            });
        if spawned.is_err() {
            return Err(Refusal::Busy);
        }
        rx.await.map_err(|_| Refusal::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_failures: u32) -> LoginGuard {
        LoginGuard::new(&HttpConfig {
            login_max_failures: max_failures,
            login_window: Duration::from_secs(60),
            ..HttpConfig::default()
        })
    }

    #[test]
    fn failures_lock_the_address_and_the_username() {
        let guard = guard(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        guard.failed(ip, "alice");
        assert_eq!(guard.admit(ip, "alice"), Ok(()));
        guard.failed(ip, "alice");
        assert!(matches!(guard.admit(ip, "bob"), Err(Refusal::Throttled(_))));
        assert!(matches!(
            guard.admit(other, "alice"),
            Err(Refusal::Throttled(_))
        ));
        assert_eq!(guard.admit(other, "bob"), Ok(()));
    }

    #[tokio::test]
    async fn passwords_are_checked_off_the_async_threads() {
        let guard = guard(2);
        assert_eq!(guard.verify(None, "x".into()).await, Ok(false));
    }
}
