//! The in-memory view of the store that the request path reads.
//!
//! A [`Snapshot`] is immutable; [`SnapshotHandle`] swaps in a new one atomically (arc-swap),
//! so a request sees one consistent configuration from start to end without locks. A
//! background task (`reload_loop`) rebuilds when the change feed reports that the store's
//! generation moved, which is how changes made by the CLI (another process) reach a running
//! server.

pub mod records;
mod reload_loop;
pub mod stdio;
pub mod upstream_auth;

use arc_swap::ArcSwap;
use http::{HeaderName, Uri};
use parking_lot::{Mutex, RwLock};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

pub use crate::entries::ClientEntry;
use crate::{
    entries::{ClientBuilder, ClientMap, CompiledRule, CompiledRules},
    grants::Grant,
    guardrails::{self, GUARDRAIL_KIND, Guardrail},
    identity::api_keys::KeyTable,
    identity::oauth_clients::ClientDirectory,
    policy::{self, CompiledPolicy, PolicyRuntime, geo::GeoDb},
    secrets::Keyring,
    store::{DynStore, StoreError},
    tokens::signing::SigningKeys,
};
use gatehouse_model::{
    records::{Generation, RecordIssue, ReloadReport, StoreContents},
    tool_pattern::ToolPattern,
};
use records::{compile_server, compile_signing_keys, unloadable_rule};

#[derive(Debug)]
pub struct ServerEntry {
    pub name: Arc<str>,
    pub upstream: Uri,
    /// How Gatehouse authenticates to the upstream (secrets decrypted once, here, not per
    /// request).
    pub auth: upstream_auth::UpstreamAuth,
    /// The header carrying Gatehouse's signed assertion of the caller, when sent.
    pub identity_header: Option<HeaderName>,
    /// Tool definitions pinned for this server, and what a changed one does.
    pub pins: crate::pinning::ServerPins,
    pub pin_action: gatehouse_model::pin_action::PinAction,
    /// What anonymous callers may use, when the server allows them.
    pub anonymous_grant: Option<Arc<Grant>>,
    pub allow_unknown_methods: bool,
    /// `{public}/.well-known/oauth-protected-resource/{server}/mcp`, named in every 401.
    pub resource_metadata_url: String,
    /// `{public}/{server}/mcp`: the server's OAuth resource identifier (RFC 8707), the `aud`
    /// its access tokens must carry.
    pub resource: String,
    /// Set when the server is a local program (`upstream` is then `stdio://{name}`).
    pub stdio: Option<Arc<stdio::StdioLaunch>>,
    /// Set for a virtual server: the servers it aggregates (ADR 0006 §4).
    pub members: Vec<Arc<str>>,
}

/// An enabled user: what their groups' connections grant, per server (merged).
#[derive(Debug, Default)]
pub struct UserEntry {
    pub username: String,
    pub connections: HashMap<String, Arc<Grant>>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: Generation,
    pub servers: HashMap<String, Arc<ServerEntry>>,
    /// Enabled clients only: a disabled client's keys and connections are simply absent.
    pub clients: ClientMap,
    pub keys: KeyTable,
    pub oauth: OAuthView,
    /// Enabled users by id.
    pub users: HashMap<String, UserEntry>,
    /// What each group's connections grant (for tokens of external issuers naming groups).
    pub groups: GroupGrants,
    /// Policies and guardrails that name a client, for the agents users delegate to.
    pub client_rules: ClientRules,
    /// Servers whose row could not be compiled: they answer `server_unavailable`.
    pub unavailable_servers: HashMap<String, Arc<str>>,
    /// Stored records that could not be compiled, each replaced by a deny-all for its scope.
    pub issues: Vec<RecordIssue>,
    /// The policy and guardrail records behind the compiled rules, for the next generation.
    pub compiled_rules: CompiledRules,
}

/// The rules attached to particular clients, kept so a user-delegated token carried by one of
/// them answers to them too: the user's grant decides what is reachable, and the agent's
/// client-level and connection-level rules (rate limits, quotas, guardrails…) still apply.
#[derive(Debug, Default)]
pub struct ClientRules {
    /// Every policy and guardrail, in evaluation order.
    policies: Vec<Arc<CompiledPolicy>>,
    guardrails: Vec<Arc<Guardrail>>,
    /// Clients that at least one policy or guardrail names.
    named: HashSet<String>,
    /// Delegated grants built so far in this snapshot: (client, user, server) → grant.
    built: RwLock<HashMap<(String, String, String), Arc<Grant>>>,
}

