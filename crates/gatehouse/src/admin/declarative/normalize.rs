//! Every check a document must pass before the first write, and its values in the form the
//! store keeps (so an unchanged file plans nothing): names, URLs, headers, tool patterns,
//! policy specifications, OAuth registrations, and that every name a grant or rule refers to
//! exists once the plan is applied. All problems are reported at once, each naming the
//! entity and the field.

use std::collections::BTreeMap;

use super::{
    document::{GrantSpec, ServerSpec, State, StdioSpec, UpstreamAuthSpec},
    export,
};
use crate::admin::oauth::{OAuthRegistration, registration_metadata};
use gatehouse_model::{
    names::{GroupName, Name, NameKind, Username},
    records::{PolicyRecord, Sharing, valid_env_name},
    tool_pattern::parse_pattern_list,
    upstream_auth::{ClientRegistration, UpstreamAuthSpec as TokenSpec, UpstreamClientAuth},
};

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The entity and field (`server github, field url`).
    pub at: String,
    pub why: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.why)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, at: impl Into<String>, why: impl std::fmt::Display) {
        self.0.push(Problem {
            at: at.into(),
            why: why.to_string(),
        });
    }
}

/// `desired`, checked and in stored form. `current` is what the store holds (every section),
/// for the names a grant or rule may refer to that the document leaves in place.
pub fn normalize(
    mut desired: State,
    current: &State,
    prune: bool,
    geoip_configured: bool,
) -> Result<State, Vec<Problem>> {
    let mut problems = Problems(Vec::new());
    let server_exists = |name: &str| {
        let declared = desired.servers.as_ref().map(|s| s.contains_key(name));
        let kept = current
            .servers
            .as_ref()
            .is_some_and(|s| s.contains_key(name))
            && !(prune && desired.servers.is_some());
        declared == Some(true) || kept
    };
    let client_exists = |name: &str| {
        desired
            .clients
            .as_ref()
            .is_some_and(|c| c.contains_key(name))
            || current
                .clients
                .as_ref()
                .is_some_and(|c| c.contains_key(name))
    };
    let servers_known: BTreeMap<String, bool> = names_referred(&desired)
        .into_iter()
        .map(|name| {
            let exists = server_exists(&name);
            (name, exists)
        })
        .collect();
    let clients_known: BTreeMap<String, bool> = desired
        .policies
        .iter()
        .flatten()
        .filter_map(|(_, p)| p.client.clone())
        .chain(
            desired
                .guardrails
                .iter()
                .flatten()
                .filter_map(|(_, g)| g.client.clone()),
        )
        .map(|name| {
            let exists = client_exists(&name);
            (name, exists)
        })
        .collect();
    let server_missing = |name: &str| !servers_known.get(name).copied().unwrap_or(false);

    // Which declared servers are virtual: a member must be declared and must not be one.
    let virtual_servers: BTreeMap<String, bool> = desired
        .servers
        .iter()
        .flatten()
        .map(|(name, server)| (name.clone(), !server.members.is_empty()))
        .collect();
    for (name, server) in desired.servers.iter_mut().flatten() {
        let at = format!("server {name}");
        if let Err(e) = Name::parse(NameKind::Server, name) {
            problems.add(format!("{at}, name"), e);
        }
        if !server.members.is_empty() {
            virtual_checked(&mut problems, &at, name, server, &virtual_servers);
            continue;
        }
        match &mut server.stdio {
            Some(stdio) => {
                if !server.url.is_empty() {
                    problems.add(
                        format!("{at}, field url"),
                        "a server has a url or runs a local program (stdio), not both",
                    );
                }
                if server.credential.is_some() {
                    problems.add(
                        format!("{at}, field credential"),
                        "a local program gets its secrets through stdio.env, not a header",
                    );
                }
                stdio_checked(&mut problems, &at, stdio);
            }
            None => {
                if let Err(e) = crate::admin::check_upstream_url(&server.url) {
                    problems.add(format!("{at}, field url"), e);
                }
            }
        }
        if let Some(auth) = &server.upstream_auth
            && let Err(e) = token_spec(auth)
        {
            problems.add(format!("{at}, field upstream_auth"), e);
        }
        if let Some(header) = &mut server.identity_header {
            match crate::admin::upstream_auth::identity_header(header) {
                Ok(stored) => *header = stored,
                Err(e) => problems.add(format!("{at}, field identity_header"), e),
            }
        }
        if let Some(credential) = &mut server.credential {
            credential.header = credential.header.trim().to_ascii_lowercase();
            if http::HeaderName::try_from(credential.header.as_str()).is_err() {
                problems.add(
                    format!("{at}, field credential.header"),
                    format!("{:?} is not a header name", credential.header),
                );
            }
            // Refused here, in the plan, as the admin service would refuse it mid-apply.
            if server.upstream_auth.is_some() {
                problems.add(
                    format!("{at}, field credential"),
                    "a server sends a static credential or upstream tokens (upstream_auth), \
                     not both",
                );
            }
        }
    }

    for (name, client) in desired.clients.iter_mut().flatten() {
        let at = format!("client {name}");
        if let Err(e) = Name::parse(NameKind::Client, name) {
            problems.add(format!("{at}, name"), e);
        }
        if let Some(oauth) = &mut client.oauth {
            let registration = OAuthRegistration {
                grant_types: oauth.grant_types.clone(),
                auth_method: Some(oauth.auth_method.clone()),
                redirect_uris: oauth.redirect_uris.clone(),
                native: oauth.native,
                jwks: oauth.jwks.clone(),
                require_dpop: oauth.require_dpop,
            };
            match registration_metadata(registration) {
                Ok(metadata) => {
                    let secret = oauth.secret.take();
                    *oauth = export::oauth_spec(&metadata);
                    oauth.secret = secret;
                    let confidential = matches!(
                        oauth.auth_method.as_str(),
                        "client_secret_basic" | "client_secret_post"
                    );
                    if oauth.secret.is_some() && !confidential {
                        problems.add(
                            format!("{at}, field oauth.secret"),
                            format!(
                                "a client authenticating with {} has no secret",
                                oauth.auth_method
                            ),
                        );
                    }
                }
                Err(e) => problems.add(format!("{at}, field oauth"), e),
            }
        }
        for (server, grant) in &mut client.connections {
            let at = format!("connection {name}/{server}");
            grant_checked(&mut problems, &at, grant);
            if server_missing(server) {
                problems.add(
                    at,
                    format!("server {server:?} does not exist (declare it under servers)"),
                );
            }
        }
    }

    for (name, user) in desired.users.iter_mut().flatten() {
        let at = format!("user {name}");
        if let Err(e) = Username::parse(name) {
            problems.add(format!("{at}, name"), e);
        }
        if let Err(e) = GroupName::parse_all(&user.groups) {
            problems.add(format!("{at}, field groups"), e);
        }
        user.groups = export::sorted(std::mem::take(&mut user.groups));
    }

    for (group, spec) in desired.groups.iter_mut().flatten() {
        if let Err(e) = GroupName::parse(group) {
            problems.add(format!("group {group}, name"), e);
        }
        for (server, grant) in &mut spec.connections {
            let at = format!("group connection {group}/{server}");
            grant_checked(&mut problems, &at, grant);
            if server_missing(server) {
                problems.add(
                    at,
                    format!("server {server:?} does not exist (declare it under servers)"),
                );
            }
        }
    }

    let mut rules = Vec::new();
    for (id, policy) in desired.policies.iter_mut().flatten() {
        policy.kind = policy.kind.replace('-', "_");
        if policy.kind == crate::guardrails::GUARDRAIL_KIND {
            problems.add(
                format!("policy {id}, field kind"),
                "declare guardrails under guardrails",
            );
        }
        rules.push(PolicyRecord {
            id: id.clone(),
            kind: policy.kind.clone(),
            client: policy.client.clone(),
            server: policy.server.clone(),
            tools: policy.tools.clone(),
            spec: policy.spec.clone(),
            created_at: 0,
        });
    }
    for (id, guardrail) in desired.guardrails.iter().flatten() {
        if desired
            .policies
            .as_ref()
            .is_some_and(|p| p.contains_key(id))
        {
            problems.add(
                format!("guardrail {id}, name"),
                "a policy has this id too (ids are shared)",
            );
        }
        rules.push(PolicyRecord {
            id: id.clone(),
            kind: crate::guardrails::GUARDRAIL_KIND.to_owned(),
            client: guardrail.client.clone(),
            server: guardrail.server.clone(),
            tools: guardrail.tools.clone(),
            spec: guardrail.spec.clone(),
            created_at: 0,
        });
    }
    for rule in &rules {
        let at = format!(
            "{} {}",
            if rule.kind == crate::guardrails::GUARDRAIL_KIND {
                "guardrail"
            } else {
                "policy"
            },
            rule.id
        );
        if let Err(e) = Name::parse(NameKind::Policy, &rule.id) {
            problems.add(format!("{at}, name"), e);
        }
        let compiled = if rule.kind == crate::guardrails::GUARDRAIL_KIND {
            crate::guardrails::compile_record(rule).map(|_| ())
        } else {
            crate::policy::validate(rule)
                .and_then(|()| crate::policy::check_runs_under(rule, geoip_configured))
        };
        if let Err(e) = compiled {
            problems.add(format!("{at}, field spec"), e);
        }
        if let Some(client) = &rule.client
            && !clients_known.get(client).copied().unwrap_or(false)
        {
            problems.add(
                format!("{at}, field client"),
                format!("client {client:?} does not exist"),
            );
        }
        if let Some(server) = &rule.server
            && server_missing(server)
        {
            problems.add(
                format!("{at}, field server"),
                format!("server {server:?} does not exist"),
            );
        }
    }

    if let Some(tokens) = &mut desired.admin_tokens {
        tokens.sort();
        tokens.dedup();
    }

    if problems.0.is_empty() {
        Ok(desired)
    } else {
        Err(problems.0)
    }
}

