//! The local database: the store in the data directory (or `database_url`), every change
//! through `AdminService` under the command's actor, then a wait until every running replica
//! applied it.

use async_trait::async_trait;
use gatehouse::{
    Config,
    admin::{
        AdminService, NewConnection, NewKey, NewPolicy, NewServer, Operator, OwnWriter,
        ServerUpdate, declarative,
        explain::{AsKey, Question, explain_as},
        oauth::OAuthRegistration,
    },
    admin_api::views::{
        AdminToken, ApiKey, Client, ClientSecret, Connection, CreatedAdminToken, CreatedApiKey,
        GroupConnection, OAuthRegistered, Policy, RotatedSecret, Server, SigningKey, ToolPin,
        UpstreamGrant, User,
    },
    policy::geo::GeoDb,
    replicas,
    secrets::Keyring,
    snapshot::SnapshotHandle,
    store::{self, DynStore},
};
use gatehouse_model::{
    audit::{AuditFilter, AuditRow, EventKind},
    records::{AdminRole, Generation, ReplicaHeartbeat},
    tool_pattern::ToolPattern,
};
use std::{sync::Arc, time::Duration};

use super::{Deployment, ExplainQuestion, Result, RowSink, SigningLead};

/// How long a change may take to reach a running server (it polls every 250 ms by default).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Rows read from the store at a time.
const PAGE: i64 = 1_000;

pub struct Local {
    pub config: Config,
    /// For reads; every change goes through `admin`, which records it in the audit trail.
    pub store: DynStore,
    pub keyring: Keyring,
    admin: AdminService,
    writer: OwnWriter,
    operator: std::result::Result<Operator, String>,
}

impl Local {
    /// `actor` names who makes the changes (default: the account running the command).
    pub async fn open(config: Config, actor: Option<String>) -> Result<Self> {
        create_data_dir(&config)?;
        let keyring = Keyring::load_or_create(&config.data_dir)?;
        let store =
            store::open_sized(&config.database_url(), config.database_max_connections).await?;
        let (mut admin, writer) =
            AdminService::with_own_writer(store.clone(), Arc::new(keyring.clone()));
        // Per-user servers' authorization servers are found (and registered at) from here. A
        // client that cannot be built (an unreadable CA file) fails discovery only, not every
        // command.
        match gatehouse::upstream::client::UpstreamClient::new(&config.gateway) {
            Ok(upstream) => {
                let registrar =
                    gatehouse::upstream::registration::Registrar::new(upstream, &config);
                admin = admin.with_registrar(Arc::new(registrar));
            }
            Err(err) => tracing::warn!(error = %err, "no upstream client: discovery unavailable"),
        }
        // With `[redis]`, each change reaches the replicas at once, not at their next poll.
        if let Some(announce) = gatehouse::state::announcer(&config)? {
            admin = admin.with_announcer(announce);
        }
        Ok(Self {
            config,
            store,
            keyring,
            admin,
            writer,
            operator: operator(actor),
        })
    }

    /// Who makes this command's changes; an error only for a command that changes something.
    pub fn by(&self) -> Result<&Operator> {
        self.operator
            .as_ref()
            .map_err(|why| anyhow::anyhow!("{why}"))
    }

    /// Waits until every replica running on this store (recent heartbeat) has applied
    /// `generation`, so "revoked" means revoked everywhere by the time the command returns.
    /// A change some live replica has not applied within the wait is an error: the command
    /// must not report what is not true. Replicas that stopped reporting are not waited for.
    pub async fn applied(&self, generation: Generation) -> Result<()> {
        let progress = replicas::wait_until_applied(&*self.store, generation, APPLY_WAIT).await?;
        if !progress.stale.is_empty() {
            eprintln!(
                "note: not waiting for replica(s) without a heartbeat for over {} s: {}",
                replicas::LIVE_WITHIN_MS / 1_000,
                names(&progress.stale, |r| format!("{:?}", r.replica_id))
            );
        }
        if !progress.complete() {
            let live = progress.applied.len() + progress.behind.len();
            anyhow::bail!(
                "the change is stored (generation {generation}) but {} of {live} running \
                 replica(s) {} not applied it within {}s: {}; see `gatehouse status`",
                progress.behind.len(),
                if progress.behind.len() == 1 {
                    "has"
                } else {
                    "have"
                },
                APPLY_WAIT.as_secs(),
                names(&progress.behind, |r| format!(
                    "{:?} runs generation {}",
                    r.replica_id, r.applied_generation
                ))
            );
        }
        if !progress.applied.is_empty() {
            self.warn_about_unloadable_records(generation).await;
        }
        Ok(())
    }

