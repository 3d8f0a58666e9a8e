//! From what is to what a document declares: the list of changes, each with its fields'
//! before and after, in the order they can be made. Pure: the store was read before, and
//! secret values were compared before ([`SecretFacts`]), so a plan never holds a value.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::document::{GrantSpec, GuardrailSpec, PolicySpec, ServerSpec, State};
use super::fields::{
    ServerSecrets, client_fields, diff, field, grant_fields, server_fields, user_fields,
};
use gatehouse_model::records::AdminRole;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Delete,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Server,
    Client,
    User,
    Policy,
    Guardrail,
    Connection,
    GroupConnection,
    AdminToken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::User => "user",
            Kind::Policy => "policy",
            Kind::Guardrail => "guardrail",
            Kind::Connection => "connection",
            Kind::GroupConnection => "group connection",
            Kind::AdminToken => "admin token",
        }
    }
}

/// One field of a change; `None` is "not set".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: std::borrow::Cow<'static, str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub op: Op,
    pub kind: Kind,
    /// The entity's stable name (`client/server` for a connection, `group/server` for a
    /// group's, `name (role)` for an admin token).
    pub name: String,
    pub fields: Vec<FieldChange>,
    /// The name's parts (`[client, server]`, `[group, server]`, `[name, role]`, `[name]`).
    #[serde(skip)]
    #[schema(ignore)]
    pub key: Vec<String>,
}

