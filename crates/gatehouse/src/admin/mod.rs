//! Operator actions, shared by the CLI, the tests and (later) the admin API: validation lives
//! here, once, so every front end refuses the same bad input with the same message.
//!
//! Front ends change things through [`AdminService`] (`service.rs`), which runs these steps
//! and records each change as an operator event in the audit trail; the free functions below
//! apply a change without recording it (tests, setup).

use std::time::Duration;

pub mod declarative;
pub mod explain;
pub mod oauth;
mod service;
pub mod stdio;
pub mod summary;
pub mod upstream_auth;
pub mod upstream_registration;
pub mod users;
pub mod virtual_servers;

pub use service::MIN_DECLARED_SECRET_LEN;
pub use service::{AdminService, CreatedAdminToken, Operator, OwnWriter, ServerSettings};
pub use stdio::NewStdio;

use crate::{
    identity::api_keys,
    secrets::{Keyring, SecretError},
    snapshot::credential_context,
    store::{Store, StoreError},
};
use gatehouse_model::{
    names::{InvalidValue, Name, NameKind},
    pin_action::PinAction,
    records::{ApiKeyRecord, ClientRecord, ConnectionRecord, Generation, ServerRecord},
    tool_pattern::{PatternError, parse_pattern_list},
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A per-user upstream's authorization server could not be found or used (discovery,
    /// its metadata, registration); nothing was stored.
    #[error("{0}")]
    UpstreamAuthorizationServer(String),
    /// The change was applied, but its operator event could not be recorded.
    #[error("{action} of {target:?} was applied, but its audit event was not recorded: {why}")]
    Unrecorded {
        action: &'static str,
        target: String,
        why: String,
    },
}

pub type AdminResult<T> = Result<T, AdminError>;