    /// Records the server could not compile deny their scope: say so after every change.
    async fn warn_about_unloadable_records(&self, generation: Generation) {
        let Ok(Some(report)) = self.store.reload_report().await else {
            return;
        };
        if report.generation < generation || report.issues.is_empty() {
            return;
        }
        eprintln!(
            "warning: the running server could not compile {} stored record(s); each denies \
             its scope until fixed (`gatehouse status`)",
            report.issues.len()
        );
    }

    async fn user(&self, username: &str) -> Result<User> {
        Ok(User::from(&self.store.get_user(username).await?))
    }

    async fn policies(&self) -> Result<Vec<Policy>> {
        let mut all = self.store.list_policies().await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all.iter().map(Policy::from).collect())
    }
}

#[async_trait]
impl Deployment for Local {
    async fn add_server(&self, new: NewServer) -> Result<Server> {
        let name = new.name.clone();
        let generation = self.admin.add_server(self.by()?, new).await?;
        self.applied(generation).await?;
        self.get_server(&name).await
    }

    async fn update_server(&self, name: &str, update: ServerUpdate) -> Result<Server> {
        let generation = self.admin.update_server(self.by()?, name, update).await?;
        self.applied(generation).await?;
        self.get_server(name).await
    }

    async fn list_servers(&self) -> Result<Vec<Server>> {
        let mut all = self.store.list_servers().await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all.iter().map(Server::from).collect())
    }

    async fn get_server(&self, name: &str) -> Result<Server> {
        Ok(Server::from(&self.store.get_server(name).await?))
    }

    async fn remove_server(&self, name: &str) -> Result<()> {
        let generation = self.admin.remove_server(self.by()?, name).await?;
        self.applied(generation).await
    }

    async fn tool_pins(&self, server: &str) -> Result<Vec<ToolPin>> {
        self.store.get_server(server).await?;
        let mut pins: Vec<_> = self
            .store
            .list_tool_pins()
            .await?
            .into_iter()
            .filter(|p| p.server == server)
            .collect();
        pins.sort_by(|a, b| a.tool.cmp(&b.tool));
        Ok(pins.iter().map(ToolPin::from).collect())
    }

    async fn approve_tools(&self, server: &str, tools: &[String]) -> Result<u64> {
        self.store.get_server(server).await?;
        let (generation, approved) = self.admin.approve_tools(self.by()?, server, tools).await?;
        self.applied(generation).await?;
        Ok(approved)
    }

    async fn reject_tools(&self, server: &str, tools: &[String]) -> Result<u64> {
        self.store.get_server(server).await?;
        let (generation, rejected) = self.admin.reject_tools(self.by()?, server, tools).await?;
        self.applied(generation).await?;
        Ok(rejected)
    }

    async fn create_client(&self, name: &str, description: &str) -> Result<Client> {
        let generation = self
            .admin
            .create_client(self.by()?, name, description)
            .await?;
        self.applied(generation).await?;
        self.get_client(name).await
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let mut all = self.store.list_clients().await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all.iter().map(Client::from).collect())
    }

    async fn get_client(&self, name: &str) -> Result<Client> {
        Ok(Client::from(&self.store.get_client(name).await?))
    }

    async fn set_client_enabled(&self, name: &str, enabled: bool) -> Result<Client> {
        let generation = self
            .admin
            .set_client_enabled(self.by()?, name, enabled)
            .await?;
        self.applied(generation).await?;
        self.get_client(name).await
    }

    async fn delete_client(&self, name: &str) -> Result<()> {
        let generation = self.admin.delete_client(self.by()?, name).await?;
        self.applied(generation).await
    }

    async fn register_oauth(
        &self,
        name: &str,
        registration: OAuthRegistration,
    ) -> Result<OAuthRegistered> {
        let registered = self
            .admin
            .register_oauth_client(self.by()?, name, registration)
            .await?;
        self.applied(registered.generation).await?;
        Ok(OAuthRegistered {
            client_id: registered.client_id,
            metadata: serde_json::to_value(&registered.metadata)?,
            client_secret: registered.client_secret,
            secret_id: registered.secret_id,
        })
    }

    async fn rotate_client_secret(&self, name: &str, overlap: Duration) -> Result<RotatedSecret> {
        let (secret, record, generation) = self
            .admin
            .rotate_client_secret(self.by()?, name, overlap)
            .await?;
        self.applied(generation).await?;
        Ok(RotatedSecret {
            secret: ClientSecret::from(&record),
            client_secret: secret,
        })
    }

    async fn list_client_secrets(&self, name: &str) -> Result<Vec<ClientSecret>> {
        self.store.get_client(name).await?;
        let secrets = self.store.list_client_secrets(name).await?;
        Ok(secrets.iter().map(ClientSecret::from).collect())
    }

    async fn revoke_client_secret(&self, id: &str) -> Result<()> {
        let generation = self.admin.revoke_client_secret(self.by()?, id).await?;
        self.applied(generation).await
    }

    async fn create_key(&self, new: NewKey) -> Result<CreatedApiKey> {
        // The store would refuse an unknown client only as a constraint; name it here.
        self.store.get_client(&new.client).await?;
        let created = self.admin.create_key(self.by()?, new).await?;
        self.applied(created.generation).await?;
        Ok(CreatedApiKey::from(&created))
    }

    async fn list_keys(&self, client: Option<&str>) -> Result<Vec<ApiKey>> {
        if let Some(name) = client {
            self.store.get_client(name).await?;
        }
        let mut keys = self.store.list_api_keys(client).await?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys.iter().map(ApiKey::from).collect())
    }

    async fn rotate_key(&self, id: &str, overlap: Duration) -> Result<CreatedApiKey> {
        let created = self.admin.rotate_key(self.by()?, id, overlap).await?;
        self.applied(created.generation).await?;
        Ok(CreatedApiKey::from(&created))
    }

    async fn revoke_key(&self, id: &str) -> Result<ApiKey> {
        let generation = self.admin.revoke_key(self.by()?, id).await?;
        self.applied(generation).await?;
        Ok(ApiKey::from(&self.store.get_api_key(id).await?))
    }

    async fn list_connections(&self) -> Result<Vec<Connection>> {
        let mut all = self.store.list_connections().await?;
        all.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        Ok(all.iter().map(Connection::from).collect())
    }

    async fn grant_connection(&self, new: NewConnection) -> Result<Connection> {
        let (client, server) = (new.client.clone(), new.server.clone());
        self.store.get_client(&client).await?;
        self.store.get_server(&server).await?;
        let generation = self.admin.grant_connection(self.by()?, new).await?;
        self.applied(generation).await?;
        self.list_connections()
            .await?
            .into_iter()
            .find(|c| c.client == client && c.server == server)
            .ok_or_else(|| anyhow::anyhow!("connection {client} → {server} not found"))
    }

    async fn revoke_connection(&self, client: &str, server: &str) -> Result<()> {
        let generation = self
            .admin
            .revoke_connection(self.by()?, client, server)
            .await?;
        self.applied(generation).await
    }

    async fn add_policy(&self, new: NewPolicy) -> Result<Policy> {
        let id = new.id.clone();
        let generation = self.admin.add_policy(self.by()?, new, &self.config).await?;
        self.applied(generation).await?;
        self.policies()
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| anyhow::anyhow!("policy {id:?} not found"))
    }

    async fn import_policies(&self, text: &str) -> Result<Vec<Policy>> {
        let generation = self
            .admin
            .import_policies(self.by()?, text, &self.config)
            .await?;
        self.applied(generation).await?;
        self.policies().await
    }

    async fn list_policies(&self) -> Result<Vec<Policy>> {
        self.policies().await
    }

    async fn remove_policy(&self, id: &str) -> Result<()> {
        let generation = self.admin.remove_policy(self.by()?, id).await?;
        self.applied(generation).await
    }

    async fn explain(&self, question: ExplainQuestion) -> Result<serde_json::Value> {
        let geo = match &self.config.policy.geoip_database {
            Some(path) => Some(Arc::new(GeoDb::open(path).map_err(|e| anyhow::anyhow!(e))?)),
            None => None,
        };
        let handle = SnapshotHandle::load_with_geo(
            self.store.clone(),
            Arc::new(self.keyring.clone()),
            String::new(),
            geo,
        )
        .await?;
        let snapshot = handle.current();
        let key = match &question.key {
            Some(id) => Some(self.store.get_api_key(id).await?),
            None => None,
        };
        if let Some(record) = &key {
            if record.revoked_at.is_some() {
                anyhow::bail!("key {} is revoked", record.id);
            }
            if question
                .client
                .as_ref()
                .is_some_and(|c| *c != record.client)
            {
                anyhow::bail!("key {} belongs to client {}", record.id, record.client);
            }
        }
        let client = match (&key, &question.client) {
            (Some(record), _) => record.client.clone(),
            (None, Some(client)) => client.clone(),
            (None, None) => anyhow::bail!("give --client or --key"),
        };
        let narrowing = match key.as_ref().and_then(|k| k.tools.as_ref()) {
            Some(tools) => Some(
                tools
                    .iter()
                    .map(|t| ToolPattern::parse(t))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let at = match &question.at {
            Some(text) => text
                .parse::<jiff::Timestamp>()
                .map_err(|e| anyhow::anyhow!("--at {text:?}: {e}"))?,
            None => jiff::Timestamp::now(),
        };
        let asked = Question {
            client: &client,
            server: &question.server,
            tool: question.tool.as_deref(),
            ip: question.ip,
            at,
            arguments: question.arguments.as_ref(),
        };
        let as_key = key.as_ref().map(|k| AsKey {
            id: &k.id,
            narrowing: narrowing.as_deref(),
        });
        Ok(serde_json::to_value(explain_as(&snapshot, &asked, as_key))?)
    }

    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password: Option<String>,
        groups: Vec<String>,
    ) -> Result<User> {
        let (user, generation) = self
            .admin
            .create_user(
                self.by()?,
                username,
                display_name,
                password.as_deref(),
                groups,
            )
            .await?;
        self.applied(generation).await?;
        Ok(User::from(&user))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let mut all = self.store.list_users().await?;
        all.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(all.iter().map(User::from).collect())
    }

    async fn update_user(&self, username: &str, display_name: &str) -> Result<User> {
        let generation = self
            .admin
            .update_user(self.by()?, username, display_name)
            .await?;
        self.applied(generation).await?;
        self.user(username).await
    }

    async fn set_user_groups(&self, username: &str, groups: Vec<String>) -> Result<User> {
        let generation = self
            .admin
            .set_user_groups(self.by()?, username, groups)
            .await?;
        self.applied(generation).await?;
        self.user(username).await
    }

    async fn set_user_password(&self, username: &str, password: &str) -> Result<()> {
        self.admin
            .set_user_password(self.by()?, username, password)
            .await?;
        Ok(())
    }

    async fn set_user_enabled(&self, username: &str, enabled: bool) -> Result<User> {
        let generation = self
            .admin
            .set_user_enabled(self.by()?, username, enabled)
            .await?;
        self.applied(generation).await?;
        self.user(username).await
    }

    async fn list_upstream_grants(&self, username: Option<&str>) -> Result<Vec<UpstreamGrant>> {
        let users = match username {
            Some(name) => vec![self.store.get_user(name).await?],
            None => self.store.list_users().await?,
        };
        let mut all = Vec::new();
        for user in &users {
            for grant in self.store.list_upstream_grants(Some(&user.id)).await? {
                all.push(UpstreamGrant::of(&user.username, &grant));
            }
        }
        all.sort_by(|a, b| (&a.user, &a.server).cmp(&(&b.user, &b.server)));
        Ok(all)
    }

    async fn revoke_upstream_grant(&self, username: &str, server: &str) -> Result<()> {
        let grant = self
            .admin
            .revoke_upstream_grant(self.by()?, username, server)
            .await?;
        // A server removed since has no one to tell.
        if let Ok(record) = self.store.get_server(server).await {
            gatehouse::upstream::delegated::revoke_at_upstream_once(
                &self.config.gateway,
                &self.keyring,
                &record,
                &grant,
            )
            .await
            .map_err(|e| anyhow::anyhow!("the grant is gone; telling {server}: {e}"))?;
        }
        Ok(())
    }

    async fn list_group_connections(&self) -> Result<Vec<GroupConnection>> {
        let mut all = self.store.list_group_connections().await?;
        all.sort_by(|a, b| (&a.group, &a.server).cmp(&(&b.group, &b.server)));
        Ok(all.iter().map(GroupConnection::from).collect())
    }

    async fn grant_group(
        &self,
        group: &str,
        server: &str,
        tools: &str,
        resources: bool,
        prompts: bool,
    ) -> Result<GroupConnection> {
        self.store.get_server(server).await?;
        let generation = self
            .admin
            .grant_group(self.by()?, group, server, tools, resources, prompts)
            .await?;
        self.applied(generation).await?;
        self.list_group_connections()
            .await?
            .into_iter()
            .find(|g| g.group == group && g.server == server)
            .ok_or_else(|| anyhow::anyhow!("group connection {group} → {server} not found"))
    }

    async fn revoke_group(&self, group: &str, server: &str) -> Result<()> {
        let generation = self.admin.revoke_group(self.by()?, group, server).await?;
        self.applied(generation).await
    }

    async fn create_admin_token(
        &self,
        name: &str,
        role: AdminRole,
        expires: Option<Duration>,
    ) -> Result<CreatedAdminToken> {
        let created = self
            .admin
            .create_admin_token(self.by()?, name, role, expires)
            .await?;
        Ok(CreatedAdminToken {
            admin_token: AdminToken::from(&created.record),
            token: created.token,
        })
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        let mut all = self.store.list_admin_tokens().await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all.iter().map(AdminToken::from).collect())
    }

    async fn revoke_admin_token(&self, id: &str) -> Result<AdminToken> {
        self.admin.revoke_admin_token(self.by()?, id).await?;
        Ok(AdminToken::from(&self.store.get_admin_token(id).await?))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>> {
        let mut keys = self.store.list_signing_keys().await?;
        keys.sort_by(|a, b| (a.active_at, &a.kid).cmp(&(b.active_at, &b.kid)));
        Ok(keys.iter().map(SigningKey::from).collect())
    }

    async fn rotate_signing_key(
        &self,
        alg: Option<String>,
        lead: SigningLead,
    ) -> Result<SigningKey> {
        let alg = alg.unwrap_or_else(|| self.config.oauth.signing_alg.clone());
        let lead = match lead {
            SigningLead::Now => None,
            SigningLead::Configured => Some(self.config.oauth.key_publish_lead),
            SigningLead::After(lead) => Some(lead),
        };
        let (record, generation) = self
            .admin
            .rotate_signing_key(self.by()?, &alg, lead)
            .await?;
        self.applied(generation).await?;
        Ok(SigningKey::from(&record))
    }

    async fn audit_newest(
        &self,
        mut filter: AuditFilter,
        limit: i64,
        sink: RowSink<'_>,
    ) -> Result<Option<i64>> {
        // The newest `limit` rows: start just before the oldest of them, then read forward a
        // page at a time, so memory holds one page however many rows are asked for.
        let mut remaining = if limit > 0 { limit } else { i64::MAX };
        if limit > 0 {
            let oldest = self
                .store
                .query_audit(&AuditFilter {
                    limit: 1,
                    offset: limit - 1,
                    newest_first: true,
                    ..filter.clone()
                })
                .await?;
            filter.after_seq = oldest.first().map(|r| r.seq - 1);
        }
        let mut printed = None;
        while remaining > 0 {
            filter.limit = remaining.min(PAGE);
            let rows = self.store.query_audit(&filter).await?;
            let Some(last) = rows.last() else {
                break;
            };
            filter.after_seq = Some(last.seq);
            printed = Some(last.seq);
            remaining -= rows.len() as i64;
            sink(&rows)?;
        }
        Ok(printed)
    }

    async fn audit_after(&self, after_seq: i64, kind: Option<EventKind>) -> Result<Vec<AuditRow>> {
        let filter = AuditFilter {
            after_seq: Some(after_seq),
            limit: PAGE,
            kind,
            ..AuditFilter::default()
        };
        Ok(self.store.query_audit(&filter).await?)
    }

    async fn status(&self) -> Result<gatehouse::admin_api::views::Status> {
        let data_dir = self.config.data_dir.display().to_string();
        Ok(gatehouse::admin_api::status::build(&*self.store, data_dir).await?)
    }

    async fn export_state(&self) -> Result<declarative::State> {
        Ok(declarative::export(&*self.store, gatehouse::now_ms()).await?)
    }

    async fn apply_state(
        &self,
        state: declarative::State,
        options: declarative::Options,
    ) -> Result<declarative::Outcome> {
        let applied = declarative::apply(
            &self.admin,
            self.by()?,
            &self.config,
            state,
            &declarative::LocalResolver,
            options,
        )
        .await;
        match applied {
            Ok(outcome) => {
                if let Some(generation) = outcome.generation {
                    self.applied(generation).await?;
                }
                Ok(outcome)
            }
            Err(declarative::ApplyError::Incomplete(incomplete)) => {
                // What was made stands: let the replicas have it before saying what failed.
                if let Some(generation) = incomplete.generation {
                    self.applied(generation).await?;
                }
                anyhow::bail!("{incomplete}")
            }
            Err(err) => anyhow::bail!("nothing was changed: {err}"),
        }
    }

    fn local(&self) -> Option<&Local> {
        Some(self)
    }

    async fn close(self: Box<Self>) {
        self.writer.close().await;
    }
}

