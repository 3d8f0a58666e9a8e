//! The one way operators change what Gatehouse holds: every mutation (create, update, rotate,
//! revoke, disable, delete, approve, import) is a method here that validates, applies, and
//! records an operator event in the audit trail. The CLI calls it; an admin API will too.
//!
//! A refused or failed change records nothing: the event says what changed, and nothing did.
//! The event is written after the change commits, through the audit writer every other event
//! goes through, and the method waits for it to be committed: a change whose event could not
//! be recorded returns [`AdminError::Unrecorded`] (the change stands; the caller must say so).
//! Change and event are two transactions (the store's methods own theirs), so a process killed
//! between them leaves the change unrecorded.

mod accounts;
mod admin_tokens;
mod declared;
mod sessions;

pub use admin_tokens::CreatedAdminToken;
pub use declared::{MIN_DECLARED_SECRET_LEN, ServerSettings};

use serde_json::{Value, json};
use std::{net::IpAddr, sync::Arc, time::Duration, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    AdminError, AdminResult, CreatedKey, NewConnection, NewKey, NewPolicy, NewServer, ServerUpdate,
    summary,
};
use crate::{
    Config,
    audit::{AuditSink, AuditWriter},
    secrets::Keyring,
    store::DynStore,
};
use gatehouse_model::{
    audit::{AuditEvent, Decision, OperatorAction},
    records::Generation,
};

/// Who makes a change and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    actor: String,
    origin: &'static str,
    host: Option<String>,
    ip: Option<IpAddr>,
}

impl Operator {
    /// An operator at the command line on `host`. The actor is who the CLI says runs it (the
    /// account, or `--actor`): whoever holds the data directory can claim any name, so the
    /// trail attributes changes, it does not authenticate their author.
    pub fn cli(actor: &str, host: Option<String>) -> AdminResult<Self> {
        Ok(Operator {
            actor: checked_actor(actor)?,
            origin: "cli",
            host: host.filter(|h| !h.is_empty() && !h.chars().any(char::is_control)),
            ip: None,
        })
    }

    /// An operator authenticated by an admin API, calling from `ip` (recorded as the event's
    /// address).
    pub fn api(actor: &str, ip: IpAddr) -> AdminResult<Self> {
        Ok(Operator {
            actor: checked_actor(actor)?,
            origin: "api",
            host: None,
            ip: Some(ip),
        })
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }
}

fn checked_actor(actor: &str) -> AdminResult<String> {
    let actor = actor.trim();
    if actor.is_empty() || actor.chars().count() > 128 || actor.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "actor {actor:?}: give 1-128 printable characters"
        )));
    }
    Ok(actor.to_owned())
}

/// One change, as the event records it.
struct Change {
    action: &'static str,
    target_kind: &'static str,
    target: String,
    before: Option<Value>,
    after: Option<Value>,
}

pub struct AdminService {
    store: DynStore,
    keyring: Arc<Keyring>,
    audit: AuditSink,
    clock: fn() -> i64,
    announce: Option<Arc<dyn crate::change_feed::Announce>>,
    /// Finds per-user upstreams' authorization servers and registers at them.
    registrar: Option<Arc<dyn super::upstream_registration::UpstreamRegistrar>>,
}

/// The audit writer of a service that runs apart from a server (the CLI): stop it once the
/// changes are made.
pub struct OwnWriter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl OwnWriter {
    /// Writes whatever is still queued and stops.
    pub async fn close(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the operator audit writer failed");
        }
    }
}

impl AdminService {
    /// A service recording through `audit` (a running server's writer).
    pub fn new(store: DynStore, keyring: Arc<Keyring>, audit: AuditSink) -> Self {
        Self {
            store,
            keyring,
            audit,
            clock: crate::now_ms,
            announce: None,
            registrar: None,
        }
    }