impl From<InvalidValue> for AdminError {
    fn from(invalid: InvalidValue) -> Self {
        AdminError::Invalid(invalid.to_string())
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewServer {
    pub name: String,
    pub url: String,
    /// `Header-Name: value` injected on every upstream request.
    pub credential: Option<String>,
    pub allow_anonymous: bool,
    pub allow_unknown_methods: bool,
    /// `block` (default), `warn` or `off`: what a changed tool definition does.
    pub pin_action: Option<String>,
    /// Tokens fetched for the upstream (ADR 0006 §5).
    pub upstream_auth: Option<upstream_auth::NewUpstreamAuth>,
    /// Header carrying Gatehouse's signed assertion of the caller (ADR 0006 §6).
    pub identity_header: Option<String>,
    /// A local program instead of a URL (`url` is then left empty).
    pub stdio: Option<NewStdio>,
    /// Per-user tokens at an upstream whose authorization server Gatehouse finds (and
    /// registers at) itself; instead of `upstream_auth`.
    pub per_user_discovery: Option<upstream_registration::PerUserDiscovery>,
    /// The servers a virtual server aggregates, instead of a URL or a program.
    pub members: Vec<String>,
}

pub async fn add_server(
    store: &dyn Store,
    keyring: &Keyring,
    new: NewServer,
) -> AdminResult<Generation> {
    Name::parse(NameKind::Server, &new.name)?;
    if new.per_user_discovery.is_some() {
        return Err(undiscovered());
    }
    if !new.members.is_empty() {
        return add_virtual_server(store, new).await;
    }
    let stdio = match new.stdio {
        Some(stdio) => {
            if !new.url.is_empty() || new.credential.is_some() {
                return Err(AdminError::Invalid(
                    "a stdio server has a command, not a url or an injected header".into(),
                ));
            }
            Some(stdio::settings(keyring, &new.name, stdio)?)
        }
        None => {
            check_upstream_url(&new.url)?;
            None
        }
    };
    let url = match stdio {
        Some(_) => stdio::stdio_url(&new.name),
        None => new.url,
    };
    let (credential_header, credential_sealed) = match &new.credential {
        Some(text) => seal_credential(keyring, &new.name, text)?,
        None => (None, None),
    };
    let pin_action = match new.pin_action {
        Some(text) => text.parse::<PinAction>()?,
        None => PinAction::Block,
    };
    let mut auth = gatehouse_model::upstream_auth::UpstreamAuthRecord {
        identity_header: new
            .identity_header
            .as_deref()
            .map(upstream_auth::identity_header)
            .transpose()?,
        ..Default::default()
    };
    if let Some(given) = new.upstream_auth {
        upstream_auth::apply(keyring, &new.name, given, &mut auth)?;
    }
    let record = ServerRecord {
        pin_action,
        name: new.name,
        url,
        credential_header,
        credential_sealed,
        upstream_auth: auth,
        allow_anonymous: new.allow_anonymous,
        allow_unknown_methods: new.allow_unknown_methods,
        created_at: crate::now_ms(),
        stdio,
        members: Vec::new(),
    };
    one_upstream_credential(&record)?;
    Ok(store.insert_server(&record).await?)
}

/// A server with members: it has nothing of its own to reach, so nothing of an upstream's.
async fn add_virtual_server(store: &dyn Store, new: NewServer) -> AdminResult<Generation> {
    if !new.url.is_empty()
        || new.credential.is_some()
        || new.stdio.is_some()
        || new.upstream_auth.is_some()
        || new.identity_header.is_some()
    {
        return Err(AdminError::Invalid(
            "a virtual server has members, not a url, a command or upstream credentials".into(),
        ));
    }
    virtual_servers::check_members(store, &new.name, &new.members).await?;
    let pin_action = match new.pin_action {
        Some(text) => text.parse::<PinAction>()?,
        None => PinAction::Block,
    };
    let record = ServerRecord {
        url: virtual_servers::virtual_url(&new.name),
        name: new.name,
        credential_header: None,
        credential_sealed: None,
        upstream_auth: Default::default(),
        allow_anonymous: new.allow_anonymous,
        allow_unknown_methods: new.allow_unknown_methods,
        pin_action,
        created_at: crate::now_ms(),
        stdio: None,
        members: new.members,
    };
    Ok(store.insert_server(&record).await?)
}

/// A static header and upstream tokens are exclusive. The snapshot leaves a server with both
/// out (its calls get 503), which is fail closed for a record that got there some other way;
/// a change that would make one is refused here, before anything is stored.
fn one_upstream_credential(record: &ServerRecord) -> AdminResult<()> {
    let static_header = record.credential_header.is_some() || record.credential_sealed.is_some();
    if static_header && record.upstream_auth.spec.is_some() {
        return Err(AdminError::Invalid(format!(
            "server {:?} would send both a static credential and upstream tokens: keep one \
             (remove the header with --no-credential, or the tokens with --no-upstream-auth)",
            record.name
        )));
    }
    Ok(())
}

/// Discovery is done by [`AdminService`], which holds the fetcher, before the change.
fn undiscovered() -> AdminError {
    AdminError::Invalid(
        "finding a per-user upstream's authorization server is not available here (the \
         upstream HTTP client could not be built; see gateway.upstream_ca_files)"
            .into(),
    )
}

fn check_upstream_url(url: &str) -> AdminResult<()> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| AdminError::Invalid(format!("invalid url {url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(AdminError::Invalid(format!(
            "url {url:?} must start with http:// or https://"
        )));
    }
    if uri.host().is_none() {
        return Err(AdminError::Invalid(format!("url {url:?} has no host")));
    }
    Ok(())
}

/// `Header-Name: value` → the lower-cased header name and the value sealed for `server`.
fn seal_credential(
    keyring: &Keyring,
    server: &str,
    text: &str,
) -> AdminResult<(Option<String>, Option<Vec<u8>>)> {
    let (name, value) = text.split_once(':').ok_or_else(|| {
        AdminError::Invalid("credential must look like 'Header-Name: value'".into())
    })?;
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim();
    http::HeaderName::try_from(name.as_str())
        .map_err(|_| AdminError::Invalid(format!("invalid credential header name {name:?}")))?;
    if value.is_empty() || http::HeaderValue::try_from(value).is_err() {
        return Err(AdminError::Invalid(
            "invalid credential header value".into(),
        ));
    }
    let sealed = keyring.encrypt(value.as_bytes(), &credential_context(server))?;
    Ok((Some(name), Some(sealed)))
}