/// The operator of this command, on this host.
fn operator(actor: Option<String>) -> std::result::Result<Operator, String> {
    let account = whoami::username().map_err(|e| e.to_string());
    let actor = actor_name(actor, account, |name| std::env::var(name).ok())?;
    Operator::cli(&actor, whoami::hostname().ok()).map_err(|e| format!("--actor: {e}"))
}

/// `--actor` (or `GATEHOUSE_ACTOR`), else the account running the command, else (an account
/// without a name, as in a container run under an arbitrary uid) the login the environment
/// names.
fn actor_name(
    explicit: Option<String>,
    account: std::result::Result<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    if let Some(actor) = explicit {
        return Ok(actor);
    }
    account.or_else(|why| {
        ["USER", "LOGNAME"]
            .into_iter()
            .find_map(|name| env(name).filter(|v| !v.is_empty()))
            .ok_or_else(|| {
                format!("cannot tell which account runs this command ({why}): pass --actor NAME")
            })
    })
}

/// Creates the data directory if needed and, when it does, names it: the default is relative
/// to the current directory, so a command run elsewhere would silently start a fresh store.
pub fn create_data_dir(config: &Config) -> Result<()> {
    let dir = &config.data_dir;
    let existed = dir.exists();
    gatehouse::secrets::create_private_dir(dir)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", dir.display()))?;
    if !existed {
        let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        eprintln!(
            "note: created the data directory {} (choose another with --data-dir or data_dir)",
            shown.display()
        );
    }
    Ok(())
}

fn names(rows: &[ReplicaHeartbeat], name: impl Fn(&ReplicaHeartbeat) -> String) -> String {
    rows.iter().map(name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::actor_name;

    #[test]
    fn the_actor_is_named_or_the_account_or_the_login() {
        let no_env = |_: &str| None;
        let named = actor_name(Some("alice".into()), Ok("root".into()), no_env);
        assert_eq!(named.unwrap(), "alice");
        assert_eq!(actor_name(None, Ok("root".into()), no_env).unwrap(), "root");
        let login = |name: &str| (name == "LOGNAME").then(|| "deploy".to_owned());
        assert_eq!(
            actor_name(None, Err("no entry".into()), login).unwrap(),
            "deploy"
        );
        let err = actor_name(None, Err("no entry".into()), no_env).unwrap_err();
        assert!(err.contains("--actor"), "{err}");
    }
}
