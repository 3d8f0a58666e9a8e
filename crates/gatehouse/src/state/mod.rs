//! Runtime state behind small traits: what one Gatehouse process keeps in memory today and a
//! cluster will keep in a shared backend (Redis, Postgres) later.
//!
//! | Trait | What it holds | In memory ([`memory`]) |
//! |---|---|---|
//! | [`SessionStore`] | legacy MCP sessions and their owners | per server, capped per owner |
//! | [`CounterStore`] → [`RateCounter`], [`QuotaCounter`] | GCRA cells, quota counts | sharded by subject, self-sweeping |
//! | [`ReplayCache`] | single-use ids (`jti`s of client assertions; of DPoP proofs, a cache of their own) | bounded, expiring |
//! | [`PinHolds`] | tool definitions held since the last snapshot | per server and tool |
//! | [`TaskOwners`] | who created each MCP task | bounded, expiring |
//! | [`upstream_tokens::UpstreamTokens`] | tokens fetched for upstreams | bounded, expired ones dropped first |
//! | [`event_streams::EventStreams`] | events of the SSE streams Gatehouse builds (stdio), for resumption | bounded per stream and in number |
//!
//! Sessions, task owners and pins are consulted synchronously: each answer is a lookup a
//! shared backend can serve from a local copy kept current by the change feed. Counters and
//! replay ids are different: a shared counter is only exact, and an id used only once, if the
//! take or insert itself happens in the backend (one round trip), so their methods return a
//! [`StateFuture`]. The in-memory implementations answer with [`StateFuture::Ready`], which is
//! not boxed and completes on the first poll, so the seam costs the request path nothing; a
//! remote one returns [`StateFuture::Pending`].
//!
//! A backend plugs in by implementing the traits and being handed to
//! [`crate::app::start_with_state`] (counters through [`crate::policy::PolicyRuntime`]).

pub mod memory;
pub mod redis;

use std::{
    fmt::Debug,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use gatehouse_model::records::{QuotaDelta, QuotaUsage};

pub mod event_streams;
mod owner;
mod server_pins;
mod subjects;
pub mod upstream_tokens;
pub use owner::{Owner, OwnerId};
pub use server_pins::ServerPins;
pub(crate) use subjects::KeyHasher;
pub use subjects::SubjectKey;
pub(crate) use subjects::SubjectMap;

/// The answer of a state backend: ready now (in memory, no allocation) or after I/O.
pub enum StateFuture<'a, T> {
    /// Taken by the first poll.
    Ready(Option<T>),
    Pending(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T: Send + 'a> StateFuture<'a, T> {
    pub fn ready(value: T) -> Self {
        StateFuture::Ready(Some(value))
    }

    pub fn pending(future: impl Future<Output = T> + Send + 'a) -> Self {
        StateFuture::Pending(Box::pin(future))
    }

    /// The value when it is already there (what `policy explain` can show without waiting).
    pub fn now_or_never(self) -> Option<T> {
        match self {
            StateFuture::Ready(value) => value,
            StateFuture::Pending(_) => None,
        }
    }

    /// Maps the answer; allocates only when it is not ready yet.
    pub fn map<U: Send + 'a>(self, f: impl FnOnce(T) -> U + Send + 'a) -> StateFuture<'a, U> {
        match self {
            StateFuture::Ready(value) => StateFuture::Ready(value.map(f)),
            StateFuture::Pending(future) => StateFuture::pending(async move { f(future.await) }),
        }
    }
}

impl<T: Unpin> Future for StateFuture<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            StateFuture::Ready(value) => match value.take() {
                Some(value) => Poll::Ready(value),
                // Polling a completed future is a caller bug; never waking is the documented
                // behaviour of a future polled after completion, and it cannot panic.
                None => Poll::Pending,
            },
            StateFuture::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

/// Whether a session id presented by a caller is theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    Owned,
    /// Unknown, or bound to someone else: one answer, so ids cannot be probed.
    NotFound,
}