    /// Finds per-user upstreams' authorization servers through `registrar` (without one, a
    /// change that needs discovery is refused).
    pub fn with_registrar(
        mut self,
        registrar: Arc<dyn super::upstream_registration::UpstreamRegistrar>,
    ) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// `discovery` resolved to settings for `server` at `url`, registering when needed.
    async fn discovered(
        &self,
        server: &str,
        url: &str,
        discovery: super::upstream_registration::PerUserDiscovery,
        previous: Option<&gatehouse_model::upstream_auth::UpstreamAuthRecord>,
    ) -> AdminResult<super::upstream_auth::NewUpstreamAuth> {
        let Some(registrar) = &self.registrar else {
            return Err(super::undiscovered());
        };
        if url.starts_with("stdio://") || url.is_empty() {
            return Err(AdminError::Invalid(
                "per-user tokens are for servers reached over HTTP".into(),
            ));
        }
        super::upstream_registration::resolve(
            registrar.as_ref(),
            &self.keyring,
            server,
            url,
            discovery,
            previous,
        )
        .await
    }

    /// Announces each change to the running replicas through `announce` once it is recorded.
    pub fn with_announcer(mut self, announce: Arc<dyn crate::change_feed::Announce>) -> Self {
        self.announce = Some(announce);
        self
    }

    /// A service with an audit writer of its own, appending to the store's trail; durable, so
    /// each change returns once its event is committed.
    pub fn with_own_writer(store: DynStore, keyring: Arc<Keyring>) -> (Self, OwnWriter) {
        let (audit, writer) =
            AuditWriter::new(store.clone(), keyring.clone(), 16, 16, true, Duration::ZERO);
        let stop = CancellationToken::new();
        let task = tokio::spawn(writer.run(stop.clone()));
        (Self::new(store, keyring, audit), OwnWriter { stop, task })
    }