/// What `gatehouse servers update` changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ServerUpdate {
    pub url: Option<String>,
    /// `Some(None)` removes the injected credential.
    pub credential: Option<Option<String>>,
    /// `Some(None)` stops fetching tokens for the upstream.
    pub upstream_auth: Option<Option<upstream_auth::NewUpstreamAuth>>,
    /// `Some(None)` stops sending the identity assertion.
    pub identity_header: Option<Option<String>>,
    /// Makes the server a local program (or replaces its settings); a new `url` makes a stdio
    /// server an HTTP one again.
    pub stdio: Option<NewStdio>,
    /// Per-user tokens found by discovery (again); instead of `upstream_auth`.
    pub per_user_discovery: Option<upstream_registration::PerUserDiscovery>,
    /// Makes the server virtual (or replaces its members); a new `url` or `stdio` makes a
    /// virtual server one with an upstream again.
    pub members: Option<Vec<String>>,
}

/// Changes a server's upstream URL or injected credential, validated as `add_server` does.
pub async fn update_server(
    store: &dyn Store,
    keyring: &Keyring,
    name: &str,
    update: ServerUpdate,
) -> AdminResult<Generation> {
    let mut record = store.get_server(name).await?;
    if update.per_user_discovery.is_some() {
        return Err(undiscovered());
    }
    if update.stdio.is_some() && update.url.is_some() {
        return Err(AdminError::Invalid(
            "a server has a command or a url, not both".into(),
        ));
    }
    if update.members.is_some() && (update.url.is_some() || update.stdio.is_some()) {
        return Err(AdminError::Invalid(
            "a server has members, a command or a url, only one of them".into(),
        ));
    }
    if let Some(url) = update.url {
        check_upstream_url(&url)?;
        record.url = url;
        record.stdio = None;
        record.members.clear();
    }
    if let Some(new) = update.stdio {
        record.stdio = Some(stdio::settings(keyring, name, new)?);
        record.url = stdio::stdio_url(name);
        record.members.clear();
    }
    if let Some(members) = update.members {
        virtual_servers::check_members(store, name, &members).await?;
        record.members = members;
        record.url = virtual_servers::virtual_url(name);
        record.stdio = None;
        (record.credential_header, record.credential_sealed) = (None, None);
        record.upstream_auth = Default::default();
    }
    match update.credential {
        Some(Some(text)) => {
            (record.credential_header, record.credential_sealed) =
                seal_credential(keyring, name, &text)?;
        }
        Some(None) => (record.credential_header, record.credential_sealed) = (None, None),
        None => {}
    }
    match update.upstream_auth {
        Some(Some(given)) => upstream_auth::apply(keyring, name, given, &mut record.upstream_auth)?,
        Some(None) => {
            let auth = &mut record.upstream_auth;
            (auth.spec, auth.secret_sealed, auth.unreadable) = (None, None, None);
        }
        None => {}
    }
    match update.identity_header {
        Some(Some(text)) => {
            record.upstream_auth.identity_header = Some(upstream_auth::identity_header(&text)?);
        }
        Some(None) => record.upstream_auth.identity_header = None,
        None => {}
    }
    one_upstream_credential(&record)?;
    Ok(store.update_server(&record).await?)
}

pub async fn create_client(
    store: &dyn Store,
    name: &str,
    description: &str,
) -> AdminResult<Generation> {
    Name::parse(NameKind::Client, name)?;
    let record = ClientRecord {
        name: name.to_owned(),
        description: description.to_owned(),
        disabled_at: None,
        created_at: crate::now_ms(),
        oauth: None,
    };
    Ok(store.insert_client(&record).await?)
}

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub client: String,
    pub label: String,
    pub expires_in: Option<Duration>,
    /// Comma-separated tool patterns narrowing the connection's grant.
    pub tools: Option<String>,
}

/// A created key: the record plus the plaintext token, shown once.
#[derive(Debug, serde::Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: ApiKeyRecord,
    pub token: String,
    #[serde(skip)]
    pub generation: Generation,
}

