//! The child process behind a stdio server (ADR 0006 §1): started, initialised, watched,
//! restarted with back-off when it dies, stopped on request.
//!
//! One task owns the process. It writes what callers send (one JSON-RPC message per line),
//! reads what the child writes, routes each message through the [`Multiplexer`], and logs the
//! child's stderr. Gatehouse is the child's one MCP client: it sends `initialize` itself when
//! the child starts and keeps the result, which is what clients are shown.

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::{mpsc, watch},
};
use tokio_util::{
    codec::{FramedRead, LinesCodec},
    sync::CancellationToken,
};

use super::mux::{CallerKey, Delivery, Multiplexer, Refused};

/// Longest line a child may write: one JSON-RPC message. A longer one is a broken child.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Messages buffered for one caller before the child's output waits for it.
const CALLER_QUEUE: usize = 64;
/// Stderr lines logged per child per second at most; the rest are counted.
const STDERR_LINES_PER_SECOND: u32 = 20;
/// The protocol version Gatehouse asks a stdio child for.
const PROTOCOL_VERSION: &str = "2025-11-25";
/// The id prefix of the subscriptions Gatehouse renews on a restarted child; their answers
/// are nobody's.
const RESUBSCRIBE: &str = "gatehouse-resubscribe-";
/// The id prefix of the unsubscriptions Gatehouse sends for ended sessions; their answers
/// are dropped too.
const UNSUBSCRIBE: &str = "gatehouse-unsubscribe-";

/// What to run.
#[derive(Clone, PartialEq, Eq)]
pub struct StdioCommand {
    pub program: String,
    pub args: Vec<String>,
    /// The child's whole environment besides `PATH` (inherited): nothing else of Gatehouse's
    /// own environment (its master key, database URL) reaches a program it runs.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Resource limits, applied by `prlimit` (util-linux): setting them in the child
    /// ourselves would take unsafe code. Without `prlimit` a limited child does not start.
    pub limits: Option<ResourceLimits>,
}

impl std::fmt::Debug for StdioCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment's values are credentials: only their names are shown.
        let env: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("StdioCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .field("limits", &self.limits)
            .finish()
    }
}

/// What a child may use; `None` leaves a limit as Gatehouse's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Address space, bytes (`RLIMIT_AS`).
    pub memory_bytes: Option<u64>,
    /// Open files (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of its user (`RLIMIT_NPROC`).
    pub processes: Option<u64>,
    /// CPU seconds (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
}

impl ResourceLimits {
    fn prlimit_args(&self) -> Vec<String> {
        [
            ("--as", self.memory_bytes),
            ("--nofile", self.open_files),
            ("--nproc", self.processes),
            ("--cpu", self.cpu_seconds),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.map(|v| format!("{flag}={v}")))
        .collect()
    }
}