/// A program's settings checked as `gatehouse servers add --command` checks them (the
/// command's allow-list is the configuration's, checked by apply), in stored form.
fn stdio_checked(problems: &mut Problems, at: &str, stdio: &mut StdioSpec) {
    if stdio.command.trim().is_empty() {
        problems.add(
            format!("{at}, field stdio.command"),
            "a stdio server needs a command",
        );
    }
    for variable in stdio.env.keys() {
        if !valid_env_name(variable) {
            problems.add(
                format!("{at}, field stdio.env.{variable}"),
                "not a valid environment variable name (letters, digits, _; not starting with a digit)",
            );
        }
    }
    let per_principal_only = stdio.max_children.is_some() || stdio.idle_timeout_secs.is_some();
    if stdio.sharing == Sharing::Shared && per_principal_only {
        problems.add(
            format!("{at}, field stdio.sharing"),
            "max_children and idle_timeout_secs apply to sharing per_principal only",
        );
    }
    if stdio.max_children == Some(0) {
        problems.add(
            format!("{at}, field stdio.max_children"),
            "must be at least 1",
        );
    }
    stdio.cwd = stdio.cwd.take().filter(|c| !c.is_empty());
    stdio.idle_timeout_secs = stdio.idle_timeout_secs.map(|secs| secs.max(1));
}

