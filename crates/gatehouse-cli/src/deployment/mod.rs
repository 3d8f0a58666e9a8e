//! The deployment an operator command works on: the local database ([`local::Local`]: the
//! store in the data directory, changes through `AdminService`) or a running Gatehouse through
//! its admin API ([`remote::Remote`]: `--server URL` with an admin token). Commands call
//! [`Deployment`] and never ask which one they have; both answer with the admin API's shapes
//! (`gatehouse::admin_api::views`), so `-o json` prints the same in both modes.

pub mod local;
pub mod remote;
mod remote_client;
mod remote_servers;
pub mod selection;
mod upstream_auth_body;

use async_trait::async_trait;
use gatehouse::admin::{NewConnection, NewKey, NewPolicy, NewServer, ServerUpdate};
use gatehouse::admin::{declarative, oauth::OAuthRegistration};
use gatehouse::admin_api::views::{
    AdminToken, ApiKey, Client, ClientSecret, Connection, CreatedAdminToken, CreatedApiKey,
    GroupConnection, OAuthRegistered, Policy, RotatedSecret, Server, SigningKey, ToolPin,
    UpstreamGrant, User,
};
use gatehouse_model::{
    audit::{AuditFilter, AuditRow, EventKind},
    records::AdminRole,
};
use serde::Serialize;
use std::{net::IpAddr, time::Duration};

pub type Result<T> = anyhow::Result<T>;

/// Receives audit rows a page at a time, oldest first.
pub type RowSink<'a> = &'a mut (dyn FnMut(&[AuditRow]) -> Result<()> + Send);

/// When a new signing key starts signing.
#[derive(Debug, Clone, Copy)]
pub enum SigningLead {
    /// At once.
    Now,
    /// After the configured `oauth.key_publish_lead`.
    Configured,
    /// After this long.
    After(Duration),
}

/// `policy explain`'s question, as the admin API's `explainPolicy` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainQuestion {
    pub client: Option<String>,
    pub key: Option<String>,
    pub server: String,
    pub tool: Option<String>,
    pub ip: IpAddr,
    /// RFC 3339; none: now.
    pub at: Option<String>,
    pub arguments: Option<serde_json::Value>,
}

/// What an operator command can do to a deployment. Every change is validated and recorded
/// in the audit trail by the deployment (locally by `AdminService` under `--actor`; remotely
/// by the server, under the admin token's name). A change returns once every running
/// replica applied it (locally: the command waits; remotely: the server answers after its
/// commit, and replicas apply it at their next poll or change notification).
#[async_trait]
pub trait Deployment: Send + Sync {
    // Servers and their tool pins.
    async fn add_server(&self, new: NewServer) -> Result<Server>;
    async fn update_server(&self, name: &str, update: ServerUpdate) -> Result<Server>;
    async fn list_servers(&self) -> Result<Vec<Server>>;
    async fn get_server(&self, name: &str) -> Result<Server>;
    async fn remove_server(&self, name: &str) -> Result<()>;
    async fn tool_pins(&self, server: &str) -> Result<Vec<ToolPin>>;
    async fn approve_tools(&self, server: &str, tools: &[String]) -> Result<u64>;
    async fn reject_tools(&self, server: &str, tools: &[String]) -> Result<u64>;

    // Clients and their OAuth registrations.
    async fn create_client(&self, name: &str, description: &str) -> Result<Client>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    async fn get_client(&self, name: &str) -> Result<Client>;
    async fn set_client_enabled(&self, name: &str, enabled: bool) -> Result<Client>;
    async fn delete_client(&self, name: &str) -> Result<()>;
    async fn register_oauth(
        &self,
        name: &str,
        registration: OAuthRegistration,
    ) -> Result<OAuthRegistered>;
    async fn rotate_client_secret(&self, name: &str, overlap: Duration) -> Result<RotatedSecret>;
    async fn list_client_secrets(&self, name: &str) -> Result<Vec<ClientSecret>>;
    async fn revoke_client_secret(&self, id: &str) -> Result<()>;