pub(crate) fn expiry(now: i64, within: Option<Duration>) -> Option<i64> {
    within.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

fn new_key_record(
    keyring: &Keyring,
    new: &NewKey,
    rotated_from: Option<String>,
) -> AdminResult<(ApiKeyRecord, String)> {
    let tools = match &new.tools {
        Some(list) => {
            let patterns = parse_pattern_list(list)?;
            if patterns.is_empty() {
                return Err(AdminError::Invalid(
                    "--tools needs at least one pattern".into(),
                ));
            }
            Some(patterns.into_iter().map(String::from).collect())
        }
        None => None,
    };
    let minted = api_keys::mint(keyring)?;
    let now = crate::now_ms();
    let record = ApiKeyRecord {
        id: minted.id,
        client: new.client.clone(),
        label: new.label.clone(),
        secret_hash: minted.secret_hash.to_vec(),
        tools,
        created_at: now,
        expires_at: expiry(now, new.expires_in),
        revoked_at: None,
        rotated_from,
        last_used_at: None,
    };
    Ok((record, minted.token))
}

pub async fn create_key(
    store: &dyn Store,
    keyring: &Keyring,
    new: NewKey,
) -> AdminResult<CreatedKey> {
    if new.expires_in == Some(Duration::ZERO) {
        return Err(AdminError::Invalid(
            "--expires-in must be longer than zero (the key would be expired when created)".into(),
        ));
    }
    let (record, token) = new_key_record(keyring, &new, None)?;
    let generation = store.insert_api_key(&record).await?;
    Ok(CreatedKey {
        record,
        token,
        generation,
    })
}

/// Issues a successor with the same client, label, narrowing and lifetime, and keeps the old
/// key valid only for `overlap` (at most until its own expiry).
pub async fn rotate_key(
    store: &dyn Store,
    keyring: &Keyring,
    key_id: &str,
    overlap: Duration,
) -> AdminResult<CreatedKey> {
    let old = store.get_api_key(key_id).await?;
    let now = crate::now_ms();
    if old.revoked_at.is_some() || old.expires_at.is_some_and(|at| at <= now) {
        return Err(AdminError::Invalid(format!(
            "key {key_id} is revoked or expired; create a new key instead"
        )));
    }
    let lifetime = old
        .expires_at
        .map(|at| Duration::from_millis(u64::try_from(at - old.created_at).unwrap_or(0)));
    let new = NewKey {
        client: old.client.clone(),
        label: old.label.clone(),
        expires_in: lifetime,
        tools: old.tools.as_ref().map(|t| t.join(",")),
    };
    let (record, token) = new_key_record(keyring, &new, Some(old.id.clone()))?;
    let old_until = expiry(now, Some(overlap)).unwrap_or(now);
    let generation = store.rotate_api_key(&old.id, &record, old_until).await?;
    Ok(CreatedKey {
        record,
        token,
        generation,
    })
}

#[derive(Debug, Clone, Default)]
pub struct NewConnection {
    pub client: String,
    pub server: String,
    pub tools: String,
    pub resources: bool,
    pub prompts: bool,
}

pub async fn grant_connection(store: &dyn Store, new: NewConnection) -> AdminResult<Generation> {
    let tools = parse_pattern_list(&new.tools)?;
    let record = ConnectionRecord {
        client: new.client,
        server: new.server,
        tools: tools.into_iter().map(String::from).collect(),
        resources: new.resources,
        prompts: new.prompts,
        created_at: crate::now_ms(),
    };
    Ok(store.upsert_connection(&record).await?)
}

#[derive(Debug, Clone, Default)]
pub struct NewPolicy {
    pub id: String,
    pub kind: String,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tools: Option<String>,
    /// The kind's JSON spec (docs/policies.md).
    pub spec: String,
}

/// Validates the spec exactly as the server will compile it, then stores it.
pub async fn add_policy(store: &dyn Store, new: NewPolicy) -> AdminResult<Generation> {
    let record = policy_record(new)?;
    Ok(store.insert_policy(&record).await?)
}

/// [`add_policy`], also refusing what a server with `config` could not run (a `country`
/// policy without `policy.geoip_database`): stored, it would deny its whole scope.
pub async fn add_policy_for(
    store: &dyn Store,
    new: NewPolicy,
    config: &crate::Config,
) -> AdminResult<Generation> {
    let record = policy_record(new)?;
    runs_under(&record, config)?;
    Ok(store.insert_policy(&record).await?)
}

/// Replaces policy `new.id` after checking `new` as [`add_policy_for`] does: one stored
/// change, so the policy is in force throughout and a refused replacement changes nothing.
pub async fn replace_policy_for(
    store: &dyn Store,
    new: NewPolicy,
    config: &crate::Config,
) -> AdminResult<Generation> {
    let record = policy_record(new)?;
    runs_under(&record, config)?;
    Ok(store.replace_policy(&record).await?)
}

/// [`import_policies`] under [`add_policy_for`]'s check, for every entry before any is stored.
pub async fn import_policies_for(
    store: &dyn Store,
    text: &str,
    config: &crate::Config,
) -> AdminResult<Generation> {
    let entries: Vec<PolicyEntry> =
        serde_json::from_str(text).map_err(|e| AdminError::Invalid(format!("policy file: {e}")))?;
    for entry in entries {
        let record = gatehouse_model::records::PolicyRecord {
            id: entry.id,
            kind: entry.kind.replace('-', "_"),
            client: entry.client,
            server: entry.server,
            tools: entry.tools,
            spec: entry.spec,
            created_at: 0,
        };
        runs_under(&record, config)
            .map_err(|e| AdminError::Invalid(format!("policy {:?}: {e}", record.id)))?;
    }
    import_policies(store, text).await
}

fn runs_under(
    record: &gatehouse_model::records::PolicyRecord,
    config: &crate::Config,
) -> AdminResult<()> {
    crate::policy::check_runs_under(record, config.policy.geoip_database.is_some())
        .map_err(AdminError::Invalid)
}

/// One entry of a policy file (`gatehouse policy import`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub tools: Option<String>,
    pub spec: serde_json::Value,
}