/// A shared backend could not answer (unreachable, timed out): the caller fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Why [`RateCounter::take`] did not take a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The limit is reached; one would pass after this long.
    Wait(Duration),
    /// The counter's backend could not answer.
    Unavailable,
}

/// What [`QuotaCounter::charge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Within the quota (counted when charging).
    Counted,
    /// The window's quota is used up.
    Exhausted,
    /// The counter's backend could not answer.
    Unavailable,
}

/// Legacy MCP sessions, bound to the owner that opened them (`gateway/session.rs` for the
/// rules). Both answers may need a round trip: a session bound through one replica can be
/// presented to another a millisecond later, before any announcement reaches it.
pub trait SessionStore: Send + Sync {
    /// Records `owner` as the holder of a session the upstream just issued. Returns how many
    /// of the owner's older sessions were forgotten to stay within the per-owner cap. The
    /// binding is in place when the future completes.
    fn bind<'a>(
        &'a self,
        server: &'a Arc<str>,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, usize>;
    /// Whether `owner` holds the session; marks it used at `now_ms` when so.
    fn check<'a>(
        &'a self,
        server: &'a str,
        session_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, SessionCheck>;
    fn remove<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, ()>;
    /// Whether the session is still known (not ended, idle past the timeout or dropped for the
    /// per-owner cap), without marking it used. A backend that cannot answer says yes: what
    /// hangs on the answer is released by a later sweep, never while the session may be in use.
    fn is_live<'a>(&'a self, server: &'a str, session_id: &'a str) -> StateFuture<'a, bool>;
    /// Forgets sessions idle since before `cutoff_ms`; how many.
    fn sweep(&self, cutoff_ms: i64) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is known of a task the caller created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOrigin {
    /// The tool whose call created it (`None`: another request), whose grant the task's
    /// later requests still need.
    pub tool: Option<String>,
}