    // API keys.
    async fn create_key(&self, new: NewKey) -> Result<CreatedApiKey>;
    async fn list_keys(&self, client: Option<&str>) -> Result<Vec<ApiKey>>;
    async fn rotate_key(&self, id: &str, overlap: Duration) -> Result<CreatedApiKey>;
    async fn revoke_key(&self, id: &str) -> Result<ApiKey>;

    // Connections.
    async fn list_connections(&self) -> Result<Vec<Connection>>;
    async fn grant_connection(&self, new: NewConnection) -> Result<Connection>;
    async fn revoke_connection(&self, client: &str, server: &str) -> Result<()>;

    // Policies and guardrails.
    async fn add_policy(&self, new: NewPolicy) -> Result<Policy>;
    /// Adds every policy of a JSON array, all or none; returns every policy after.
    async fn import_policies(&self, text: &str) -> Result<Vec<Policy>>;
    async fn list_policies(&self) -> Result<Vec<Policy>>;
    async fn remove_policy(&self, id: &str) -> Result<()>;
    /// The explanation (`decision`, `decided_by`, `steps`).
    async fn explain(&self, question: ExplainQuestion) -> Result<serde_json::Value>;

    // Users and groups.
    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password: Option<String>,
        groups: Vec<String>,
    ) -> Result<User>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn update_user(&self, username: &str, display_name: &str) -> Result<User>;
    async fn set_user_groups(&self, username: &str, groups: Vec<String>) -> Result<User>;
    async fn set_user_password(&self, username: &str, password: &str) -> Result<()>;
    async fn set_user_enabled(&self, username: &str, enabled: bool) -> Result<User>;
    /// People's grants at upstreams with per-user tokens (never the tokens): one person's, or
    /// everyone's, by username then server.
    async fn list_upstream_grants(&self, username: Option<&str>) -> Result<Vec<UpstreamGrant>>;
    /// Forgets a person's tokens at a server; its revocation endpoint is told when the
    /// server's per-user settings name one.
    async fn revoke_upstream_grant(&self, username: &str, server: &str) -> Result<()>;
    async fn list_group_connections(&self) -> Result<Vec<GroupConnection>>;
    async fn grant_group(
        &self,
        group: &str,
        server: &str,
        tools: &str,
        resources: bool,
        prompts: bool,
    ) -> Result<GroupConnection>;
    async fn revoke_group(&self, group: &str, server: &str) -> Result<()>;

    // Admin tokens and signing keys.
    async fn create_admin_token(
        &self,
        name: &str,
        role: AdminRole,
        expires: Option<Duration>,
    ) -> Result<CreatedAdminToken>;
    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>>;
    async fn revoke_admin_token(&self, id: &str) -> Result<AdminToken>;
    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>>;
    async fn rotate_signing_key(
        &self,
        alg: Option<String>,
        lead: SigningLead,
    ) -> Result<SigningKey>;

    /// What the store holds and what each running replica applied.
    async fn status(&self) -> Result<gatehouse::admin_api::views::Status>;

    // The audit trail.
    /// The newest `limit` events matching `filter` (every one for 0), handed to `sink`
    /// oldest first; the `seq` of the last one.
    async fn audit_newest(
        &self,
        filter: AuditFilter,
        limit: i64,
        sink: RowSink<'_>,
    ) -> Result<Option<i64>>;
    /// Events after `after_seq` (of `kind`), oldest first: what `audit tail -f` polls.
    async fn audit_after(&self, after_seq: i64, kind: Option<EventKind>) -> Result<Vec<AuditRow>>;

    /// The configuration as a state document (docs/gitops.md); admin tokens only for the
    /// admin role.
    async fn export_state(&self) -> Result<declarative::State>;
    /// Plans `state` against the deployment and, unless a dry run, applies it; the secret
    /// references are read here, where the command runs.
    async fn apply_state(
        &self,
        state: declarative::State,
        options: declarative::Options,
    ) -> Result<declarative::Outcome>;

    /// The local database, for the commands that only run where it is (`status`, `audit
    /// verify`, `audit export`, …); `None` through `--server`.
    fn local(&self) -> Option<&local::Local> {
        None
    }

    /// Lets the local audit writer finish.
    async fn close(self: Box<Self>);
}