/// Delegated grants remembered per snapshot; beyond this they are built per request.
const DELEGATED_CACHE_MAX: usize = 65_536;

impl ClientRules {
    fn delegated(&self, client: &str, user: &str, server: &str, base: &Arc<Grant>) -> Arc<Grant> {
        let key = (client.to_owned(), user.to_owned(), server.to_owned());
        if let Some(grant) = self.built.read().get(&key) {
            return grant.clone();
        }
        let grant = Arc::new(Grant {
            tools: base.tools.clone(),
            resources: base.resources,
            prompts: base.prompts,
            policies: self
                .policies
                .iter()
                .filter(|p| p.attached_to(Some(client), server))
                .cloned()
                .collect(),
            guardrails: self
                .guardrails
                .iter()
                .filter(|g| g.attached_to(Some(client), server))
                .cloned()
                .collect(),
        });
        let mut built = self.built.write();
        if built.len() < DELEGATED_CACHE_MAX {
            built.insert(key, grant.clone());
        }
        grant
    }
}

/// What the authorization server and the token check read.
#[derive(Debug, Default)]
pub struct OAuthView {
    /// Enabled clients registered for OAuth, with their live secrets.
    pub clients: ClientDirectory,
    pub signing: SigningKeys,
    /// `jti`s of revoked access tokens not yet expired.
    pub revoked: HashSet<String>,
    /// Revoked grants (refresh-token families): every access token minted from one is refused.
    pub revoked_grants: HashSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] crate::tokens::signing::SigningError),
}

impl Snapshot {
    /// Compiles every record on its own: one that fails becomes a deny-all for its scope and
    /// is listed in [`Snapshot::issues`] (see `crate::snapshot::records`), so it never blocks the rest.
    pub fn build(
        contents: StoreContents,
        keyring: &Keyring,
        public_base: &str,
        usage: &UsageTracker,
        runtime: &PolicyRuntime,
    ) -> Result<Self, SnapshotError> {
        Self::build_on(None, contents, keyring, public_base, usage, runtime)
    }