    /// Reads the time of revocations, disables and events from `clock` (tests).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// For reads; a change made on the store directly is not recorded.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The time this service records changes at (milliseconds).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn record(&self, by: &Operator, change: Change, started: Instant) -> AdminResult<()> {
        let unrecorded = |why: String| AdminError::Unrecorded {
            action: change.action,
            target: change.target.clone(),
            why,
        };
        let id = crate::secrets::random_id(16).map_err(|e| unrecorded(e.to_string()))?;
        let event = AuditEvent {
            ts_ms: (self.clock)(),
            request_id: format!("op_{id}"),
            client: None,
            credential_id: None,
            user: None,
            ip: by.ip.map(|ip| ip.to_string()),
            country: None,
            server: None,
            http_method: String::new(),
            rpc_method: None,
            tool: None,
            decision: Decision::Allow,
            reason: None,
            status: 0,
            upstream_status: None,
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            outcome: None,
            response_bytes: None,
            batch: Vec::new(),
            operator: Some(OperatorAction {
                actor: by.actor.clone(),
                origin: by.origin.to_owned(),
                host: by.host.clone(),
                action: change.action.to_owned(),
                target_kind: change.target_kind.to_owned(),
                target: change.target.clone(),
                before: change.before.clone(),
                after: change.after.clone(),
            }),
            rule: None,
        };
        let recorded = match self.audit.submit(event) {
            Some(committed) => committed
                .await
                .map_err(|_| unrecorded("the audit writer has stopped".into())),
            // A server's writer in non-durable mode: queued, written with the next batch.
            None => Ok(()),
        };
        // Every change is committed before it is recorded.
        if let Some(announce) = &self.announce {
            announce.changed().await;
        }
        recorded
    }

    pub async fn add_server(&self, by: &Operator, mut new: NewServer) -> AdminResult<Generation> {
        let started = Instant::now();
        let name = new.name.clone();
        if let Some(discovery) = new.per_user_discovery.take() {
            if new.upstream_auth.is_some() {
                return Err(AdminError::Invalid(
                    "give upstream token settings or discovery, not both".into(),
                ));
            }
            let url = new.url.clone();
            new.upstream_auth = Some(self.discovered(&name, &url, discovery, None).await?);
        }
        let generation = super::add_server(&*self.store, &self.keyring, new).await?;
        let after = self.store.get_server(&name).await.ok();
        let change = Change {
            action: "server.add",
            target_kind: "server",
            target: name,
            before: None,
            after: after.as_ref().map(summary::server),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn update_server(
        &self,
        by: &Operator,
        name: &str,
        mut update: ServerUpdate,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_server(name).await?;
        if let Some(discovery) = update.per_user_discovery.take() {
            if update.upstream_auth.is_some() {
                return Err(AdminError::Invalid(
                    "give upstream token settings or discovery, not both".into(),
                ));
            }
            let url = update.url.clone().unwrap_or_else(|| before.url.clone());
            let found = self
                .discovered(name, &url, discovery, Some(&before.upstream_auth))
                .await?;
            update.upstream_auth = Some(Some(found));
        }
        let new_credential = matches!(update.credential, Some(Some(_)));
        let new_upstream_secret = matches!(update.upstream_auth, Some(Some(_)));
        let generation = super::update_server(&*self.store, &self.keyring, name, update).await?;
        let mut after = self
            .store
            .get_server(name)
            .await
            .ok()
            .map(|s| summary::server(&s));
        if let Some(Value::Object(fields)) = after.as_mut()
            && new_credential
        {
            fields.insert("credential_replaced".into(), Value::Bool(true));
        }
        if let Some(Value::Object(fields)) = after.as_mut()
            && new_upstream_secret
        {
            fields.insert("upstream_secret_replaced".into(), Value::Bool(true));
        }
        let change = Change {
            action: "server.update",
            target_kind: "server",
            target: name.to_owned(),
            before: Some(summary::server(&before)),
            after,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Approves the server's pending tool definitions (all, or those named); returns the
    /// generation and how many were approved.
    pub async fn approve_tools(
        &self,
        by: &Operator,
        server: &str,
        tools: &[String],
    ) -> AdminResult<(Generation, u64)> {
        let started = Instant::now();
        let pending: Vec<String> = self
            .store
            .list_tool_pins()
            .await?
            .into_iter()
            .filter(|p| p.server == server && p.pending_hash.is_some())
            .filter(|p| tools.is_empty() || tools.contains(&p.tool))
            .map(|p| p.tool)
            .collect();
        let (generation, approved) = self
            .store
            .approve_tools(server, tools, (self.clock)())
            .await?;
        let change = Change {
            action: "server.approve_tools",
            target_kind: "server",
            target: server.to_owned(),
            before: Some(json!({ "pending": pending })),
            after: Some(json!({ "approved": pending, "count": approved })),
        };
        self.record(by, change, started).await?;
        Ok((generation, approved))
    }

    /// Discards the server's pending tool definitions (all, or those named): each tool keeps
    /// its approved definition, and stays held while the upstream serves another. Returns the
    /// generation and how many were discarded.
    pub async fn reject_tools(
        &self,
        by: &Operator,
        server: &str,
        tools: &[String],
    ) -> AdminResult<(Generation, u64)> {
        let started = Instant::now();
        let pending: Vec<Value> = self
            .store
            .list_tool_pins()
            .await?
            .into_iter()
            .filter(|p| p.server == server && p.pending_hash.is_some())
            .filter(|p| tools.is_empty() || tools.contains(&p.tool))
            .map(|p| json!({ "tool": p.tool, "hash": p.pending_hash, "reason": p.pending_reason }))
            .collect();
        let (generation, rejected) = self
            .store
            .reject_tools(server, tools, (self.clock)())
            .await?;
        let change = Change {
            action: "server.reject_tools",
            target_kind: "server",
            target: server.to_owned(),
            before: Some(json!({ "pending": pending })),
            after: Some(json!({ "rejected": rejected })),
        };
        self.record(by, change, started).await?;
        Ok((generation, rejected))
    }

    /// Removes the server and its connections.
    pub async fn remove_server(&self, by: &Operator, name: &str) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_server(name).await?;
        super::virtual_servers::check_removable(&*self.store, name).await?;
        let generation = self.store.delete_server(name).await?;
        let change = Change {
            action: "server.remove",
            target_kind: "server",
            target: name.to_owned(),
            before: Some(summary::server(&before)),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn create_client(
        &self,
        by: &Operator,
        name: &str,
        description: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let generation = super::create_client(&*self.store, name, description).await?;
        let after = self.store.get_client(name).await.ok();
        let change = Change {
            action: "client.create",
            target_kind: "client",
            target: name.to_owned(),
            before: None,
            after: after.as_ref().map(summary::client),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Disables the client (all its keys and tokens stop working) or enables it again.
    pub async fn set_client_enabled(
        &self,
        by: &Operator,
        name: &str,
        enabled: bool,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_client(name).await?;
        let at = (!enabled).then(|| (self.clock)());
        let generation = self.store.set_client_disabled(name, at).await?;
        let after = self.store.get_client(name).await.ok();
        let change = Change {
            action: if enabled {
                "client.enable"
            } else {
                "client.disable"
            },
            target_kind: "client",
            target: name.to_owned(),
            before: Some(summary::client(&before)),
            after: after.as_ref().map(summary::client),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Deletes the client with its keys, connections and OAuth secrets. A policy scoped to
    /// the client is refused here rather than left to apply to a later client of that name.
    pub async fn delete_client(&self, by: &Operator, name: &str) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_client(name).await?;
        let scoped: Vec<String> = self
            .store
            .list_policies()
            .await?
            .into_iter()
            .filter(|p| p.client.as_deref() == Some(name))
            .map(|p| p.id)
            .collect();
        if !scoped.is_empty() {
            return Err(AdminError::Invalid(format!(
                "client {name:?} has policies scoped to it ({}): remove them first",
                scoped.join(", ")
            )));
        }
        let generation = self.store.delete_client(name).await?;
        let change = Change {
            action: "client.delete",
            target_kind: "client",
            target: name.to_owned(),
            before: Some(summary::client(&before)),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Creates a key; its token is in the result, never in the event.
    pub async fn create_key(&self, by: &Operator, new: NewKey) -> AdminResult<CreatedKey> {
        let started = Instant::now();
        let created = super::create_key(&*self.store, &self.keyring, new).await?;
        let change = Change {
            action: "key.create",
            target_kind: "api_key",
            target: created.record.id.clone(),
            before: None,
            after: Some(summary::key(&created.record)),
        };
        self.record(by, change, started).await?;
        Ok(created)
    }

    /// Issues a successor; the event is about the old key and names the new one.
    pub async fn rotate_key(
        &self,
        by: &Operator,
        key_id: &str,
        overlap: Duration,
    ) -> AdminResult<CreatedKey> {
        let started = Instant::now();
        let before = self.store.get_api_key(key_id).await?;
        let created = super::rotate_key(&*self.store, &self.keyring, key_id, overlap).await?;
        let mut after = self
            .store
            .get_api_key(key_id)
            .await
            .ok()
            .map(|k| summary::key(&k));
        if let Some(Value::Object(fields)) = after.as_mut() {
            fields.insert("successor".into(), Value::String(created.record.id.clone()));
        }
        let change = Change {
            action: "key.rotate",
            target_kind: "api_key",
            target: key_id.to_owned(),
            before: Some(summary::key(&before)),
            after,
        };
        self.record(by, change, started).await?;
        Ok(created)
    }

    pub async fn revoke_key(&self, by: &Operator, key_id: &str) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_api_key(key_id).await?;
        let generation = self.store.revoke_api_key(key_id, (self.clock)()).await?;
        let after = self.store.get_api_key(key_id).await.ok();
        let change = Change {
            action: "key.revoke",
            target_kind: "api_key",
            target: key_id.to_owned(),
            before: Some(summary::key(&before)),
            after: after.as_ref().map(summary::key),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Creates or replaces the connection `client → server`.
    pub async fn grant_connection(
        &self,
        by: &Operator,
        new: NewConnection,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let (client, server) = (new.client.clone(), new.server.clone());
        let before = self.connection(&client, &server).await?;
        let generation = super::grant_connection(&*self.store, new).await?;
        let after = self.connection(&client, &server).await.ok().flatten();
        let change = Change {
            action: "connection.grant",
            target_kind: "connection",
            target: format!("{client}/{server}"),
            before: before.as_ref().map(summary::connection),
            after: after.as_ref().map(summary::connection),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn revoke_connection(
        &self,
        by: &Operator,
        client: &str,
        server: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.connection(client, server).await?;
        let generation = self.store.delete_connection(client, server).await?;
        let change = Change {
            action: "connection.revoke",
            target_kind: "connection",
            target: format!("{client}/{server}"),
            before: before.as_ref().map(summary::connection),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    async fn connection(
        &self,
        client: &str,
        server: &str,
    ) -> AdminResult<Option<gatehouse_model::records::ConnectionRecord>> {
        Ok(self
            .store
            .list_connections()
            .await?
            .into_iter()
            .find(|c| c.client == client && c.server == server))
    }

    /// Adds a policy, refusing what a server with `config` could not run.
    pub async fn add_policy(
        &self,
        by: &Operator,
        new: NewPolicy,
        config: &Config,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let id = new.id.clone();
        let generation = super::add_policy_for(&*self.store, new, config).await?;
        let after = self.policy(&id).await.ok().flatten();
        let change = Change {
            action: "policy.add",
            target_kind: "policy",
            target: id,
            before: None,
            after: after.as_ref().map(summary::policy),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Imports a JSON array of policies, all or none: one event naming every policy added.
    pub async fn import_policies(
        &self,
        by: &Operator,
        text: &str,
        config: &Config,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let existing: Vec<String> = self.policy_ids().await?;
        let generation = super::import_policies_for(&*self.store, text, config).await?;
        let added: Vec<String> = self
            .policy_ids()
            .await?
            .into_iter()
            .filter(|id| !existing.contains(id))
            .collect();
        let change = Change {
            action: "policy.import",
            target_kind: "policy",
            target: added.join(","),
            before: None,
            after: Some(json!({ "added": added })),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Deletes a policy (and its quota counters) or a guardrail.
    pub async fn remove_policy(&self, by: &Operator, id: &str) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.policy(id).await?;
        let generation = self.store.delete_policy(id).await?;
        let change = Change {
            action: "policy.remove",
            target_kind: "policy",
            target: id.to_owned(),
            before: before.as_ref().map(summary::policy),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Replaces policy `new.id` with `new` (its kind, scope and specification) in one stored
    /// change: a refused replacement leaves the old policy in force.
    pub async fn replace_policy(
        &self,
        by: &Operator,
        new: NewPolicy,
        config: &Config,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let id = new.id.clone();
        let before = self.policy(&id).await?;
        let generation = super::replace_policy_for(&*self.store, new, config).await?;
        let after = self.policy(&id).await.ok().flatten();
        let change = Change {
            action: "policy.replace",
            target_kind: "policy",
            target: id,
            before: before.as_ref().map(summary::policy),
            after: after.as_ref().map(summary::policy),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    async fn policy(
        &self,
        id: &str,
    ) -> AdminResult<Option<gatehouse_model::records::PolicyRecord>> {
        Ok(self
            .store
            .list_policies()
            .await?
            .into_iter()
            .find(|p| p.id == id))
    }

    async fn policy_ids(&self) -> AdminResult<Vec<String>> {
        Ok(self
            .store
            .list_policies()
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect())
    }
}

#[cfg(test)]
mod tests;
