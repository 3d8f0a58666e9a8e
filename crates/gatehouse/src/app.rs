//! Application-wide state shared by every request, and starting/stopping a server.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{any, get},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

mod readiness;
mod scrape;

use crate::{
    audit::AuditWriter,
    config::Config,
    context::{App, AppState, RequestIds},
    edge::access::HostOriginPolicy,
    gateway,
    policy::geo::GeoDb,
    secrets::{self, Keyring},
    snapshot::{SnapshotError, SnapshotHandle},
    store::{self, DynStore, StoreError},
    upstream::client::UpstreamClient,
};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/{server}/mcp", any(gateway::handle))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(crate::oauth::routes())
        .layer(crate::edge::access::OneAuthorityLayer)
        .with_state(state)
}

/// The admin listener's routes: `/metrics` beside the health checks, and the admin API. Not on the public
/// listener, where a reverse proxy on the same host would make every caller look local.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .merge(crate::admin_api::routes(state.clone()))
        .merge(crate::console::routes(state.clone()))
        .fallback(crate::admin_api::not_found)
        .with_state(state)
}

/// 503 only when this replica cannot serve correctly, or is draining (`health.rs`); every
/// component is listed either way.
async fn ready(State(state): State<AppState>) -> Response {
    let report = state.readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, report.text).into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(transparent)]
    Tls(#[from] crate::upstream::client::TlsSetupError),
    #[error("tool pinning: {0}")]
    Pins(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `policy.geoip_database` is missing or not a MaxMind-format database.
    #[error("{0}")]
    GeoIp(String),
    #[error("loading configuration from the store: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Replica(#[from] crate::replicas::ReplicaError),
    #[error("OAuth signing keys: {0}")]
    Signing(#[from] crate::tokens::signing::SigningError),
    #[error("starting the audit writer's thread: {0}")]
    AuditWriter(std::io::Error),
    #[error(transparent)]
    AuditSinks(#[from] crate::audit_sinks::SinkSetupError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started Gatehouse. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where the admin listener (`/metrics`) is bound, when `admin_listen` is set.
    pub admin_addr: Option<SocketAddr>,
    /// The id of this process's heartbeat row (`replica_id`, or random).
    pub replica_id: String,
    pub state: AppState,
    stop_http: CancellationToken,
    stop_background: CancellationToken,
    http: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
}

/// Opens the data directory, master key and store named by `config`, then starts.
pub async fn start(
    config: Config,
    listener: Option<TcpListener>,
) -> Result<RunningServer, StartError> {
    secrets::create_private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let keyring = Keyring::load_or_create(&config.data_dir)?;
    let store = store::open_for_audit(
        &config.database_url(),
        config.database_max_connections,
        config.audit.durable,
    )
    .await?;
    let runtime = crate::state::open(&config, &store).await?;
    start_with_state(config, store, Arc::new(keyring), listener, runtime).await
}

pub async fn start_with(
    config: Config,
    store: DynStore,
    keyring: Arc<Keyring>,
    listener: Option<TcpListener>,
) -> Result<RunningServer, StartError> {
    let runtime = crate::state::RuntimeState::in_memory(&config, &store);
    start_with_state(config, store, keyring, listener, runtime).await
}

/// [`start_with`], keeping runtime state (sessions, counters, …) in `runtime`'s backends.
pub async fn start_with_state(
    config: Config,
    store: DynStore,
    keyring: Arc<Keyring>,
    listener: Option<TcpListener>,
    runtime: crate::state::RuntimeState,
) -> Result<RunningServer, StartError> {
    // Announced before the snapshot is loaded (see `Replica::announce`); a start that fails
    // afterwards takes its row back, so nobody waits for or lists a server that never ran.
    let replica = crate::replicas::Replica::new(config.replica_id.as_deref(), config.listen)?;
    replica.announce(&*store).await?;
    let started = start_announced(
        config,
        store.clone(),
        keyring,
        listener,
        replica.clone(),
        runtime,
    )
    .await;
    if started.is_err()
        && let Err(err) = store.remove_replica(replica.id()).await
    {
        tracing::warn!(error = %err, "could not remove the heartbeat row of a failed start");
    }
    started
}

async fn start_announced(
    config: Config,
    store: DynStore,
    keyring: Arc<Keyring>,
    listener: Option<TcpListener>,
    replica: crate::replicas::Replica,
    runtime: crate::state::RuntimeState,
) -> Result<RunningServer, StartError> {
    let changes = runtime.changes.clone();
    let geo = match &config.policy.geoip_database {
        Some(path) => Some(Arc::new(GeoDb::open(path).map_err(StartError::GeoIp)?)),
        None => None,
    };
    let alg = gatehouse_model::algorithm::Algorithm::parse(&config.oauth.signing_alg)
        .unwrap_or(gatehouse_model::algorithm::Algorithm::EdDSA);
    crate::tokens::signing::ensure_key(&store, &keyring, alg).await?;
    let snapshot = Arc::new(
        SnapshotHandle::load_with_runtime(
            store.clone(),
            keyring.clone(),
            config.public_base().to_owned(),
            crate::policy::PolicyRuntime::with_counters(runtime.counters).with_geo(geo.clone()),
        )
        .await?,
    );
    let (audit, writer) = AuditWriter::new(
        store.clone(),
        keyring.clone(),
        config.audit.channel_capacity,
        config.audit.batch_size,
        config.audit.durable,
        config.audit.linger,
    );
    let audit = audit.with_waits(config.audit.queue_wait, config.audit.commit_timeout);
    let metrics = crate::metrics::Metrics::default();
    let telemetry = crate::telemetry::Telemetry::start(&config.telemetry)?;
    let writer = writer
        .with_geo(geo.clone())
        .with_metrics(metrics.audit.clone());
    let listener = match listener {
        Some(listener) => listener,
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let admin = match config.admin_listen {
        Some(admin) => Some(
            TcpListener::bind(admin)
                .await
                .map_err(|source| StartError::Bind {
                    addr: admin,
                    source,
                })?,
        ),
        None => None,
    };
    let admin_addr = match &admin {
        Some(listener) => Some(listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.admin_listen.unwrap_or(addr),
            source,
        })?),
        None => None,
    };
    let replica = replica.bound_to(addr);
    let prefix = secrets::random_id(8)?;
    let upstream = UpstreamClient::new(&config.gateway)?;
    let client_metadata = crate::federation::client_metadata::MetadataDocuments::new(&config);
    let in_flight = crate::edge::limit::InFlight::new(config.http.max_concurrent_requests);
    let logins = crate::identity::login_guard::LoginGuard::new(&config.http);
    let stop_background = CancellationToken::new();
    let audit_sinks = Arc::new(crate::audit_sinks::AuditSinks::start(
        &config.audit.sinks,
        &upstream,
        &stop_background,
    )?);
    let writer = if audit_sinks.is_empty() {
        writer
    } else {
        writer.with_committed(Some(audit_sinks.clone()))
    };
    let upstream_tokens = Arc::new(crate::upstream::tokens::TokenBroker::new(
        runtime.upstream_tokens,
        upstream.clone(),
        config.gateway.upstream_read_timeout,
    ));
    let upstream_registrar = Arc::new(crate::upstream::registration::Registrar::new(
        upstream.clone(),
        &config,
    ));
    let state = AppState::new(App {
        upstream_tokens,
        upstream_registrar,
        access: HostOriginPolicy::from_config(&config),
        pins: crate::pinning::PinWatch::start_with(store.clone(), runtime.pins)
            .map_err(StartError::Pins)?,
        upstream,
        breakers: crate::upstream::breaker::Breakers::new(&config.gateway),
        stdio: Arc::new(crate::upstream::stdio::InMemoryChildren::new(
            config.gateway.stdio_commands.clone(),
            crate::upstream::stdio::supervisor::Lifecycle::default(),
        )),
        event_streams: Arc::new(crate::state::memory::MemoryEventStreams::default()),
        readiness: crate::health::Readiness::new(readiness::readiness_checks(
            store.clone(),
            snapshot.clone(),
            config.audit.durable,
            runtime.backends.clone(),
        )),
        backends: runtime.backends,
        sessions: runtime.sessions,
        tasks: runtime.tasks,
        config,
        store,
        keyring,
        snapshot: snapshot.clone(),
        audit,
        audit_sinks,
        metrics,
        telemetry,
        identity_providers: crate::federation::identity_providers::Providers::default(),
        in_flight,
        logins,
        external_issuers: crate::federation::external_issuers::ExternalIssuers::default(),
        client_metadata,
        client_assertions: runtime.client_assertions,
        dpop_proofs: runtime.dpop_proofs,
        token_cache: crate::tokens::token_cache::TokenCache::new(
            crate::tokens::token_cache::DEFAULT_CAPACITY,
        ),
        request_ids: RequestIds::new(prefix),
    });

    crate::upstream::stdio::pool::refuse_unlisted_at_start(
        &state.snapshot.current(),
        state.config.gateway.stdio_commands.as_deref(),
    );
    let stop_http = CancellationToken::new();
    let mut background = Vec::new();
    let writer = writer
        .start(stop_background.clone())
        .map_err(StartError::AuditWriter)?;
    background.push(tokio::spawn(writer));
    {
        let snapshot = snapshot.clone();
        let stop = stop_background.clone();
        let feed = changes;
        let replica = replica.clone();
        let flush = state.config.snapshot.usage_flush_interval;
        let reloads = state.metrics.snapshot.clone();
        background.push(tokio::spawn(async move {
            snapshot
                .run(&*feed, &replica, flush, Some(&reloads), stop)
                .await
        }));
    }
    {
        let state = state.clone();
        let stop = stop_background.clone();
        background.push(tokio::spawn(
            async move { sweep_sessions(state, stop).await },
        ));
    }
    {
        let state = state.clone();
        let stop = stop_background.clone();
        background.push(tokio::spawn(async move {
            rotate_signing_keys(state, alg, stop).await
        }));
    }
    if let Some(geo) = geo {
        let stop = stop_background.clone();
        background.push(tokio::spawn(async move { watch_geoip(geo, stop).await }));
    }
    if !state.config.audit.retention.is_zero() {
        background.push(tokio::spawn(crate::audit::retention::run(
            state.store.clone(),
            state.keyring.clone(),
            state.config.audit.retention,
            state.config.audit_archive_dir(),
            state.config.audit.retention_interval,
            stop_background.clone(),
        )));
    }

    let limits =
        crate::edge::serve::Limits::new(&state.config.http, state.config.gateway.max_body_bytes);
    let mut http = vec![tokio::spawn(crate::edge::serve::serve(
        listener,
        router(state.clone()),
        limits.clone(),
        stop_http.clone(),
        state.audit.cut_signal(),
        state.readiness.draining(),
    ))];
    if let Some(admin) = admin {
        http.push(tokio::spawn(crate::edge::serve::serve(
            admin,
            admin_router(state.clone()),
            limits,
            stop_http.clone(),
            state.audit.cut_signal(),
            state.readiness.draining(),
        )));
    }
    tracing::info!(%addr, replica = replica.id(), "gatehouse listening");
    if let Some(admin) = admin_addr {
        tracing::info!(%admin, "metrics listening");
    }
    Ok(RunningServer {
        addr,
        admin_addr,
        replica_id: replica.id().to_owned(),
        state,
        stop_http,
        stop_background,
        http,
        background,
    })
}

async fn sweep_sessions(state: AppState, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        sweep_once(&state, crate::now_ms()).await;
    }
}

/// One pass of the minute's sweep as if the clock read `now_ms` (tests pass a later time to
/// expire what would take a day).
pub async fn sweep_once(state: &AppState, now_ms: i64) {
    let idle =
        i64::try_from(state.config.gateway.session_idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let removed = state.sessions.sweep(now_ms.saturating_sub(idle));
    if removed > 0 {
        tracing::debug!(removed, "idle sessions forgotten");
    }
    // Whatever way a session ended, its stdio subscriptions go with it.
    crate::upstream::stdio::release_ended_sessions(&*state.stdio, &*state.sessions).await;
    let expired = state.tasks.sweep(now_ms);
    if expired > 0 {
        tracing::debug!(expired, "expired task owners forgotten");
    }
    let snapshot = state.snapshot.current();
    state
        .breakers
        .retain(|server| snapshot.servers.contains_key(server));
    // Programs of deleted or changed stdio servers, and idle per-principal ones, stop.
    state.stdio.sweep(&|server, launch| {
        snapshot
            .servers
            .get(server)
            .and_then(|s| s.stdio.as_deref())
            .is_some_and(|current| current == launch)
    });
}

/// Automatic signing-key rotation and clean-up of what has expired (retired keys, revoked
/// token ids). Hourly: rotation intervals are days, and the publish lead is an hour or more.
async fn rotate_signing_keys(
    state: AppState,
    alg: gatehouse_model::algorithm::Algorithm,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3_600));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        let oauth = &state.config.oauth;
        let keep = oauth.access_token_ttl + oauth.clock_skew;
        match crate::tokens::signing::rotate_if_due(
            &state.store,
            &state.keyring,
            alg,
            oauth.key_rotation_interval,
            oauth.key_publish_lead,
            keep,
        )
        .await
        {
            Ok(true) => {
                tracing::info!("signing keys rotated");
                if let Err(err) = state.snapshot.reload().await {
                    tracing::error!(error = %err, "snapshot reload after key rotation failed");
                }
            }
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "signing-key rotation failed"),
        }
        if let Err(err) = state.store.purge_revoked_tokens(crate::now_ms()).await {
            tracing::warn!(error = %err, "purging expired revocations failed");
        }
    }
}