    /// [`Snapshot::build`] sharing with `previous` every client, connection, key and rule
    /// whose inputs are unchanged (`crate::entries`), so a rebuild allocates what changed.
    pub fn build_on(
        previous: Option<&Snapshot>,
        contents: StoreContents,
        keyring: &Keyring,
        public_base: &str,
        usage: &UsageTracker,
        runtime: &PolicyRuntime,
    ) -> Result<Self, SnapshotError> {
        let mut issues = Vec::new();
        let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
        let mut guardrails: Vec<Arc<Guardrail>> = Vec::new();
        let mut compiled_rules = CompiledRules::default();
        for record in &contents.policies {
            let reused = previous.and_then(|p| p.compiled_rules.reuse(record));
            let compiled = match reused {
                Some(rule) => Ok(rule),
                None if record.kind == GUARDRAIL_KIND => {
                    guardrails::compile_record(record).map(|g| CompiledRule::Guardrail(Arc::new(g)))
                }
                None => policy::compile(record, runtime).map(|p| CompiledRule::Policy(Arc::new(p))),
            };
            let compiled = compiled.map(|rule| {
                match &rule {
                    CompiledRule::Policy(p) => policies.push(p.clone()),
                    CompiledRule::Guardrail(g) => guardrails.push(g.clone()),
                }
                compiled_rules.keep(record, rule);
            });
            if let Err(reason) = compiled {
                let kind = if record.kind == GUARDRAIL_KIND {
                    "guardrail"
                } else {
                    "policy"
                };
                issues.push(RecordIssue::new(
                    kind,
                    record.id.clone(),
                    reason,
                    "deny-all: every call in its scope is refused",
                ));
                policies.push(Arc::new(unloadable_rule(record)));
            }
        }
        policies.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        let attached = |client: Option<&str>, server: &str| -> Arc<[Arc<CompiledPolicy>]> {
            policies
                .iter()
                .filter(|p| p.attached_to(client, server))
                .cloned()
                .collect()
        };
        let content_rules = |client: Option<&str>, server: &str| -> Arc<[Arc<Guardrail>]> {
            guardrails
                .iter()
                .filter(|g| g.attached_to(client, server))
                .cloned()
                .collect()
        };
        let mut snapshot = Snapshot {
            generation: contents.generation,
            compiled_rules,
            ..Snapshot::default()
        };
        for server in contents.servers {
            let compiled = compile_server(&server, keyring).and_then(|(upstream, credential)| {
                let auth = upstream_auth::compile(&server, keyring, credential)?;
                let identity =
                    server.upstream_auth.identity_header.as_deref().map(|h| {
                        HeaderName::try_from(h).map_err(|e| format!("identity header: {e}"))
                    });
                let stdio = stdio::compile_stdio(&server, keyring)?;
                // A program gets no HTTP headers: settings that would be silently dropped make
                // the server unavailable instead, so nobody believes they are in force.
                if stdio.is_some()
                    && (!matches!(auth, upstream_auth::UpstreamAuth::None) || identity.is_some())
                {
                    return Err(
                        "a stdio server takes no upstream credential or identity header \
                                (they are HTTP headers); remove them or give the server a URL"
                            .to_owned(),
                    );
                }
                Ok((upstream, auth, identity.transpose()?, stdio))
            });
            let (upstream, auth, identity_header, stdio) = match compiled {
                Ok(compiled) => compiled,
                Err(reason) => {
                    issues.push(RecordIssue::new(
                        "server",
                        server.name.clone(),
                        reason.clone(),
                        "unavailable: its calls are answered 503",
                    ));
                    snapshot
                        .unavailable_servers
                        .insert(server.name, Arc::from(reason));
                    continue;
                }
            };
            let entry = ServerEntry {
                name: Arc::from(server.name.as_str()),
                upstream,
                auth,
                identity_header,
                stdio,
                members: server
                    .members
                    .iter()
                    .map(|m| Arc::from(m.as_str()))
                    .collect(),
                pins: crate::pinning::ServerPins::from_rows(
                    contents
                        .tool_pins
                        .iter()
                        .filter(|p| p.server == server.name),
                ),
                pin_action: server.pin_action,
                anonymous_grant: server.allow_anonymous.then(|| {
                    Arc::new(Grant {
                        tools: ToolPattern::parse("*").into_iter().collect(),
                        resources: true,
                        prompts: true,
                        policies: attached(None, &server.name),
                        guardrails: content_rules(None, &server.name),
                    })
                }),
                allow_unknown_methods: server.allow_unknown_methods,
                resource_metadata_url: format!(
                    "{public_base}/.well-known/oauth-protected-resource/{}/mcp",
                    server.name
                ),
                resource: format!("{public_base}/{}/mcp", server.name),
            };
            snapshot.servers.insert(server.name, Arc::new(entry));
        }
        snapshot.clients = ClientBuilder::new(previous.map(|p| &p.clients), &policies, &guardrails)
            .build(&contents.clients, &contents.connections, &mut issues);
        snapshot.oauth = OAuthView {
            clients: ClientDirectory::build(
                contents
                    .clients
                    .iter()
                    .filter(|c| c.disabled_at.is_none())
                    .filter_map(|c| Some((c.name.as_str(), c.oauth.as_ref()?))),
                &contents.client_secrets,
            ),
            signing: compile_signing_keys(&contents.signing_keys, keyring, &mut issues)?,
            revoked: contents
                .revoked_tokens
                .iter()
                .map(|t| t.jti.clone())
                .collect(),
            revoked_grants: contents
                .revoked_tokens
                .iter()
                .filter_map(|t| {
                    t.jti
                        .strip_prefix(crate::tokens::GRANT_REVOCATION_PREFIX)
                        .map(str::to_owned)
                })
                .collect(),
        };
        (snapshot.users, snapshot.groups) = user_grants(
            &contents.users,
            &contents.group_connections,
            &attached,
            &content_rules,
            &mut issues,
        );
        snapshot.keys = crate::entries::key_table(
            previous.map(|p| &p.keys),
            contents.api_keys,
            &snapshot.clients,
            |id, stored| usage.counter(id, stored),
            &mut issues,
        );
        snapshot.client_rules = ClientRules {
            named: policies
                .iter()
                .filter_map(|p| p.client.clone())
                .chain(guardrails.iter().filter_map(|g| g.client.clone()))
                .collect(),
            policies,
            guardrails,
            built: RwLock::default(),
        };
        for issue in &issues {
            tracing::error!(%issue, "stored record could not be compiled");
        }
        snapshot.issues = issues;
        Ok(snapshot)
    }

    pub fn grant(&self, client: &str, server: &str) -> Option<&Arc<Grant>> {
        self.clients.get(client)?.connection(server)
    }

    /// What a user-delegated token may reach on `server`: the user's groups' grants.
    pub fn user_grant(&self, user: &str, server: &str) -> Option<&Arc<Grant>> {
        self.users.get(user)?.connections.get(server)
    }

