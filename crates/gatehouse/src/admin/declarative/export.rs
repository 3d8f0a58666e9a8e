//! What the store holds, as a state document: every section present, secrets as the
//! conventional reference an operator sets ([`SecretRef::conventional`]), never a value.
//!
//! Left out, because they are runtime state rather than configuration: API keys and client
//! secrets (credentials minted and shown once; a key's id cannot be reproduced elsewhere),
//! OAuth registrations clients made themselves, tool pins (trust on first sight), signing
//! keys, sessions and tokens, the audit trail. Admin tokens appear by name and role only.
//!
//! Every server is described, whatever it is: a URL or a local program (stdio), with an
//! injected header, upstream tokens or the identity header; the environment of a program and
//! the secret of its token client as references too.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    document::{
        AdminTokenSpec, ClientSpec, CredentialSpec, GrantSpec, GroupSpec, GuardrailSpec, OAuthSpec,
        PolicySpec, ServerSpec, State, StdioSpec, UpstreamAuthSpec, UserSpec,
    },
    secret_ref::SecretRef,
};
use crate::{guardrails::GUARDRAIL_KIND, store::Store, store::StoreResult};
use gatehouse_model::records::{
    ClientRecord, ClientSecretRecord, ConnectionRecord, GroupConnectionRecord, OAuthClientMetadata,
    ServerRecord, StdioSettings,
};
use gatehouse_model::upstream_auth::{UpstreamAuthSpec as TokenSpec, UpstreamClientAuth};

/// Whether a client's OAuth registration is the operator's (declared) rather than one the
/// client made itself (dynamic registration or a metadata document).
pub fn declared_client(client: &ClientRecord) -> bool {
    client.oauth.as_ref().is_none_or(|m| m.origin == "cli")
}

pub fn live_secret(secret: &ClientSecretRecord, now: i64) -> bool {
    secret.revoked_at.is_none() && secret.expires_at.is_none_or(|at| at > now)
}

/// The state of `store`, `now` deciding which secrets and tokens are live.
pub async fn export(store: &dyn Store, now: i64) -> StoreResult<State> {
    let servers = store
        .list_servers()
        .await?
        .iter()
        .map(|s| (s.name.clone(), server(s)))
        .collect();
    let connections = store.list_connections().await?;
    let mut clients = BTreeMap::new();
    for client in store.list_clients().await? {
        if !declared_client(&client) {
            continue;
        }
        let has_secret = match &client.oauth {
            Some(_) => store
                .list_client_secrets(&client.name)
                .await?
                .iter()
                .any(|s| live_secret(s, now)),
            None => false,
        };
        let spec = client_spec(&client, has_secret, &connections);
        clients.insert(client.name, spec);
    }
    let mut policies = BTreeMap::new();
    let mut guardrails = BTreeMap::new();
    for p in store.list_policies().await? {
        if p.kind == GUARDRAIL_KIND {
            guardrails.insert(
                p.id,
                GuardrailSpec {
                    client: p.client,
                    server: p.server,
                    tools: p.tools,
                    spec: p.spec,
                },
            );
        } else {
            policies.insert(
                p.id,
                PolicySpec {
                    kind: p.kind,
                    client: p.client,
                    server: p.server,
                    tools: p.tools,
                    spec: p.spec,
                },
            );
        }
    }
    let users = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| {
            let spec = UserSpec {
                display_name: u.display_name,
                groups: sorted(u.groups),
                disabled: u.disabled_at.is_some(),
            };
            (u.username, spec)
        })
        .collect();
    let groups = groups(store.list_group_connections().await?);
    let tokens: BTreeSet<AdminTokenSpec> = store
        .list_admin_tokens()
        .await?
        .into_iter()
        .filter(|t| t.revoked_at.is_none() && t.expires_at.is_none_or(|at| at > now))
        .map(|t| AdminTokenSpec {
            name: t.name,
            role: t.role,
        })
        .collect();
    Ok(State {
        servers: Some(servers),
        clients: Some(clients),
        policies: Some(policies),
        guardrails: Some(guardrails),
        users: Some(users),
        groups: Some(groups),
        admin_tokens: Some(tokens.into_iter().collect()),
        ..State::empty()
    })
}