/// How often the GeoIP database file is checked for a new version.
const GEOIP_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Reloads the GeoIP database when its file changes (a cheap `stat` each time; the file is read
/// off the async threads). Failures are logged by `reload_if_changed` itself.
async fn watch_geoip(geo: Arc<GeoDb>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(GEOIP_CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate, and the file was just loaded
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        let geo = geo.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || geo.reload_if_changed()).await {
            tracing::error!(error = %err, "GeoIP reload task failed");
        }
    }
}

impl RunningServer {
    /// Leaves the load balancer, then stops: `/readyz` answers 503 `draining` while requests
    /// are still served for `shutdown.ready_delay`; then accepting stops and requests and
    /// streams in flight get `shutdown.drain_timeout` to finish before the rest are cut; then
    /// the audit trail and key usage are flushed and the heartbeat row removed.
    pub async fn shutdown(self) {
        let settings = self.state.config.shutdown.clone();
        self.state.readiness.start_draining();
        tracing::info!(
            ready_delay = ?settings.ready_delay,
            drain_timeout = ?settings.drain_timeout,
            "draining: /readyz answers 503"
        );
        if !settings.ready_delay.is_zero() {
            tokio::time::sleep(settings.ready_delay).await;
        }
        self.stop_http.cancel();
        let deadline = tokio::time::Instant::now() + settings.drain_timeout;
        for mut http in self.http {
            if tokio::time::timeout_at(deadline, &mut http).await.is_err() {
                http.abort();
            }
        }
        // Requests still running (their connections outlive the accept loop) end now and
        // record their events (outcome `shutdown`) before the audit writer's last flush.
        self.state.audit.cut_in_flight(Duration::from_secs(2)).await;
        self.state.stdio.stop_all();
        self.stop_background.cancel();
        for task in self.background {
            let _ = task.await;
        }
        self.state.telemetry.shutdown().await;
    }

    /// Base URL of this server as reached on its bound address.
    pub fn local_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