/// Imports a JSON array of policies: every entry is validated (spec, scope, duplicates) before
/// the first is stored, so a bad file changes nothing.
pub async fn import_policies(store: &dyn Store, text: &str) -> AdminResult<Generation> {
    let entries: Vec<PolicyEntry> =
        serde_json::from_str(text).map_err(|e| AdminError::Invalid(format!("policy file: {e}")))?;
    let existing: Vec<String> = store
        .list_policies()
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let mut records = Vec::new();
    for entry in entries {
        let id = entry.id.clone();
        let record = policy_record(NewPolicy {
            id: entry.id,
            kind: entry.kind,
            client: entry.client,
            server: entry.server,
            tools: entry.tools,
            spec: entry.spec.to_string(),
        })
        .map_err(|e| AdminError::Invalid(format!("policy {id:?}: {e}")))?;
        if existing.contains(&record.id)
            || records
                .iter()
                .any(|r: &gatehouse_model::records::PolicyRecord| r.id == record.id)
        {
            return Err(AdminError::Invalid(format!("policy {id:?} already exists")));
        }
        if let Some(client) = &record.client {
            store.get_client(client).await?;
        }
        if let Some(server) = &record.server {
            store.get_server(server).await?;
        }
        records.push(record);
    }
    let mut generation = store.generation().await?;
    for record in &records {
        generation = store.insert_policy(record).await?;
    }
    Ok(generation)
}

fn policy_record(new: NewPolicy) -> AdminResult<gatehouse_model::records::PolicyRecord> {
    let spec: serde_json::Value = serde_json::from_str(&new.spec)
        .map_err(|e| AdminError::Invalid(format!("--spec is not valid JSON: {e}")))?;
    let record = gatehouse_model::records::PolicyRecord {
        id: new.id,
        kind: new.kind.replace('-', "_"),
        client: new.client,
        server: new.server,
        tools: new.tools,
        spec,
        created_at: crate::now_ms(),
    };
    if record.kind == crate::guardrails::GUARDRAIL_KIND {
        crate::guardrails::compile_record(&record).map_err(AdminError::Invalid)?;
    } else {
        crate::policy::validate(&record).map_err(AdminError::Invalid)?;
    }
    Ok(record)
}