/// The declared upstream token settings as the store keeps them, checked as the CLI's are;
/// the secret itself is checked when it is read.
pub fn token_spec(auth: &UpstreamAuthSpec) -> Result<TokenSpec, String> {
    let auth_method: UpstreamClientAuth = auth.auth_method.parse().map_err(|e| format!("{e}"))?;
    let private_key = auth_method == UpstreamClientAuth::PrivateKeyJwt;
    let per_user = auth.kind == "per_user";
    if !per_user
        && (auth.authorization_endpoint.is_some()
            || auth.revocation_endpoint.is_some()
            || auth.issuer.is_some()
            || auth.registration.is_some()
            || auth.redirect_uri.is_some())
    {
        return Err(
            "authorization_endpoint, revocation_endpoint, issuer, registration and \
             redirect_uri are for per_user only"
                .into(),
        );
    }
    match (&auth.secret, &auth.private_key) {
        _ if auth_method == UpstreamClientAuth::None && !per_user => {
            return Err("auth method none is for per_user only".into());
        }
        (None, None) if auth_method == UpstreamClientAuth::None => {}
        (Some(_), _) | (_, Some(_)) if auth_method == UpstreamClientAuth::None => {
            return Err("auth method none takes no secret".into());
        }
        (Some(_), None) if !private_key => {}
        (None, Some(_)) if private_key => {}
        _ if private_key => return Err("private_key_jwt takes private_key (and no secret)".into()),
        _ => {
            return Err(format!(
                "{} takes secret (and no private_key)",
                auth_method.as_str()
            ));
        }
    }
    let check = |what, url: &str| {
        crate::admin::upstream_auth::check_endpoint(what, url).map_err(|e| e.to_string())
    };
    check("token endpoint", &auth.token_endpoint)?;
    if let Some(resource) = &auth.resource {
        check("resource", resource)?;
    }
    if auth.client_id.trim().is_empty() {
        return Err("client id must not be empty".into());
    }
    if auth.scope.as_ref().is_some_and(|s| s.trim().is_empty()) {
        return Err("scope must not be empty".into());
    }
    let (token_endpoint, client_id) = (auth.token_endpoint.clone(), auth.client_id.clone());
    let (scope, resource) = (auth.scope.clone(), auth.resource.clone());
    match auth.kind.as_str() {
        "client_credentials" => Ok(TokenSpec::ClientCredentials {
            token_endpoint,
            client_id,
            auth_method,
            scope,
            resource,
        }),
        "token_exchange" => Ok(TokenSpec::TokenExchange {
            token_endpoint,
            client_id,
            auth_method,
            scope,
            resource,
        }),
        "per_user" => {
            let authorization_endpoint = auth
                .authorization_endpoint
                .clone()
                .ok_or("per_user needs authorization_endpoint")?;
            check("authorization endpoint", &authorization_endpoint)?;
            if let Some(revocation) = &auth.revocation_endpoint {
                check("revocation endpoint", revocation)?;
            }
            let registration = match auth.registration.as_deref() {
                None | Some("pre_registered") => ClientRegistration::PreRegistered,
                Some("metadata_document") => ClientRegistration::MetadataDocument,
                Some("dynamic") => ClientRegistration::Dynamic,
                Some(other) => {
                    return Err(format!(
                        "registration {other:?} is not one of pre_registered, \
                         metadata_document, dynamic"
                    ));
                }
            };
            Ok(TokenSpec::PerUser {
                authorization_endpoint,
                token_endpoint,
                revocation_endpoint: auth.revocation_endpoint.clone(),
                client_id,
                auth_method,
                scope,
                resource,
                issuer: auth.issuer.clone(),
                registration,
                redirect_uri: auth.redirect_uri.clone(),
            })
        }
        other => Err(format!(
            "kind {other:?} is not one of client_credentials, token_exchange, per_user"
        )),
    }
}

