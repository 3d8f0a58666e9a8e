//! The state every request handler shares, below the edges that read it: `app` (the
//! composition root) builds it, the gateway and the authorization server only use it.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    audit::AuditSink, config::Config, edge::access::HostOriginPolicy, secrets::Keyring,
    snapshot::SnapshotHandle, store::DynStore, upstream::client::UpstreamClient,
};

/// Everything a request handler may use. Cloning is one `Arc` increment.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub(crate) fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

pub struct App {
    /// Validated configuration, fixed for the life of the process.
    pub config: Config,
    /// Persistent storage. Never awaited on the request path, only by background tasks.
    pub store: DynStore,
    /// Keys derived from the master key (API-key pepper, encryption, audit chain).
    pub keyring: Arc<Keyring>,
    /// The in-memory configuration the request path reads.
    pub snapshot: Arc<SnapshotHandle>,
    /// Legacy MCP sessions and who owns them.
    pub sessions: Arc<dyn crate::state::SessionStore>,
    /// Who created each MCP task (tasks belong to their creator, in both wire eras).
    pub tasks: Arc<dyn crate::state::TaskOwners>,
    /// Pooled client for upstream MCP servers.
    pub upstream: UpstreamClient,
    /// A circuit breaker per upstream, kept across snapshots.
    pub breakers: crate::upstream::breaker::Breakers,
    /// The running programs of stdio servers (ADR 0006), by server.
    pub stdio: Arc<dyn crate::upstream::stdio::StdioChildren>,
    /// The events of the SSE streams built from stdio children's output, for resumption.
    pub event_streams: Arc<dyn crate::state::event_streams::EventStreams>,
    /// What `/readyz` consults, and whether shutdown has begun draining.
    pub readiness: crate::health::Readiness,
    /// Shared backends (Redis), for `gatehouse_backend_up`.
    pub backends: Vec<Arc<dyn crate::health::Check>>,
    /// Where audit events go (a bounded channel to the writer task).
    pub audit: AuditSink,
    /// The sinks fed beside the store (`[[audit.sinks]]`) and their counters (delivered,
    /// dropped, failed, dead-lettered), for `/metrics`.
    pub audit_sinks: Arc<crate::audit_sinks::AuditSinks>,
    /// `Host` / `Origin` allow-lists.
    pub access: HostOriginPolicy,
    /// Tool-definition pinning: observations on their way to the store, held tools.
    pub pins: Arc<crate::pinning::PinWatch>,
    /// Request counters and latency histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// OpenTelemetry traces of gateway requests, when `[telemetry]` names a collector.
    pub telemetry: crate::telemetry::Telemetry,
    /// Access tokens whose signature has been verified, so each costs one asymmetric check.
    pub token_cache: crate::tokens::token_cache::TokenCache<crate::tokens::access::TokenIdentity>,
    /// `jti`s of `private_key_jwt` assertions already used.
    pub client_assertions: Arc<dyn crate::state::ReplayCache>,
    /// `jti`s of DPoP proofs already used (a cache of their own).
    pub dpop_proofs: Arc<dyn crate::state::ReplayCache>,
    /// Fetcher and freshness of Client ID Metadata Documents.
    pub client_metadata: crate::federation::client_metadata::MetadataDocuments,
    /// Keys of trusted external authorization servers and their verified tokens.
    pub external_issuers: crate::federation::external_issuers::ExternalIssuers,
    /// Discovery documents and keys of upstream OpenID Connect providers.
    pub identity_providers: crate::federation::identity_providers::Providers,
    /// Gateway requests in flight (`http.max_concurrent_requests`).
    pub in_flight: crate::edge::limit::InFlight,
    /// Password checks at once, and failed sign-ins by address and username.
    pub logins: crate::identity::login_guard::LoginGuard,
    /// Tokens fetched for upstreams (client credentials).
    pub upstream_tokens: Arc<crate::upstream::tokens::TokenBroker>,
    /// Per-user upstreams' authorization servers: their metadata (kept a while) and
    /// registration, for operators' changes.
    pub upstream_registrar: Arc<crate::upstream::registration::Registrar>,
    pub(crate) request_ids: RequestIds,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Request ids: a random per-process prefix and a counter (no syscall per request).
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            prefix,
            next: AtomicU64::new(0),
        }
    }
}

impl App {
    pub fn next_request_id(&self) -> String {
        let n = self.request_ids.next.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:08x}", self.request_ids.prefix)
    }
}