/// Groups sorted and without repeats: their order means nothing.
pub fn sorted(groups: Vec<String>) -> Vec<String> {
    groups
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn server(s: &ServerRecord) -> ServerSpec {
    ServerSpec {
        // A stdio server's row carries `stdio://{name}`, which names no address.
        // A virtual server's row carries `virtual://{name}`, which names no address either.
        url: if s.stdio.is_some() || !s.members.is_empty() {
            String::new()
        } else {
            s.url.clone()
        },
        stdio: s.stdio.as_ref().map(|stdio| stdio_spec(&s.name, stdio)),
        members: s.members.clone(),
        upstream_auth: s
            .upstream_auth
            .spec
            .as_ref()
            .map(|spec| upstream_auth_spec(&s.name, spec)),
        identity_header: s.upstream_auth.identity_header.clone(),
        credential: s.credential_header.as_ref().map(|header| CredentialSpec {
            header: header.clone(),
            value: SecretRef::conventional("server", &s.name, "credential"),
        }),
        allow_anonymous: s.allow_anonymous,
        allow_unknown_methods: s.allow_unknown_methods,
        pin_action: s.pin_action,
    }
}

fn stdio_spec(server: &str, s: &StdioSettings) -> StdioSpec {
    StdioSpec {
        command: s.command.clone(),
        args: s.args.clone(),
        env: s
            .env_names
            .iter()
            .map(|variable| {
                let field = format!("env_{variable}");
                (
                    variable.clone(),
                    SecretRef::conventional("server", server, &field),
                )
            })
            .collect(),
        cwd: s.cwd.clone(),
        sharing: s.sharing,
        max_children: s.max_children,
        idle_timeout_secs: s.idle_timeout_secs,
        limits: s.limits,
    }
}

fn upstream_auth_spec(server: &str, spec: &TokenSpec) -> UpstreamAuthSpec {
    let client = spec.client();
    let private_key = client.auth_method == UpstreamClientAuth::PrivateKeyJwt;
    let public = client.auth_method == UpstreamClientAuth::None;
    let reference = |field| Some(SecretRef::conventional("server", server, field));
    let (authorization_endpoint, revocation_endpoint, issuer, registration, redirect_uri) =
        match spec {
            TokenSpec::PerUser {
                authorization_endpoint,
                revocation_endpoint,
                issuer,
                registration,
                redirect_uri,
                ..
            } => (
                Some(authorization_endpoint.clone()),
                revocation_endpoint.clone(),
                issuer.clone(),
                (!registration.is_pre_registered()).then(|| registration.as_str().to_owned()),
                redirect_uri.clone(),
            ),
            _ => (None, None, None, None, None),
        };
    UpstreamAuthSpec {
        kind: spec.kind().to_owned(),
        token_endpoint: client.token_endpoint.to_owned(),
        client_id: client.client_id.to_owned(),
        auth_method: client.auth_method.as_str().to_owned(),
        authorization_endpoint,
        revocation_endpoint,
        issuer,
        registration,
        redirect_uri,
        secret: if private_key || public {
            None
        } else {
            reference("upstream_secret")
        },
        private_key: if private_key {
            reference("upstream_private_key")
        } else {
            None
        },
        scope: client.scope.map(str::to_owned),
        resource: client.resource.map(str::to_owned),
    }
}

pub fn oauth_spec(m: &OAuthClientMetadata) -> OAuthSpec {
    OAuthSpec {
        auth_method: m.token_endpoint_auth_method.clone(),
        grant_types: m.grant_types.clone(),
        redirect_uris: m.redirect_uris.clone(),
        native: m.application_type.as_deref() == Some("native"),
        jwks: m.jwks.clone(),
        require_dpop: m.dpop_bound_access_tokens,
        secret: None,
    }
}

fn client_spec(c: &ClientRecord, has_secret: bool, connections: &[ConnectionRecord]) -> ClientSpec {
    ClientSpec {
        description: c.description.clone(),
        disabled: c.disabled_at.is_some(),
        oauth: c.oauth.as_ref().map(|m| OAuthSpec {
            secret: has_secret.then(|| SecretRef::conventional("client", &c.name, "secret")),
            ..oauth_spec(m)
        }),
        connections: connections
            .iter()
            .filter(|k| k.client == c.name)
            .map(|k| {
                let grant = GrantSpec {
                    tools: k.tools.clone(),
                    resources: k.resources,
                    prompts: k.prompts,
                };
                (k.server.clone(), grant)
            })
            .collect(),
    }
}

fn groups(rows: Vec<GroupConnectionRecord>) -> BTreeMap<String, GroupSpec> {
    let mut groups: BTreeMap<String, GroupSpec> = BTreeMap::new();
    for row in rows {
        groups
            .entry(row.group)
            .or_insert_with(|| GroupSpec {
                connections: BTreeMap::new(),
            })
            .connections
            .insert(
                row.server,
                GrantSpec {
                    tools: row.tools,
                    resources: row.resources,
                    prompts: row.prompts,
                },
            );
    }
    groups
}