/// Who created which MCP task, and through which tool (`gateway/tasks.rs` for the rules).
pub trait TaskOwners: Send + Sync {
    fn record<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        tool: Option<&'a str>,
        expires_at_ms: i64,
    ) -> StateFuture<'a, ()>;
    /// The task's origin when `owner` created `task_id` on `server` and the record has not
    /// expired; `None` otherwise.
    fn owned_by<'a>(
        &'a self,
        server: &'a str,
        task_id: &'a str,
        owner: Owner<'a>,
        now_ms: i64,
    ) -> StateFuture<'a, Option<TaskOrigin>>;
    /// [`TaskOwners::owned_by`] from what this process knows without asking anyone: for the
    /// filter of a `tasks/list` result, which runs inside the relay and cannot wait. A shared
    /// backend answers for the tasks created through this replica (fail closed: others hide).
    fn owned_here(&self, server: &str, task_id: &str, owner: Owner<'_>, now_ms: i64) -> bool;
    /// Forgets expired records; how many.
    fn sweep(&self, now_ms: i64) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Single-use ids (the `jti` of a `private_key_jwt` client assertion), remembered until they
/// expire. Asynchronous: across servers an id is used once only if the insert happens in the
/// shared backend.
pub trait ReplayCache: Send + Sync {
    /// Records `id` until `expires_at` (seconds); false when it is already recorded and not
    /// expired, or when the cache is full of live ids (fail closed); `Unavailable` when the
    /// backend could not answer (a replay must not pass, so the caller refuses).
    fn first_use(
        &self,
        id: &str,
        expires_at: i64,
        now: i64,
    ) -> StateFuture<'_, Result<bool, Unavailable>>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tool definitions held back because they changed (or never passed review), between the
/// moment a `tools/list` result shows them and the snapshot that records them.
pub trait PinHolds: Send + Sync {
    /// Holds `tool` of `server` at definition `hash`.
    fn hold(&self, server: &str, tool: &str, hash: &str);
    /// Whether the tool is held at a hash the snapshot's pins do not approve.
    fn is_held(&self, server: &str, tool: &str, pins: &ServerPins) -> bool;
    /// Drops the holds the snapshot now records (pending, or approved at the held hash).
    fn forget_recorded(&self, server: &str, pins: &ServerPins);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whom a counter counts, as the policy that keeps the counter names it (`policy::PerSubject`):
/// a hashed key for in-memory maps, and on demand the text (what stored rows and remote keys
/// use).
pub trait CounterSubject: std::fmt::Debug + Sync {
    fn key(&self) -> SubjectKey;
    fn text(&self) -> String;
}

/// A [`CounterSubject`] handed to a counter backend. Building it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a>(&'a dyn CounterSubject);

impl<'a> Subject<'a> {
    pub fn new(subject: &'a dyn CounterSubject) -> Self {
        Self(subject)
    }

    pub fn key(&self) -> SubjectKey {
        self.0.key()
    }

    pub fn text(&self) -> String {
        self.0.text()
    }
}

/// A rate limit's GCRA parameters, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Time between requests in the long run.
    pub interval_ns: i128,
    /// How far the theoretical arrival time may run ahead of now (`burst` intervals).
    pub tolerance_ns: i128,
}

impl Gcra {
    /// One GCRA step from a subject's theoretical arrival time (`None`: never seen, or idle):
    /// the new TAT when a request at `now_ns` passes, else how long until one would. Every
    /// backend runs this same arithmetic (a remote one inside its atomic operation).
    pub fn step(self, tat: Option<i128>, now_ns: i128) -> Result<i128, Duration> {
        let tat = tat.unwrap_or(now_ns).max(now_ns);
        let next = tat + self.interval_ns;
        if next - now_ns > self.tolerance_ns {
            let wait = next - now_ns - self.tolerance_ns;
            return Err(Duration::from_nanos(
                u64::try_from(wait).unwrap_or(u64::MAX),
            ));
        }
        Ok(next)
    }
}

/// One rate-limit policy's cells.
pub trait RateCounter: Send + Sync + Debug {
    /// Takes a cell for a request at `now_ns` (only looks when `charge` is false): `Ok`, or how
    /// long until one would pass.
    fn take(
        &self,
        subject: Subject<'_>,
        gcra: Gcra,
        now_ns: i128,
        charge: bool,
    ) -> StateFuture<'_, Result<(), Denied>>;
    /// Gives back a cell `take` charged, when a later policy refused the request.
    fn give_back(&self, subject: Subject<'_>, gcra: Gcra) -> StateFuture<'_, ()>;
    /// Subjects with state.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One quota policy's counts, keyed by subject and window start.
pub trait QuotaCounter: Send + Sync + Debug {
    /// Counts one call in the window `window_start..window_end` (epoch ms) if fewer than
    /// `limit` are counted there (only looks when `charge` is false). A shared backend keeps
    /// the count until a while after `window_end`.
    fn charge(
        &self,
        subject: Subject<'_>,
        window: (i64, i64),
        limit: u64,
        charge: bool,
    ) -> StateFuture<'_, Charge>;
    /// Gives back a call `charge` counted in `window_start`; nothing once that window is over.
    fn refund(&self, subject: Subject<'_>, window_start: i64) -> StateFuture<'_, ()>;
    /// Starts from persisted usage (at start, before any charge).
    fn seed(&self, rows: Vec<QuotaUsage>);
    /// What changed since the last call, as deltas to add to the stored usage.
    fn drain_deltas(&self) -> Vec<QuotaDelta>;
    /// Subjects with a count.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Identifies one compiled stateful policy: its id and spec, so editing an unrelated policy
/// keeps everyone's counts, and editing this one starts afresh.
#[derive(Debug, Clone, Copy)]
pub struct CounterScope<'a> {
    pub policy_id: &'a str,
    /// The spec, as stored (canonical JSON text).
    pub spec: &'a str,
}

/// Counters of every stateful policy. Compiling a policy asks for its counter once; requests
/// then talk to that counter directly, so no request hashes a policy id.
pub trait CounterStore: Send + Sync {
    fn rate(&self, scope: CounterScope<'_>) -> Arc<dyn RateCounter>;
    /// The quota's counter, seeded with its preloaded usage when it is first asked for.
    fn quota(&self, scope: CounterScope<'_>) -> Arc<dyn QuotaCounter>;
    /// Persisted usage, handed to each quota as it is compiled.
    fn preload(&self, usage: Vec<QuotaUsage>);
    /// Quota deltas since the last call, for adding to the store. Also forgets the counters of
    /// policies no snapshot holds any more: their last deltas are in this call's result.
    fn drain_quota_deltas(&self) -> Vec<QuotaDelta>;
    /// Policies with counter state.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why the configured state backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Never carries the URL: it may hold a password.
    #[error("redis: {0}")]
    Redis(String),
}

/// The runtime state `config` names: Redis when `[redis]` is set, else this process's memory.
/// The one place that picks a backend.
pub async fn open(
    config: &crate::config::Config,
    store: &crate::store::DynStore,
) -> Result<RuntimeState, StateError> {
    match &config.redis {
        None => Ok(RuntimeState::in_memory(config, store)),
        Some(redis) => self::redis::runtime(config, redis, store),
    }
}

/// What announces a change to the running replicas, when `[redis]` is set (the CLI's
/// `AdminService` uses it).
pub fn announcer(
    config: &crate::config::Config,
) -> Result<Option<Arc<dyn crate::change_feed::Announce>>, StateError> {
    let Some(redis) = &config.redis else {
        return Ok(None);
    };
    let link = self::redis::RedisLink::open(redis)?;
    Ok(Some(Arc::new(self::redis::RedisAnnouncer::new(
        link, redis,
    ))))
}

/// Every runtime-state backend a server runs with. [`RuntimeState::in_memory`] is what a
/// single process uses; a cluster build hands shared ones to [`crate::app::start_with_state`].
#[derive(Clone)]
pub struct RuntimeState {
    pub sessions: Arc<dyn SessionStore>,
    pub tasks: Arc<dyn TaskOwners>,
    pub client_assertions: Arc<dyn ReplayCache>,
    /// `jti`s of DPoP proofs: a cache of their own, so a flood of proofs cannot fill the one
    /// client assertions need (or the reverse).
    pub dpop_proofs: Arc<dyn ReplayCache>,
    pub pins: Arc<dyn PinHolds>,
    pub counters: Arc<dyn CounterStore>,
    /// How this replica learns that the store changed.
    pub changes: Arc<dyn crate::change_feed::ChangeFeed>,
    /// Shared backends `/readyz` lists and `/metrics` reports as `gatehouse_backend_up`.
    pub backends: Vec<Arc<dyn crate::health::Check>>,
    /// Tokens fetched for upstreams (client credentials).
    pub upstream_tokens: Arc<dyn upstream_tokens::UpstreamTokens>,
}

impl RuntimeState {
    pub fn in_memory(config: &crate::config::Config, store: &crate::store::DynStore) -> Self {
        Self {
            sessions: Arc::new(memory::MemorySessions::new(
                config.gateway.max_sessions_per_owner,
            )),
            tasks: Arc::new(memory::InMemoryTaskOwners::default()),
            client_assertions: Arc::new(memory::MemoryReplay::default()),
            dpop_proofs: Arc::new(memory::MemoryReplay::new(config.oauth.dpop_replay_capacity)),
            pins: Arc::new(memory::MemoryPinHolds::default()),
            counters: Arc::new(memory::MemoryCounters::default()),
            changes: Arc::new(crate::change_feed::PollingFeed::new(
                store.clone(),
                config.snapshot.poll_interval,
            )),
            backends: Vec::new(),
            upstream_tokens: Arc::new(memory::MemoryUpstreamTokens::default()),
        }
    }
}