/// Every server a grant or rule of `state` names.
fn names_referred(state: &State) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for client in state.clients.iter().flatten().map(|(_, c)| c) {
        names.extend(client.connections.keys().cloned());
    }
    for group in state.groups.iter().flatten().map(|(_, g)| g) {
        names.extend(group.connections.keys().cloned());
    }
    names.extend(
        state
            .policies
            .iter()
            .flatten()
            .filter_map(|(_, p)| p.server.clone()),
    );
    names.extend(
        state
            .guardrails
            .iter()
            .flatten()
            .filter_map(|(_, g)| g.server.clone()),
    );
    names
}

/// Tool patterns checked and written as the store keeps them.
fn grant_checked(problems: &mut Problems, at: &str, grant: &mut GrantSpec) {
    match parse_pattern_list(&grant.tools.join(",")) {
        Ok(patterns) => grant.tools = patterns.into_iter().map(String::from).collect(),
        Err(e) => problems.add(format!("{at}, field tools"), e),
    }
}

/// A virtual server's declaration: members only, each a declared server that is not virtual.
fn virtual_checked(
    problems: &mut Problems,
    at: &str,
    name: &str,
    server: &ServerSpec,
    virtual_servers: &BTreeMap<String, bool>,
) {
    if !server.url.is_empty()
        || server.stdio.is_some()
        || server.credential.is_some()
        || server.upstream_auth.is_some()
        || server.identity_header.is_some()
    {
        problems.add(
            format!("{at}, field members"),
            "a virtual server has members, not a url, a program or upstream credentials",
        );
    }
    if server.members.len() > crate::admin::virtual_servers::MAX_MEMBERS {
        problems.add(
            format!("{at}, field members"),
            format!(
                "at most {} members",
                crate::admin::virtual_servers::MAX_MEMBERS
            ),
        );
    }
    for (i, member) in server.members.iter().enumerate() {
        let problem = match virtual_servers.get(member) {
            _ if member == name => Some("a virtual server cannot be its own member"),
            _ if server.members[..i].contains(member) => Some("named twice"),
            None => Some("not a server in this document"),
            Some(true) => Some("a virtual server itself: virtual servers do not nest"),
            Some(false) => None,
        };
        if let Some(problem) = problem {
            problems.add(format!("{at}, field members.{member}"), problem);
        }
    }
}