/// How restarts are spaced, and how a child is stopped.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// The first restart waits this long; each further one twice as long, up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// A child that ran this long before dying restarts after `first` again.
    pub healthy_after: Duration,
    /// On stop, its stdin is closed (an MCP server's signal to exit) and it gets this long;
    /// then SIGTERM to its process group and as long again; then SIGKILL.
    pub stop_grace: Duration,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StdioError {
    #[error("the server process is not running (starting, or restarting after a failure)")]
    Unavailable,
    #[error("refused: {0}")]
    Refused(#[from] Refused),
}

/// One request in flight: what the child sends its caller, ending with the response.
pub struct Call {
    pub key: CallerKey,
    pub messages: mpsc::Receiver<FromChild>,
}

/// A message for a caller: one the child wrote, or the error Gatehouse answers a request with
/// when the child died before answering it (told apart, so a crash is never mistaken for an
/// error the server chose to send).
#[derive(Debug, Clone, PartialEq)]
pub enum FromChild {
    Message(Value),
    Crashed(Value),
}

impl FromChild {
    pub fn into_value(self) -> Value {
        match self {
            FromChild::Message(value) | FromChild::Crashed(value) => value,
        }
    }
}

struct Shared {
    mux: Multiplexer,
    callers: HashMap<CallerKey, mpsc::Sender<FromChild>>,
    /// Who each caller is (the principal's key), so a later message of theirs (an answer to
    /// the child's request, a cancellation) is matched to their own requests only.
    tags: HashMap<CallerKey, Arc<str>>,
    /// Listening streams, with the session each was opened in.
    listeners: Vec<(Option<Arc<str>>, mpsc::Sender<FromChild>)>,
    /// Sessions subscribed to each resource URI: the child is subscribed once per URI, and
    /// its updates reach only the sessions that asked for them.
    subscriptions: HashMap<String, HashSet<Arc<str>>>,
    stdin: Option<mpsc::Sender<Value>>,
    next_caller: CallerKey,
    initialized: Option<Value>,
}

/// A running stdio server. Cloning shares it; [`Supervisor::stop`] ends it.
#[derive(Clone)]
pub struct Supervisor {
    name: Arc<str>,
    shared: Arc<Mutex<Shared>>,
    ready: watch::Receiver<bool>,
    stop: CancellationToken,
}

impl Supervisor {
    /// Starts the child (and keeps restarting it) in a task of its own.
    pub fn start(name: &str, command: StdioCommand, lifecycle: Lifecycle) -> Self {
        let (ready_tx, ready) = watch::channel(false);
        let supervisor = Self {
            name: Arc::from(name),
            shared: Arc::new(Mutex::new(Shared {
                mux: Multiplexer::new(),
                callers: HashMap::new(),
                tags: HashMap::new(),
                listeners: Vec::new(),
                subscriptions: HashMap::new(),
                stdin: None,
                next_caller: 0,
                initialized: None,
            })),
            ready,
            stop: CancellationToken::new(),
        };
        tokio::spawn(supervisor.clone().run(command, lifecycle, ready_tx));
        supervisor
    }

    /// The child's `InitializeResult`, once it has answered.
    pub fn initialize_result(&self) -> Option<Value> {
        self.shared.lock().initialized.clone()
    }

    /// Waits up to `within` for the child to be initialised.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), StdioError> {
        let mut ready = self.ready.clone();
        tokio::time::timeout(within, ready.wait_for(|r| *r))
            .await
            .map_err(|_| StdioError::Unavailable)?
            .map_err(|_| StdioError::Unavailable)?;
        Ok(())
    }

    /// Sends a request; its messages (server requests, progress, then the response) arrive
    /// on the returned [`Call`]. `capabilities` are the client capabilities the caller
    /// declared (`sampling`, `elicitation`, `roots`).
    pub fn request(&self, message: Value, capabilities: &[&str]) -> Result<Call, StdioError> {
        self.request_as("", message, capabilities)
    }

    /// [`Supervisor::request`] for the principal named `tag`, whose later messages
    /// ([`Supervisor::answer`]) may reach this request only.
    pub fn request_as(
        &self,
        tag: &str,
        message: Value,
        capabilities: &[&str],
    ) -> Result<Call, StdioError> {
        let mut shared = self.shared.lock();
        let stdin = shared.stdin.clone().ok_or(StdioError::Unavailable)?;
        shared.next_caller += 1;
        let key = shared.next_caller;
        shared.mux.declare(key, capabilities);
        let rewritten = shared.mux.outgoing(key, message)?;
        let (tx, messages) = mpsc::channel(CALLER_QUEUE);
        if stdin.try_send(rewritten).is_err() {
            shared.mux.forget(key);
            return Err(StdioError::Unavailable);
        }
        shared.callers.insert(key, tx);
        shared.tags.insert(key, Arc::from(tag));
        Ok(Call { key, messages })
    }

    /// A message from the principal named `tag` that is not a request: an answer to a request
    /// of the child's (which must have gone to one of its calls), or a cancellation of one of
    /// its own requests. Anything else passes to the child unchanged.
    pub fn answer(&self, tag: &str, message: Value) -> Result<(), StdioError> {
        let keys: Vec<CallerKey> = {
            let shared = self.shared.lock();
            let mut keys: Vec<CallerKey> = shared
                .tags
                .iter()
                .filter(|(_, t)| &***t == tag)
                .map(|(k, _)| *k)
                .collect();
            keys.sort_unstable();
            keys
        };
        let mut refused = Refused::NotYourRequest;
        for key in keys {
            match self.send(key, message.clone()) {
                Err(StdioError::Refused(why)) => refused = why,
                done => return done,
            }
        }
        if message.get("method").is_some() && message.get("id").is_none() {
            let is_cancel =
                message.get("method").and_then(Value::as_str) == Some("notifications/cancelled");
            if !is_cancel {
                // A notification of no request's (a roots change): the child's to hear.
                return self.send(0, message);
            }
        }
        Err(StdioError::Refused(refused))
    }

    /// Requests in flight on the child.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().mux.in_flight()
    }

    /// A message from the caller of `key` to the child: its answer to a request of the
    /// child's, or a notification (a cancellation of its own request).
    pub fn send(&self, key: CallerKey, message: Value) -> Result<(), StdioError> {
        let mut shared = self.shared.lock();
        let stdin = shared.stdin.clone().ok_or(StdioError::Unavailable)?;
        let rewritten = shared.mux.outgoing(key, message)?;
        stdin
            .try_send(rewritten)
            .map_err(|_| StdioError::Unavailable)
    }

    /// The caller of `key` is gone (its client disconnected): requests of the child's it
    /// held are answered with an error, and its response will be dropped.
    pub fn forget(&self, key: CallerKey) {
        let mut shared = self.shared.lock();
        shared.callers.remove(&key);
        shared.tags.remove(&key);
        let orphaned = shared.mux.forget(key);
        if let Some(stdin) = shared.stdin.clone() {
            for reply in orphaned {
                let _ = stdin.try_send(reply);
            }
        }
    }

    /// The child's messages that belong to no request (list changes, log messages).
    pub fn listen(&self) -> mpsc::Receiver<FromChild> {
        self.listen_in(None)
    }

    /// [`Supervisor::listen`] for a stream opened in `session`, which also receives the
    /// updates of the resources that session subscribed to.
    pub fn listen_in(&self, session: Option<&str>) -> mpsc::Receiver<FromChild> {
        let (tx, rx) = mpsc::channel(CALLER_QUEUE);
        let mut shared = self.shared.lock();
        shared.listeners.retain(|(_, l)| !l.is_closed());
        shared.listeners.push((session.map(Arc::from), tx));
        rx
    }

    /// Records that `session` subscribed to `uri`; true when it is the first, so the child is
    /// to be asked (later ones are answered by Gatehouse).
    pub fn subscribe(&self, session: &str, uri: &str) -> bool {
        let mut shared = self.shared.lock();
        let sessions = shared.subscriptions.entry(uri.to_owned()).or_default();
        let first = sessions.is_empty();
        sessions.insert(Arc::from(session));
        first
    }

    /// Forgets `session`'s subscription to `uri`; true when none is left, so the child is to
    /// be told. A session that was not subscribed changes nothing (false).
    pub fn unsubscribe(&self, session: &str, uri: &str) -> bool {
        let mut shared = self.shared.lock();
        let Some(sessions) = shared.subscriptions.get_mut(uri) else {
            return false;
        };
        if !sessions.remove(session) {
            return false;
        }
        let last = sessions.is_empty();
        if last {
            shared.subscriptions.remove(uri);
        }
        last
    }

    /// The sessions holding a subscription, each once.
    pub fn subscribed_sessions(&self) -> Vec<Arc<str>> {
        let shared = self.shared.lock();
        let sessions: HashSet<&Arc<str>> = shared.subscriptions.values().flatten().collect();
        sessions.into_iter().cloned().collect()
    }

    /// Forgets every subscription of an ended session, and unsubscribes the child from the
    /// URIs no other session wants (Gatehouse's own requests: their answers are dropped).
    pub async fn end_session(&self, session: &str) {
        let (released, stdin) = {
            let mut shared = self.shared.lock();
            let mut released = Vec::new();
            shared.subscriptions.retain(|uri, sessions| {
                if sessions.remove(session) && sessions.is_empty() {
                    released.push(uri.clone());
                    return false;
                }
                true
            });
            (released, shared.stdin.clone())
        };
        // A child not running now is subscribed from the list on its start, which no longer
        // holds these URIs.
        let Some(stdin) = stdin else { return };
        for (n, uri) in released.into_iter().enumerate() {
            let _ = stdin
                .send(json!({"jsonrpc": "2.0", "id": format!("{UNSUBSCRIBE}{n}"),
                    "method": "resources/unsubscribe", "params": {"uri": uri}}))
                .await;
        }
    }

    /// Stops the child and does not restart it.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    async fn run(self, command: StdioCommand, lifecycle: Lifecycle, ready: watch::Sender<bool>) {
        let mut delay = lifecycle.first;
        while !self.stop.is_cancelled() {
            let started = tokio::time::Instant::now();
            match spawn(&command) {
                Ok(child) => self.serve(child, &ready, lifecycle.stop_grace).await,
                Err(err) => {
                    tracing::warn!(server = %self.name, error = %err, "stdio server did not start");
                }
            }
            let _ = ready.send(false);
            let failed = {
                let mut shared = self.shared.lock();
                shared.stdin = None;
                shared.initialized = None;
                let failed = shared.mux.fail_all("the server process exited");
                let failed = failed
                    .into_iter()
                    .filter_map(|(key, reply)| shared.callers.remove(&key).map(|tx| (tx, reply)))
                    .collect::<Vec<_>>();
                // Calls with nothing in flight (their response already sent) end too.
                shared.callers.clear();
                shared.tags.clear();
                // Listening streams end: their clients reconnect to the restarted child.
                shared.listeners.clear();
                // The sessions' subscriptions are kept: the new child is subscribed to
                // them again once it is initialised, so updates keep reaching them.
                failed
            };
            for (tx, reply) in failed {
                let _ = tx.send(FromChild::Crashed(reply)).await;
            }
            if self.stop.is_cancelled() {
                break;
            }
            if started.elapsed() >= lifecycle.healthy_after {
                delay = lifecycle.first;
            }
            tracing::warn!(server = %self.name, restart_in_ms = delay.as_millis() as u64, "stdio server exited");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => break,
            }
            delay = (delay * 2).min(lifecycle.max);
        }
    }

    /// Runs one child until it exits or the supervisor stops.
    async fn serve(&self, mut child: Child, ready: &watch::Sender<bool>, grace: Duration) {
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return;
        };
        let (tx, rx) = mpsc::channel::<Value>(256);
        let writer = tokio::spawn(write_lines(stdin, rx));
        let logger = tokio::spawn(log_stderr(self.name.clone(), stderr));
        let init_id = "gatehouse-initialize";
        let _ = tx
            .send(json!({
                "jsonrpc": "2.0", "id": init_id, "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
                    "clientInfo": {"name": "gatehouse", "version": env!("CARGO_PKG_VERSION")},
                }
            }))
            .await;
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
        loop {
            let line = tokio::select! {
                line = lines.next() => line,
                () = self.stop.cancelled() => break,
            };
            let text = match line {
                Some(Ok(text)) => text,
                Some(Err(err)) => {
                    tracing::warn!(server = %self.name, error = %err, "stdio server wrote an unreadable line; restarting it");
                    break;
                }
                None => break,
            };
            if text.trim().is_empty() {
                continue;
            }
            let Ok(message) = gatehouse_model::jsonrpc::strict_value(&text) else {
                tracing::warn!(server = %self.name, "stdio server wrote a line that is not JSON; ignored");
                continue;
            };
            if message.get("id").and_then(Value::as_str) == Some(init_id) {
                if let Some(result) = message.get("result") {
                    {
                        let mut shared = self.shared.lock();
                        shared.initialized = Some(result.clone());
                        shared.stdin = Some(tx.clone());
                    }
                    let _ = tx
                        .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                        .await;
                    let uris: Vec<String> =
                        self.shared.lock().subscriptions.keys().cloned().collect();
                    for (n, uri) in uris.into_iter().enumerate() {
                        let _ = tx
                            .send(json!({"jsonrpc": "2.0", "id": format!("{RESUBSCRIBE}{n}"),
                                "method": "resources/subscribe", "params": {"uri": uri}}))
                            .await;
                    }
                    let _ = ready.send(true);
                } else {
                    tracing::warn!(server = %self.name, "stdio server refused initialize; restarting it");
                    break;
                }
                continue;
            }
            let renewed = message.get("method").is_none()
                && message
                    .get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.starts_with(RESUBSCRIBE) || id.starts_with(UNSUBSCRIBE));
            if !renewed {
                self.deliver(message, &tx).await;
            }
        }
        // Closing stdin asks the child to exit (the MCP stdio transport's shutdown); the
        // writer ends once every sender is gone.
        self.shared.lock().stdin = None;
        drop(tx);
        end(&self.name, &mut child, grace).await;
        writer.abort();
        logger.abort();
    }

    async fn deliver(&self, message: Value, stdin: &mpsc::Sender<Value>) {
        let delivery = self.shared.lock().mux.incoming(message);
        match delivery {
            Delivery::To {
                caller,
                message,
                last,
            } => {
                let tx = {
                    let mut shared = self.shared.lock();
                    if last {
                        shared.tags.remove(&caller);
                        shared.callers.remove(&caller)
                    } else {
                        shared.callers.get(&caller).cloned()
                    }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(FromChild::Message(message)).await;
                }
            }
            Delivery::Broadcast(message) => {
                let listeners: Vec<mpsc::Sender<FromChild>> = {
                    let mut shared = self.shared.lock();
                    shared.listeners.retain(|(_, l)| !l.is_closed());
                    let updated = (message.get("method").and_then(Value::as_str)
                        == Some("notifications/resources/updated"))
                    .then(|| message.pointer("/params/uri").and_then(Value::as_str));
                    let Shared {
                        listeners,
                        subscriptions,
                        ..
                    } = &*shared;
                    listeners
                        .iter()
                        .filter(|(session, _)| match updated {
                            // A resource's update: only to the sessions subscribed to it.
                            Some(uri) => session.as_ref().is_some_and(|s| {
                                uri.and_then(|u| subscriptions.get(u))
                                    .is_some_and(|subscribed| subscribed.contains(s))
                            }),
                            None => true,
                        })
                        .map(|(_, l)| l.clone())
                        .collect()
                };
                for listener in listeners {
                    let _ = listener.try_send(FromChild::Message(message.clone()));
                }
            }
            Delivery::Reply(reply) => {
                let _ = stdin.send(reply).await;
            }
            Delivery::Drop => {}
        }
    }
}