    /// The grant of a user-delegated token carried by `client` (the agent): what the user's
    /// groups reach on `server`, under the server's and global rules and also the client's own
    /// (client-level and client → server). Without rules naming the client, the user's grant.
    pub fn delegated_grant(
        &self,
        user: &str,
        client: Option<&str>,
        server: &str,
    ) -> Option<Arc<Grant>> {
        let base = self.user_grant(user, server)?;
        match client.filter(|c| self.client_rules.named.contains(*c)) {
            Some(client) => Some(self.client_rules.delegated(client, user, server, base)),
            None => Some(base.clone()),
        }
    }

    /// The server whose resource identifier is `resource` (exactly, as RFC 8707 compares).
    pub fn server_by_resource(&self, resource: &str) -> Option<&Arc<ServerEntry>> {
        let name = resource.strip_suffix("/mcp")?.rsplit('/').next()?;
        self.servers.get(name).filter(|s| s.resource == resource)
    }
}

type Attached<'a, T> = &'a dyn Fn(Option<&str>, &str) -> Arc<[Arc<T>]>;

/// Each group's grants, and each enabled user's: the union of their groups' connections per
/// server (tool patterns concatenated, families or-ed). Policies and guardrails are those
/// attached to the server and globally; client-specific ones apply to the agent's own
/// credentials.
fn user_grants(
    users_rows: &[gatehouse_model::records::UserRecord],
    group_connections: &[gatehouse_model::records::GroupConnectionRecord],
    attached: Attached<'_, CompiledPolicy>,
    content_rules: Attached<'_, Guardrail>,
    issues: &mut Vec<RecordIssue>,
) -> (HashMap<String, UserEntry>, GroupGrants) {
    let mut groups: HashMap<String, HashMap<String, Grant>> = HashMap::new();
    for connection in group_connections {
        let tools = match connection
            .tools
            .iter()
            .map(|t| ToolPattern::parse(t))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(tools) => tools,
            Err(err) => {
                issues.push(RecordIssue::new(
                    "group_connection",
                    format!("{} → {}", connection.group, connection.server),
                    err.to_string(),
                    "left out: the group's members get nothing from it",
                ));
                continue;
            }
        };
        let grant = groups
            .entry(connection.group.clone())
            .or_default()
            .entry(connection.server.clone())
            .or_default();
        grant.tools.extend(tools);
        grant.resources = connection.resources;
        grant.prompts = connection.prompts;
    }
    let server_rules = |server: &str| (attached(None, server), content_rules(None, server));
    let groups: GroupGrants = groups
        .into_iter()
        .map(|(group, servers)| {
            let servers = servers
                .into_iter()
                .map(|(server, mut grant)| {
                    (grant.policies, grant.guardrails) = server_rules(&server);
                    (server, Arc::new(grant))
                })
                .collect();
            (group, servers)
        })
        .collect();
    let mut users = HashMap::new();
    for user in users_rows {
        let mut servers: Vec<&String> = user
            .groups
            .iter()
            .filter_map(|g| groups.get(g))
            .flat_map(|s| s.keys())
            .collect();
        servers.sort();
        servers.dedup();
        let connections = servers
            .into_iter()
            .filter_map(|server| {
                merge_group_grants(&groups, &user.groups, server).map(|g| (server.clone(), g))
            })
            .collect();
        users.insert(
            user.id.clone(),
            UserEntry {
                username: user.username.clone(),
                connections,
            },
        );
    }
    (users, groups)
}

/// Group → server → what the group's connection grants.
pub type GroupGrants = HashMap<String, HashMap<String, Arc<Grant>>>;

/// What members of all of `groups` may do on `server`: tool patterns concatenated, families
/// or-ed, the server's policies and guardrails. `None` when no group reaches the server.
pub fn merge_group_grants(
    grants: &GroupGrants,
    groups: &[String],
    server: &str,
) -> Option<Arc<Grant>> {
    let mut found = groups.iter().filter_map(|g| grants.get(g)?.get(server));
    let first = found.next()?;
    let rest: Vec<&Arc<Grant>> = found.collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut merged = Grant::clone(first);
    for grant in rest {
        for tool in &grant.tools {
            if !merged.tools.contains(tool) {
                merged.tools.push(tool.clone());
            }
        }
        merged.resources |= grant.resources;
        merged.prompts |= grant.prompts;
    }
    Some(Arc::new(merged))
}

/// Associated data for a server's sealed upstream credential.
pub fn credential_context(server: &str) -> String {
    format!("server-credential:{server}")
}