impl Change {
    pub fn touches(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f.field == field)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// What the document names but apply cannot make (an admin token, whose secret would
    /// have to be shown): said, never done.
    pub notices: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A secret field the store holds and the document declares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretSlot {
    ServerCredential(String),
    /// A stdio server's whole environment (its variables' values).
    StdioEnv(String),
    /// The client secret or private key of a server's upstream token client.
    UpstreamSecret(String),
    ClientSecret(String),
}

/// Which declared secrets equal what the store holds (compared before planning, in
/// constant time); a slot not listed differs or is not stored.
#[derive(Debug, Clone, Default)]
pub struct SecretFacts {
    pub matching: BTreeSet<SecretSlot>,
}

/// The changes that make `current` (everything stored, every section present) what `desired`
/// declares. Sections `desired` leaves out are not touched; with `prune`, what a present
/// section no longer names is deleted (clients and users are disabled: their keys, secrets
/// and sign-ins are runtime state a delete would destroy).
///
/// Order: deletions of grants and rules first (nothing then refers to what is removed or
/// changed), then servers, clients, users, rules, grants, and last the servers removed and
/// the admin tokens revoked.
pub fn plan(current: &State, desired: &State, facts: &SecretFacts, prune: bool) -> Plan {
    let mut early = Vec::new();
    let mut main = Vec::new();
    let mut late = Vec::new();
    let mut notices = Vec::new();

    if let Some(desired_servers) = &desired.servers {
        let current_servers = current.servers.clone().unwrap_or_default();
        // Virtual servers after the servers they name, and removed before them.
        let by_kind = |plain: bool| {
            move |(_, spec): &(&String, &ServerSpec)| spec.members.is_empty() == plain
        };
        for (name, want) in desired_servers
            .iter()
            .filter(by_kind(true))
            .chain(desired_servers.iter().filter(by_kind(false)))
        {
            let have = current_servers.get(name);
            let matches = ServerSecrets::of(facts, name);
            let fields = server_fields(have, want, matches, false);
            push(&mut main, have.is_some(), Kind::Server, &[name], fields);
        }
        if prune {
            for (name, have) in current_servers
                .iter()
                .filter(by_kind(false))
                .chain(current_servers.iter().filter(by_kind(true)))
            {
                if !desired_servers.contains_key(name) {
                    late.push(deleted(
                        Kind::Server,
                        &[name],
                        server_fields(None, have, ServerSecrets::ALL, true),
                    ));
                }
            }
        }
    }

    if let Some(desired_clients) = &desired.clients {
        let current_clients = current.clients.clone().unwrap_or_default();
        for (name, want) in desired_clients {
            let have = current_clients.get(name);
            let secret_matches = facts
                .matching
                .contains(&SecretSlot::ClientSecret(name.clone()));
            let fields = client_fields(have, want, secret_matches);
            push(&mut main, have.is_some(), Kind::Client, &[name], fields);
            let no_connections = BTreeMap::new();
            let had = have.map_or(&no_connections, |c| &c.connections);
            grants(
                &mut early,
                &mut main,
                Kind::Connection,
                name,
                had,
                &want.connections,
                prune,
            );
        }
        if prune {
            for (name, have) in &current_clients {
                if desired_clients.contains_key(name) {
                    continue;
                }
                grants(
                    &mut early,
                    &mut main,
                    Kind::Connection,
                    name,
                    &have.connections,
                    &BTreeMap::new(),
                    true,
                );
                if !have.disabled {
                    main.push(disabled(Kind::Client, name));
                }
            }
        }
    }

    if let Some(desired_users) = &desired.users {
        let current_users = current.users.clone().unwrap_or_default();
        for (name, want) in desired_users {
            let have = current_users.get(name);
            push(
                &mut main,
                have.is_some(),
                Kind::User,
                &[name],
                user_fields(have, want),
            );
        }
        if prune {
            for (name, have) in &current_users {
                if !desired_users.contains_key(name) && !have.disabled {
                    main.push(disabled(Kind::User, name));
                }
            }
        }
    }

    let (rules_early, rules_main) = rules(current, desired, prune);
    early.extend(rules_early);
    let mut grant_changes = Vec::new();
    if let Some(desired_groups) = &desired.groups {
        let current_groups = current.groups.clone().unwrap_or_default();
        let names: BTreeSet<&String> = desired_groups
            .keys()
            .chain(current_groups.keys().filter(|_| prune))
            .collect();
        for group in names {
            let none = BTreeMap::new();
            let had = current_groups.get(group).map_or(&none, |g| &g.connections);
            let wants = desired_groups.get(group).map_or(&none, |g| &g.connections);
            grants(
                &mut early,
                &mut grant_changes,
                Kind::GroupConnection,
                group,
                had,
                wants,
                prune,
            );
        }
    }

    if let Some(desired_tokens) = &desired.admin_tokens {
        let current_tokens = current.admin_tokens.clone().unwrap_or_default();
        for want in desired_tokens {
            if !current_tokens.contains(want) {
                notices.push(format!(
                    "admin token {:?} ({}) is named but does not exist: create it with `gatehouse admin-tokens create --name {} --role {}` (its secret is shown once, so apply never makes one)",
                    want.name, want.role, want.name, want.role
                ));
            }
        }
        if prune {
            let mut seen = BTreeSet::new();
            for have in &current_tokens {
                if !desired_tokens.contains(have) && seen.insert(have.clone()) {
                    let mut change = deleted(
                        Kind::AdminToken,
                        &[&have.name, have.role.as_str()],
                        vec![field("role", None, Some(json!(have.role)))],
                    );
                    change.name = token_name(&have.name, have.role);
                    late.push(change);
                }
            }
        }
    }

    // A connection naming a client moved in a connection created in this plan needs the
    // client first: `main` holds servers, clients and users, then rules, then grants.
    let mut connections: Vec<Change> = Vec::new();
    main.retain(|c| {
        if c.kind == Kind::Connection {
            connections.push(c.clone());
            false
        } else {
            true
        }
    });
    let mut changes = early;
    changes.extend(main);
    changes.extend(rules_main);
    changes.extend(connections);
    changes.extend(grant_changes);
    changes.extend(late);
    Plan { changes, notices }
}

pub fn token_name(name: &str, role: AdminRole) -> String {
    format!("{name} ({role})")
}

fn push(into: &mut Vec<Change>, exists: bool, kind: Kind, key: &[&str], fields: Vec<FieldChange>) {
    if exists && fields.is_empty() {
        return;
    }
    into.push(Change {
        op: if exists { Op::Update } else { Op::Create },
        kind,
        name: key.join("/"),
        fields,
        key: key.iter().map(|k| (*k).to_owned()).collect(),
    });
}

fn deleted(kind: Kind, key: &[&str], created_fields: Vec<FieldChange>) -> Change {
    Change {
        op: Op::Delete,
        kind,
        name: key.join("/"),
        fields: created_fields
            .into_iter()
            .map(|f| FieldChange {
                field: f.field,
                before: f.after,
                after: None,
            })
            .collect(),
        key: key.iter().map(|k| (*k).to_owned()).collect(),
    }
}

fn disabled(kind: Kind, name: &str) -> Change {
    Change {
        op: Op::Update,
        kind,
        name: name.to_owned(),
        fields: vec![field("disabled", Some(json!(false)), Some(json!(true)))],
        key: vec![name.to_owned()],
    }
}

/// The grants of one client or group: new or changed ones into `main`, removed ones (with
/// `prune`) into `early`.
fn grants(
    early: &mut Vec<Change>,
    main: &mut Vec<Change>,
    kind: Kind,
    owner: &str,
    had: &BTreeMap<String, GrantSpec>,
    wants: &BTreeMap<String, GrantSpec>,
    prune: bool,
) {
    for (server, want) in wants {
        let have = had.get(server);
        push(
            main,
            have.is_some(),
            kind,
            &[owner, server],
            grant_fields(have, want),
        );
    }
    if prune {
        for (server, have) in had {
            if !wants.contains_key(server) {
                early.push(deleted(kind, &[owner, server], grant_fields(None, have)));
            }
        }
    }
}

/// A policy or guardrail as compared: one id space for both sections.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    kind: String,
    client: Option<String>,
    server: Option<String>,
    tools: Option<String>,
    spec: Value,
}