/// Waits `grace` for the child to exit, then signals its process group with SIGTERM and waits
/// as long again, then kills it.
async fn end(name: &str, child: &mut Child, grace: Duration) {
    if tokio::time::timeout(grace, child.wait()).await.is_ok() {
        return;
    }
    if let Some(pid) = child.id() {
        // The group is the child's own (`process_group(0)`), so helpers it started go too.
        // `kill` is the portable way to signal without unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    tracing::warn!(server = %name, "stdio server did not stop when asked; killing it");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn spawn(command: &StdioCommand) -> std::io::Result<Child> {
    let mut cmd = match &command.limits {
        None => Command::new(&command.program),
        Some(limits) => {
            let prlimit = find_in_path("prlimit").ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "resource limits are set but prlimit (util-linux) is not installed; \
                     install it or remove the limits",
                )
            })?;
            let mut cmd = Command::new(prlimit);
            cmd.args(limits.prlimit_args())
                .arg("--")
                .arg(&command.program);
            cmd
        }
    };
    cmd.args(&command.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (key, value) in &command.env {
        cmd.env(key, value);
    }
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    cmd.spawn()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<Value>) {
    while let Some(message) = rx.recv().await {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}

async fn log_stderr(name: Arc<str>, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    let mut window = tokio::time::Instant::now();
    let (mut logged, mut skipped) = (0u32, 0u64);
    while let Ok(Some(line)) = lines.next_line().await {
        if window.elapsed() >= Duration::from_secs(1) {
            if skipped > 0 {
                tracing::warn!(server = %name, skipped, "stdio server stderr lines not logged");
            }
            window = tokio::time::Instant::now();
            (logged, skipped) = (0, 0);
        }
        if logged < STDERR_LINES_PER_SECOND {
            logged += 1;
            tracing::info!(server = %name, "{line}");
        } else {
            skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests;
