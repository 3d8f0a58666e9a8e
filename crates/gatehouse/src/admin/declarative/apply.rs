//! Making a plan and carrying it out through [`AdminService`], so every change is validated
//! as the CLI's, recorded as an operator event, and moves the generation.
//!
//! Everything that can be checked is checked before the first write: the document
//! ([`normalize`]), every secret reference resolved, declared values well-formed. Then the
//! changes run in the plan's order, each in its own store transaction with its own event.
//! The store offers no transaction spanning them, so a failure there (the database lost,
//! a concurrent change) stops at that change: those before it stand and are recorded, the
//! error names the change that failed and how many were applied, and applying the same file
//! again makes the rest (a plan holds only what differs).

use std::{collections::BTreeMap, time::Duration};

use super::{
    document::{ServerSpec, State},
    export,
    normalize::{Problem, normalize, token_spec},
    plan::{Change, Kind, Op, Plan, SecretFacts, SecretSlot, plan},
    secret_ref::{Resolve, SecretValue},
};
use crate::{
    Config,
    admin::{
        AdminError, AdminService, NewConnection, NewPolicy, NewServer, Operator, ServerSettings,
        ServerUpdate,
        oauth::OAuthRegistration,
        stdio::NewStdio,
        upstream_auth::{NewUpstreamAuth, private_key_der},
    },
};
use gatehouse_model::records::{Generation, command_allowed};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Make the plan, change nothing.
    pub dry_run: bool,
    /// Delete what present sections no longer name (disable clients and users).
    pub prune: bool,
    /// May create or change a server that runs a local program: the admin role's through
    /// the admin API (choosing what runs on the gateway's machine), and a local operator's,
    /// who holds the database anyway.
    pub programs: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub plan: Plan,
    /// How many changes were made (0 for a dry run or an empty plan).
    pub applied: usize,
    /// The store's generation after the last change, for waiting on replicas.
    pub generation: Option<Generation>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The document is refused; nothing was changed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
    /// A secret reference could not be read; nothing was changed.
    #[error("{}", list(.0))]
    Unresolved(Vec<Problem>),
    /// The plan creates or changes a server that runs a local program, which the caller
    /// may not do (`Options::programs`); nothing was changed.
    #[error("{}", list(.0))]
    NeedsAdmin(Vec<Problem>),
    /// Reading the store before the first write failed; nothing was changed.
    #[error(transparent)]
    Before(AdminError),
    /// A change failed after some were made (they stand, recorded).
    #[error(transparent)]
    Incomplete(Box<Incomplete>),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{applied} of {total} change(s) were applied; then {kind} {name:?} failed: {source}. Apply the file again to make the rest"
)]
pub struct Incomplete {
    pub applied: usize,
    pub total: usize,
    pub kind: &'static str,
    pub name: String,
    pub source: AdminError,
    /// The generation after the last change that was made.
    pub generation: Option<Generation>,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Plans `desired` against the store of `service` and, unless `options.dry_run`, applies it
/// as `by`. `resolver` reads the document's secret references.
pub async fn apply(
    service: &AdminService,
    by: &Operator,
    config: &Config,
    desired: State,
    resolver: &dyn Resolve,
    options: Options,
) -> Result<Outcome, ApplyError> {
    let now = service.now();
    let current = export::export(&**service.store(), now)
        .await
        .map_err(|e| ApplyError::Before(e.into()))?;
    let self_registered: Vec<Problem> = service
        .store()
        .list_clients()
        .await
        .map_err(|e| ApplyError::Before(e.into()))?
        .into_iter()
        .filter(|c| !export::declared_client(c))
        .filter(|c| desired.clients.as_ref().is_some_and(|d| d.contains_key(&c.name)))
        .map(|c| Problem {
            at: format!("client {}", c.name),
            why: "this client registered itself (dynamic registration or a metadata document); a state document does not manage it".into(),
        })
        .collect();
    if !self_registered.is_empty() {
        return Err(ApplyError::Invalid(self_registered));
    }
    let geoip = config.policy.geoip_database.is_some();
    let desired =
        normalize(desired, &current, options.prune, geoip).map_err(ApplyError::Invalid)?;
    let not_allowed = commands_not_allowed(&desired, config);
    if !not_allowed.is_empty() {
        return Err(ApplyError::Invalid(not_allowed));
    }
    let values = resolve(&desired, resolver)?;
    let facts = facts(service, &current, &values, now)
        .await
        .map_err(ApplyError::Before)?;
    let plan = plan(&current, &desired, &facts, options.prune);
    if !options.programs {
        let programs = program_changes(&current, &desired, &plan);
        if !programs.is_empty() {
            return Err(ApplyError::NeedsAdmin(programs));
        }
    }
    if options.dry_run || plan.is_empty() {
        return Ok(Outcome {
            plan,
            applied: 0,
            generation: None,
        });
    }
    let mut generation = None;
    for (done, change) in plan.changes.iter().enumerate() {
        match make(service, by, config, &desired, &values, change).await {
            Ok(g) => generation = generation.max(g),
            Err(source) => {
                return Err(ApplyError::Incomplete(Box::new(Incomplete {
                    applied: done,
                    total: plan.changes.len(),
                    kind: change.kind.as_str(),
                    name: change.name.clone(),
                    source,
                    generation,
                })));
            }
        }
    }
    Ok(Outcome {
        applied: plan.changes.len(),
        plan,
        generation,
    })
}

/// `[gateway] stdio_commands` of the configuration in force, checked for every declared
/// program before the first write, as `gatehouse servers add --command` checks it.
fn commands_not_allowed(desired: &State, config: &Config) -> Vec<Problem> {
    let Some(allowed) = &config.gateway.stdio_commands else {
        return Vec::new();
    };
    desired
        .servers
        .iter()
        .flatten()
        .filter_map(|(name, s)| Some((name, s.stdio.as_ref()?)))
        .filter(|(_, stdio)| !command_allowed(allowed, &stdio.command))
        .map(|(name, stdio)| Problem {
            at: format!("server {name}, field stdio.command"),
            why: format!(
                "command {:?} is not allowed: the configuration's [gateway] stdio_commands lists {allowed:?}",
                stdio.command
            ),
        })
        .collect()
}

/// The planned creations and changes of a server that runs a local program, before or after.
fn program_changes(current: &State, desired: &State, plan: &Plan) -> Vec<Problem> {
    let runs_program = |state: &State, name: &str| {
        state
            .servers
            .as_ref()
            .and_then(|s| s.get(name))
            .is_some_and(|s| s.stdio.is_some())
    };
    plan.changes
        .iter()
        .filter(|c| c.kind == Kind::Server && c.op != Op::Delete)
        .filter(|c| runs_program(current, &c.name) || runs_program(desired, &c.name))
        .map(|c| Problem {
            at: format!("server {}", c.name),
            why: "creating or changing a server that runs a local program (stdio) needs the admin role".into(),
        })
        .collect()
}

/// The values of `state`'s references read by `resolver`, keyed by reference text: what a
/// remote client sends as `secrets` with a document to `POST /admin/api/v1/state/apply`,
/// having read them where it runs. Every unreadable reference is named.
pub fn supplied_values(
    state: &State,
    resolver: &dyn Resolve,
) -> Result<BTreeMap<String, String>, ApplyError> {
    let mut values = BTreeMap::new();
    let mut unresolved = Vec::new();
    for (at, reference) in state.references() {
        match resolver.resolve(reference) {
            Ok(value) => {
                values.insert(reference.to_string(), value.as_str().to_owned());
            }
            Err(why) => unresolved.push(Problem { at, why }),
        }
    }
    if unresolved.is_empty() {
        Ok(values)
    } else {
        Err(ApplyError::Unresolved(unresolved))
    }
}

/// Every reference of the document read, and each value checked as its field needs.
fn resolve(
    desired: &State,
    resolver: &dyn Resolve,
) -> Result<BTreeMap<SecretSlot, SecretValue>, ApplyError> {
    let mut values = BTreeMap::new();
    let mut unresolved = Vec::new();
    let mut invalid = Vec::new();
    for (name, server) in desired.servers.iter().flatten() {
        let Some(credential) = &server.credential else {
            continue;
        };
        let at = format!("server {name}, field credential.value");
        match resolver.resolve(&credential.value) {
            Ok(value) if http::HeaderValue::try_from(value.as_str()).is_ok() => {
                values.insert(SecretSlot::ServerCredential(name.clone()), value);
            }
            Ok(_) => invalid.push(Problem {
                at,
                why: format!(
                    "the value of {} is not a valid header value",
                    credential.value
                ),
            }),
            Err(why) => unresolved.push(Problem { at, why }),
        }
    }
    for (name, server) in desired.servers.iter().flatten() {
        let Some(stdio) = &server.stdio else {
            continue;
        };
        let mut env = BTreeMap::new();
        for (variable, reference) in &stdio.env {
            match resolver.resolve(reference) {
                Ok(value) => {
                    env.insert(variable.clone(), value.as_str().to_owned());
                }
                Err(why) => unresolved.push(Problem {
                    at: format!("server {name}, field stdio.env.{variable}"),
                    why,
                }),
            }
        }
        if !env.is_empty() {
            let env = serde_json::to_string(&env).map_err(|e| {
                ApplyError::Invalid(vec![Problem {
                    at: format!("server {name}, field stdio.env"),
                    why: e.to_string(),
                }])
            })?;
            values.insert(SecretSlot::StdioEnv(name.clone()), Zeroizing::new(env));
        }
    }
    for (name, server) in desired.servers.iter().flatten() {
        let Some((field, reference)) = server.upstream_auth.as_ref().and_then(|a| a.secret_ref())
        else {
            continue;
        };
        let at = format!("server {name}, field upstream_auth.{field}");
        match resolver.resolve(reference) {
            Ok(value) if value.trim().is_empty() => invalid.push(Problem {
                at,
                why: format!("the value of {reference} is empty"),
            }),
            Ok(value) if field == "private_key" && private_key_der(&value).is_err() => {
                invalid.push(Problem {
                    at,
                    why: format!(
                        "the value of {reference} is not a PEM PKCS #8 private key Gatehouse can sign with"
                    ),
                })
            }
            Ok(value) => {
                values.insert(SecretSlot::UpstreamSecret(name.clone()), value);
            }
            Err(why) => unresolved.push(Problem { at, why }),
        }
    }
    for (name, client) in desired.clients.iter().flatten() {
        let Some(secret) = client.oauth.as_ref().and_then(|o| o.secret.as_ref()) else {
            continue;
        };
        let at = format!("client {name}, field oauth.secret");
        match resolver.resolve(secret) {
            Ok(value) if value.chars().count() >= crate::admin::MIN_DECLARED_SECRET_LEN => {
                values.insert(SecretSlot::ClientSecret(name.clone()), value);
            }
            Ok(_) => invalid.push(Problem {
                at,
                why: format!(
                    "the value of {secret} is shorter than {} characters",
                    crate::admin::MIN_DECLARED_SECRET_LEN
                ),
            }),
            Err(why) => unresolved.push(Problem { at, why }),
        }
    }
    if !unresolved.is_empty() {
        return Err(ApplyError::Unresolved(unresolved));
    }
    if !invalid.is_empty() {
        return Err(ApplyError::Invalid(invalid));
    }
    Ok(values)
}

/// Which declared secrets the store already holds.
async fn facts(
    service: &AdminService,
    current: &State,
    values: &BTreeMap<SecretSlot, SecretValue>,
    now: i64,
) -> Result<SecretFacts, AdminError> {
    let mut facts = SecretFacts::default();
    for (slot, value) in values {
        let same = match slot {
            SecretSlot::ServerCredential(name) => {
                let stored = current
                    .servers
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .is_some_and(|s| s.credential.is_some());
                stored && service.server_credential_is(name, value).await?
            }
            SecretSlot::StdioEnv(name) => {
                let stored = current
                    .servers
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .is_some_and(|s| s.stdio.is_some());
                stored && service.stdio_env_is(name, value).await?
            }
            SecretSlot::UpstreamSecret(name) => {
                let stored = current
                    .servers
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .is_some_and(|s| s.upstream_auth.is_some());
                stored && service.upstream_secret_is(name, value).await?
            }
            SecretSlot::ClientSecret(name) => {
                let stored = current
                    .clients
                    .as_ref()
                    .and_then(|c| c.get(name))
                    .is_some_and(|c| c.oauth.is_some());
                stored && service.client_secret_is(name, value, now).await?
            }
        };
        if same {
            facts.matching.insert(slot.clone());
        }
    }
    Ok(facts)
}

fn key(change: &Change, at: usize) -> &str {
    change.key.get(at).map_or("", String::as_str)
}

/// Makes one change; the generation after it when the store reports one.
async fn make(
    service: &AdminService,
    by: &Operator,
    config: &Config,
    desired: &State,
    values: &BTreeMap<SecretSlot, SecretValue>,
    change: &Change,
) -> Result<Option<Generation>, AdminError> {
    let name = key(change, 0);
    let missing = || {
        AdminError::Invalid(format!(
            "{} {name:?} is not in the document",
            change.kind.as_str()
        ))
    };
    let mut generation = None;
    let mut moved = |g: Generation| generation = generation.max(Some(g));
    match (change.kind, change.op) {
        (Kind::Server, Op::Delete) => moved(service.remove_server(by, name).await?),
        (Kind::Server, op) => {
            let spec = desired
                .servers
                .as_ref()
                .and_then(|s| s.get(name))
                .ok_or_else(missing)?;
            let credential = spec.credential.as_ref().and_then(|c| {
                let value = values.get(&SecretSlot::ServerCredential(name.to_owned()))?;
                Some(format!("{}: {}", c.header, value.as_str()))
            });
            let stdio = declared_stdio(spec, name, values, config)?;
            let upstream_auth = declared_upstream_auth(spec, name, values)?;
            if op == Op::Create {
                let new = NewServer {
                    name: name.to_owned(),
                    url: spec.url.clone(),
                    credential,
                    allow_anonymous: spec.allow_anonymous,
                    allow_unknown_methods: spec.allow_unknown_methods,
                    pin_action: Some(spec.pin_action.as_str().to_owned()),
                    upstream_auth,
                    identity_header: spec.identity_header.clone(),
                    stdio,
                    per_user_discovery: None,
                    members: spec.members.clone(),
                };
                moved(service.add_server(by, new).await?);
            } else {
                let program = change.touches("stdio") || change.touches("stdio.env");
                let update = ServerUpdate {
                    // A program replaced by a URL: the URL is set with the rest below.
                    url: (change.touches("url") && stdio.is_none() && !spec.url.is_empty())
                        .then(|| spec.url.clone()),
                    credential: None,
                    upstream_auth: (change.touches("upstream_auth")
                        || change.touches("upstream_auth.secret"))
                    .then_some(upstream_auth),
                    identity_header: change
                        .touches("identity_header")
                        .then(|| spec.identity_header.clone()),
                    stdio: if program { stdio } else { None },
                    per_user_discovery: None,
                    members: (change.touches("members") && !spec.members.is_empty())
                        .then(|| spec.members.clone()),
                };
                let url_set = update.url.is_some();
                let headers_only =
                    update.upstream_auth.is_some() || update.identity_header.is_some();
                if update.url.is_some()
                    || update.stdio.is_some()
                    || update.members.is_some()
                    || headers_only
                {
                    moved(service.update_server(by, name, update).await?);
                }
                let url_left = change.touches("url") && !spec.url.is_empty() && !url_set;
                let rest = [
                    "credential",
                    "allow_anonymous",
                    "allow_unknown_methods",
                    "pin_action",
                ];
                if url_left || rest.iter().any(|field| change.touches(field)) {
                    let settings = ServerSettings {
                        url: spec.url.clone(),
                        credential: change.touches("credential").then_some(credential),
                        allow_anonymous: spec.allow_anonymous,
                        allow_unknown_methods: spec.allow_unknown_methods,
                        pin_action: spec.pin_action,
                    };
                    moved(service.set_server(by, name, settings).await?);
                }
            }
        }
        (Kind::Client, op) => {
            let spec = desired.clients.as_ref().and_then(|c| c.get(name));
            if op == Op::Create {
                let spec = spec.ok_or_else(missing)?;
                moved(service.create_client(by, name, &spec.description).await?);
            } else if change.touches("description") {
                let description = spec.map_or("", |s| s.description.as_str());
                moved(
                    service
                        .set_client_description(by, name, description)
                        .await?,
                );
            }
            if change.touches("oauth") {
                let registration = spec
                    .and_then(|s| s.oauth.as_ref())
                    .map(|o| OAuthRegistration {
                        grant_types: o.grant_types.clone(),
                        auth_method: Some(o.auth_method.clone()),
                        redirect_uris: o.redirect_uris.clone(),
                        native: o.native,
                        jwks: o.jwks.clone(),
                        require_dpop: o.require_dpop,
                    });
                moved(
                    service
                        .set_client_registration(by, name, registration)
                        .await?,
                );
            }
            if change.touches("oauth.secret")
                && let Some(value) = values.get(&SecretSlot::ClientSecret(name.to_owned()))
            {
                moved(service.set_client_secret(by, name, value).await?);
            }
            if change.touches("disabled") {
                let enabled = spec.is_some_and(|s| !s.disabled);
                moved(service.set_client_enabled(by, name, enabled).await?);
            }
        }
        (Kind::User, op) => {
            let spec = desired.users.as_ref().and_then(|u| u.get(name));
            if op == Op::Create {
                let spec = spec.ok_or_else(missing)?;
                let (_, g) = service
                    .create_user(by, name, &spec.display_name, None, spec.groups.clone())
                    .await?;
                moved(g);
            } else if change.touches("display_name") || change.touches("groups") {
                let spec = spec.ok_or_else(missing)?;
                moved(
                    service
                        .set_user_profile(by, name, &spec.display_name, spec.groups.clone())
                        .await?,
                );
            }
            if change.touches("disabled") {
                let enabled = spec.is_some_and(|s| !s.disabled);
                moved(service.set_user_enabled(by, name, enabled).await?);
            }
        }
        (Kind::Policy | Kind::Guardrail, Op::Delete) => {
            moved(service.remove_policy(by, name).await?)
        }
        (Kind::Policy | Kind::Guardrail, op) => {
            let new = declared_policy(desired, name).ok_or_else(missing)?;
            // An update replaces the rule in one stored change: removing it first would leave
            // a moment (or, if the new rule were refused, a state) without it, and a deny
            // rule that is briefly absent lets calls through.
            if op == Op::Update {
                moved(service.replace_policy(by, new, config).await?);
            } else {
                moved(service.add_policy(by, new, config).await?);
            }
        }
        (Kind::Connection, Op::Delete) => {
            moved(service.revoke_connection(by, name, key(change, 1)).await?);
        }
        (Kind::Connection, _) => {
            let server = key(change, 1);
            let grant = desired
                .clients
                .as_ref()
                .and_then(|c| c.get(name))
                .and_then(|c| c.connections.get(server))
                .ok_or_else(missing)?;
            let new = NewConnection {
                client: name.to_owned(),
                server: server.to_owned(),
                tools: grant.tools.join(","),
                resources: grant.resources,
                prompts: grant.prompts,
            };
            moved(service.grant_connection(by, new).await?);
        }
        (Kind::GroupConnection, Op::Delete) => {
            moved(service.revoke_group(by, name, key(change, 1)).await?);
        }
        (Kind::GroupConnection, _) => {
            let server = key(change, 1);
            let grant = desired
                .groups
                .as_ref()
                .and_then(|g| g.get(name))
                .and_then(|g| g.connections.get(server))
                .ok_or_else(missing)?;
            let tools = grant.tools.join(",");
            moved(
                service
                    .grant_group(by, name, server, &tools, grant.resources, grant.prompts)
                    .await?,
            );
        }
        (Kind::AdminToken, _) => {
            let role = key(change, 1);
            let now = service.now();
            for token in service.store().list_admin_tokens().await? {
                let live = token.revoked_at.is_none() && token.expires_at.is_none_or(|at| at > now);
                if live && token.name == name && token.role.as_str() == role {
                    service.revoke_admin_token(by, &token.id).await?;
                }
            }
        }
    }
    Ok(generation)
}

/// A declared program as `gatehouse servers add --command` gives it, its environment's
/// values read, under the configuration's allow-list.
fn declared_stdio(
    spec: &ServerSpec,
    name: &str,
    values: &BTreeMap<SecretSlot, SecretValue>,
    config: &Config,
) -> Result<Option<NewStdio>, AdminError> {
    let Some(stdio) = &spec.stdio else {
        return Ok(None);
    };
    let env: BTreeMap<String, String> = match values.get(&SecretSlot::StdioEnv(name.to_owned())) {
        Some(env) => serde_json::from_str(env).map_err(|e| AdminError::Invalid(e.to_string()))?,
        None => BTreeMap::new(),
    };
    Ok(Some(NewStdio {
        command: stdio.command.clone(),
        args: stdio.args.clone(),
        env: env.into_iter().collect(),
        cwd: stdio.cwd.clone(),
        sharing: Some(stdio.sharing.as_str().to_owned()),
        max_children: stdio.max_children,
        idle_timeout: stdio.idle_timeout_secs.map(Duration::from_secs),
        limits: stdio.limits,
        allowed_commands: config.gateway.stdio_commands.clone(),
    }))
}

fn declared_upstream_auth(
    spec: &ServerSpec,
    name: &str,
    values: &BTreeMap<SecretSlot, SecretValue>,
) -> Result<Option<NewUpstreamAuth>, AdminError> {
    let Some(auth) = &spec.upstream_auth else {
        return Ok(None);
    };
    Ok(Some(NewUpstreamAuth {
        spec: token_spec(auth).map_err(AdminError::Invalid)?,
        secret: values
            .get(&SecretSlot::UpstreamSecret(name.to_owned()))
            .map(|v| v.as_str().to_owned()),
    }))
}

fn declared_policy(desired: &State, id: &str) -> Option<NewPolicy> {
    if let Some(p) = desired.policies.as_ref().and_then(|p| p.get(id)) {
        return Some(NewPolicy {
            id: id.to_owned(),
            kind: p.kind.clone(),
            client: p.client.clone(),
            server: p.server.clone(),
            tools: p.tools.clone(),
            spec: p.spec.to_string(),
        });
    }
    let g = desired.guardrails.as_ref()?.get(id)?;
    Some(NewPolicy {
        id: id.to_owned(),
        kind: crate::guardrails::GUARDRAIL_KIND.to_owned(),
        client: g.client.clone(),
        server: g.server.clone(),
        tools: g.tools.clone(),
        spec: g.spec.to_string(),
    })
}