/// `last_used_at` per key, kept in memory and written back in batches.
#[derive(Debug, Default)]
pub struct UsageTracker {
    counters: Mutex<HashMap<String, (Arc<AtomicI64>, i64)>>,
}

impl UsageTracker {
    /// The counter for a key; the same `Arc` across snapshot rebuilds.
    pub(crate) fn counter(&self, key_id: &str, stored: i64) -> Arc<AtomicI64> {
        let mut counters = self.counters.lock();
        // Looked up first: a rebuild asks for every key, and most are known.
        if let Some((counter, _)) = counters.get(key_id) {
            return counter.clone();
        }
        let (counter, _) = counters
            .entry(key_id.to_owned())
            .or_insert_with(|| (Arc::new(AtomicI64::new(stored)), stored));
        counter.clone()
    }

    /// Values that moved since the last call.
    pub fn take_changes(&self) -> Vec<(String, i64)> {
        let mut counters = self.counters.lock();
        let mut changed = Vec::new();
        for (id, (counter, flushed)) in counters.iter_mut() {
            let now = counter.load(Ordering::Relaxed);
            if now > *flushed {
                *flushed = now;
                changed.push((id.clone(), now));
            }
        }
        changed
    }
}

/// The shared, swappable snapshot.
pub struct SnapshotHandle {
    current: ArcSwap<Snapshot>,
    store: DynStore,
    keyring: Arc<Keyring>,
    public_base: String,
    pub usage: UsageTracker,
    pub policies: PolicyRuntime,
    /// Why the last reload failed as a whole (the store could not be read), until one works.
    reload_error: Mutex<Option<String>>,
}

impl SnapshotHandle {
    pub async fn load(
        store: DynStore,
        keyring: Arc<Keyring>,
        public_base: String,
    ) -> Result<Self, SnapshotError> {
        Self::load_with_geo(store, keyring, public_base, None).await
    }

    /// [`SnapshotHandle::load`] with the GeoIP database `country` policies need.
    pub async fn load_with_geo(
        store: DynStore,
        keyring: Arc<Keyring>,
        public_base: String,
        geo: Option<Arc<GeoDb>>,
    ) -> Result<Self, SnapshotError> {
        let policies = PolicyRuntime::default().with_geo(geo);
        Self::load_with_runtime(store, keyring, public_base, policies).await
    }

    /// [`SnapshotHandle::load`] with the policies' counters and GeoIP database in `policies`.
    pub async fn load_with_runtime(
        store: DynStore,
        keyring: Arc<Keyring>,
        public_base: String,
        policies: PolicyRuntime,
    ) -> Result<Self, SnapshotError> {
        let usage = UsageTracker::default();
        policies.preload(store.load_quota_usage().await?);
        let contents = store.load_contents().await?;
        let snapshot = Snapshot::build(contents, &keyring, &public_base, &usage, &policies)?;
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            store,
            keyring,
            public_base,
            usage,
            policies,
            reload_error: Mutex::new(None),
        })
    }

    /// What `/readyz`, `/metrics` and (through the store) `gatehouse status` show.
    pub fn report(&self) -> ReloadReport {
        let current = self.current();
        ReloadReport {
            generation: current.generation,
            issues: current.issues.clone(),
            error: self.reload_error.lock().clone(),
        }
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Rebuilds now from the store (what the poller does when the generation moves).
    pub async fn reload(&self) -> Result<Generation, SnapshotError> {
        let contents = self.store.load_contents().await?;
        let previous = self.current();
        let snapshot = Snapshot::build_on(
            Some(&previous),
            contents,
            &self.keyring,
            &self.public_base,
            &self.usage,
            &self.policies,
        )?;
        let generation = snapshot.generation;
        let fresh = Arc::new(snapshot);
        // Two rebuilds may race (the poller and an explicit reload); the one that read the store
        // earlier must not replace a newer snapshot, or a just-revoked key would come back.
        self.current.rcu(|current| {
            if current.generation > fresh.generation {
                current.clone()
            } else {
                fresh.clone()
            }
        });
        Ok(self.current().generation.max(generation))
    }

    /// Writes key `last_used_at` values and quota counters back to the store.
    pub async fn flush_usage(&self) {
        let changes = self.usage.take_changes();
        if let Err(err) = self.store.record_key_usage(&changes).await {
            tracing::warn!(error = %err, "could not write key usage");
        }
        let quotas = self.policies.take_quota_changes();
        if let Err(err) = self.store.add_quota_usage(&quotas).await {
            tracing::error!(error = %err, "could not write quota counters");
        }
    }
}