impl Rule {
    fn change_kind(&self) -> Kind {
        if self.kind == crate::guardrails::GUARDRAIL_KIND {
            Kind::Guardrail
        } else {
            Kind::Policy
        }
    }
}

fn rule_map(
    policies: Option<&BTreeMap<String, PolicySpec>>,
    guardrails: Option<&BTreeMap<String, GuardrailSpec>>,
) -> BTreeMap<String, Rule> {
    let mut rules = BTreeMap::new();
    for (id, p) in policies.into_iter().flatten() {
        rules.insert(
            id.clone(),
            Rule {
                kind: p.kind.clone(),
                client: p.client.clone(),
                server: p.server.clone(),
                tools: p.tools.clone(),
                spec: p.spec.clone(),
            },
        );
    }
    for (id, g) in guardrails.into_iter().flatten() {
        rules.insert(
            id.clone(),
            Rule {
                kind: crate::guardrails::GUARDRAIL_KIND.to_owned(),
                client: g.client.clone(),
                server: g.server.clone(),
                tools: g.tools.clone(),
                spec: g.spec.clone(),
            },
        );
    }
    rules
}

fn rule_fields(have: Option<&Rule>, want: &Rule) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let text = |s: &Option<String>| s.as_ref().map(|s| json!(s));
    diff(
        &mut fields,
        "kind",
        have.map(|h| json!(h.kind)),
        Some(json!(want.kind)),
    );
    diff(
        &mut fields,
        "client",
        have.and_then(|h| text(&h.client)),
        text(&want.client),
    );
    diff(
        &mut fields,
        "server",
        have.and_then(|h| text(&h.server)),
        text(&want.server),
    );
    diff(
        &mut fields,
        "tools",
        have.and_then(|h| text(&h.tools)),
        text(&want.tools),
    );
    diff(
        &mut fields,
        "spec",
        have.map(|h| h.spec.clone()),
        Some(want.spec.clone()),
    );
    fields
}

/// Policies and guardrails: (deletions, creations and updates). An update is made as a
/// removal and an addition of the same id (a quota's counters start again).
fn rules(current: &State, desired: &State, prune: bool) -> (Vec<Change>, Vec<Change>) {
    let (mut early, mut main) = (Vec::new(), Vec::new());
    if desired.policies.is_none() && desired.guardrails.is_none() {
        return (early, main);
    }
    let have = rule_map(current.policies.as_ref(), current.guardrails.as_ref());
    let want = rule_map(desired.policies.as_ref(), desired.guardrails.as_ref());
    for (id, rule) in &want {
        let had = have.get(id);
        push(
            &mut main,
            had.is_some(),
            rule.change_kind(),
            &[id],
            rule_fields(had, rule),
        );
    }
    if prune {
        for (id, rule) in &have {
            let managed = match rule.change_kind() {
                Kind::Guardrail => desired.guardrails.is_some(),
                _ => desired.policies.is_some(),
            };
            if managed && !want.contains_key(id) {
                early.push(deleted(rule.change_kind(), &[id], rule_fields(None, rule)));
            }
        }
    }
    (early, main)
}

/// The plan as people read it in a terminal or a pull request.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for change in &plan.changes {
        let sign = match change.op {
            Op::Create => '+',
            Op::Update => '~',
            Op::Delete => '-',
        };
        out.push_str(&format!(
            "{sign} {} {}\n",
            change.kind.as_str(),
            change.name
        ));
        for f in &change.fields {
            let show = |v: &Option<Value>| v.as_ref().map_or("(none)".to_owned(), Value::to_string);
            let line = match change.op {
                Op::Create => show(&f.after),
                Op::Delete => show(&f.before),
                Op::Update => format!("{} → {}", show(&f.before), show(&f.after)),
            };
            out.push_str(&format!("    {}: {line}\n", f.field));
        }
    }
    for notice in &plan.notices {
        out.push_str(&format!("! {notice}\n"));
    }
    out
}
