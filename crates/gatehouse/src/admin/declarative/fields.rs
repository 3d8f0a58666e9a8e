//! One record's fields, before and after: what a plan's change shows of a server, client,
//! user or grant. Secrets appear only as whether the declared one equals the stored one.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{
    document::{
        ClientSpec, CredentialSpec, GrantSpec, ServerSpec, StdioSpec, UpstreamAuthSpec, UserSpec,
    },
    plan::{FieldChange, SecretFacts, SecretSlot},
};

pub(super) fn field(
    name: &'static str,
    before: Option<Value>,
    after: Option<Value>,
) -> FieldChange {
    FieldChange {
        field: name.into(),
        before,
        after,
    }
}

/// Fields whose value differs, `before` from `have` (none when creating).
pub(super) fn diff(
    fields: &mut Vec<FieldChange>,
    name: &'static str,
    have: Option<Value>,
    want: Option<Value>,
) {
    let absent = |v: &Option<Value>| matches!(v, None | Some(Value::Null));
    if have != want && !(absent(&have) && absent(&want)) {
        fields.push(field(
            name,
            have.filter(|v| !v.is_null()),
            want.filter(|v| !v.is_null()),
        ));
    }
}

fn flag(value: bool) -> Option<Value> {
    value.then_some(Value::Bool(true))
}

/// `want_stored`: `want` is what the store holds (a deletion shows it).
/// Which of a server's declared secrets equal the stored ones.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerSecrets {
    credential: bool,
    env: bool,
    upstream: bool,
}

impl ServerSecrets {
    pub(super) const ALL: ServerSecrets = ServerSecrets {
        credential: true,
        env: true,
        upstream: true,
    };

    pub(super) fn of(facts: &SecretFacts, name: &str) -> Self {
        let holds = |slot| facts.matching.contains(&slot);
        ServerSecrets {
            credential: holds(SecretSlot::ServerCredential(name.to_owned())),
            env: holds(SecretSlot::StdioEnv(name.to_owned())),
            upstream: holds(SecretSlot::UpstreamSecret(name.to_owned())),
        }
    }
}

pub(super) fn server_fields(
    have: Option<&ServerSpec>,
    want: &ServerSpec,
    secrets: ServerSecrets,
    want_stored: bool,
) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let text = |s: &str| (!s.is_empty()).then(|| json!(s));
    diff(
        &mut fields,
        "url",
        have.and_then(|h| text(&h.url)),
        text(&want.url),
    );
    let members = |s: &ServerSpec| (!s.members.is_empty()).then(|| json!(s.members));
    diff(
        &mut fields,
        "members",
        have.and_then(members),
        members(want),
    );
    let credential_text = |c: &CredentialSpec, stored: bool| {
        if stored {
            json!(format!("{}: (stored value)", c.header))
        } else {
            json!(format!("{}: (value of {})", c.header, c.value))
        }
    };
    let had = have.and_then(|h| h.credential.as_ref());
    match (had, &want.credential) {
        (Some(h), Some(w)) if h.header == w.header && secrets.credential => {}
        (had, wants) => diff(
            &mut fields,
            "credential",
            had.map(|c| credential_text(c, true)),
            wants.as_ref().map(|c| credential_text(c, want_stored)),
        ),
    }
    let had = have.and_then(|h| h.stdio.as_ref());
    diff(
        &mut fields,
        "stdio",
        had.map(stdio_settings),
        want.stdio.as_ref().map(stdio_settings),
    );
    let env_text = |s: &StdioSpec, stored: bool| {
        let values: BTreeMap<&str, String> = s
            .env
            .iter()
            .map(|(variable, reference)| {
                let value = if stored {
                    "(stored value)".to_owned()
                } else {
                    format!("(value of {reference})")
                };
                (variable.as_str(), value)
            })
            .collect();
        (!values.is_empty()).then(|| json!(values))
    };
    match (had, &want.stdio) {
        (Some(h), Some(w)) if h.env.keys().eq(w.env.keys()) && secrets.env => {}
        (had, wants) => diff(
            &mut fields,
            "stdio.env",
            had.and_then(|s| env_text(s, true)),
            wants.as_ref().and_then(|s| env_text(s, want_stored)),
        ),
    }
    let had = have.and_then(|h| h.upstream_auth.as_ref());
    diff(
        &mut fields,
        "upstream_auth",
        had.map(token_settings),
        want.upstream_auth.as_ref().map(token_settings),
    );
    let secret_text = |a: &UpstreamAuthSpec, stored: bool| {
        let (field, reference) = a.secret_ref()?;
        Some(if stored {
            json!(format!("{field}: (stored value)"))
        } else {
            json!(format!("{field}: (value of {reference})"))
        })
    };
    match (had, &want.upstream_auth) {
        (Some(h), Some(w)) if same_secret_field(h, w) && secrets.upstream => {}
        (had, wants) => diff(
            &mut fields,
            "upstream_auth.secret",
            had.and_then(|a| secret_text(a, true)),
            wants.as_ref().and_then(|a| secret_text(a, want_stored)),
        ),
    }
    diff(
        &mut fields,
        "identity_header",
        have.and_then(|h| h.identity_header.as_ref())
            .map(|h| json!(h)),
        want.identity_header.as_ref().map(|h| json!(h)),
    );
    diff(
        &mut fields,
        "allow_anonymous",
        have.and_then(|h| flag(h.allow_anonymous)),
        flag(want.allow_anonymous),
    );
    diff(
        &mut fields,
        "allow_unknown_methods",
        have.and_then(|h| flag(h.allow_unknown_methods)),
        flag(want.allow_unknown_methods),
    );
    diff(
        &mut fields,
        "pin_action",
        have.map(|h| json!(h.pin_action)),
        Some(json!(want.pin_action)),
    );
    fields
}

/// A program's settings without its environment (planned as `stdio.env`).
fn stdio_settings(s: &StdioSpec) -> Value {
    json!(StdioSpec {
        env: BTreeMap::new(),
        ..s.clone()
    })
}

/// Token settings without the reference to their secret (planned as `upstream_auth.secret`).
fn token_settings(a: &UpstreamAuthSpec) -> Value {
    json!(UpstreamAuthSpec {
        secret: None,
        private_key: None,
        ..a.clone()
    })
}

fn same_secret_field(have: &UpstreamAuthSpec, want: &UpstreamAuthSpec) -> bool {
    have.secret_ref().map(|(field, _)| field) == want.secret_ref().map(|(field, _)| field)
}

pub(super) fn client_fields(
    have: Option<&ClientSpec>,
    want: &ClientSpec,
    secret_matches: bool,
) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let text = |s: &str| (!s.is_empty()).then(|| json!(s));
    diff(
        &mut fields,
        "description",
        have.and_then(|h| text(&h.description)),
        text(&want.description),
    );
    diff(
        &mut fields,
        "disabled",
        have.and_then(|h| flag(h.disabled)),
        flag(want.disabled),
    );
    let registration = |c: &ClientSpec| {
        c.oauth.as_ref().map(|o| {
            let mut o = o.clone();
            o.secret = None;
            serde_json::to_value(o).unwrap_or(Value::Null)
        })
    };
    diff(
        &mut fields,
        "oauth",
        have.and_then(registration),
        registration(want),
    );
    if let Some(secret) = want.oauth.as_ref().and_then(|o| o.secret.as_ref())
        && !secret_matches
    {
        let had = have
            .and_then(|h| h.oauth.as_ref())
            .and_then(|o| o.secret.as_ref())
            .map(|_| json!("(stored secrets)"));
        fields.push(field(
            "oauth.secret",
            had,
            Some(json!(format!("(value of {secret})"))),
        ));
    }
    fields
}

pub(super) fn user_fields(have: Option<&UserSpec>, want: &UserSpec) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let text = |s: &str| (!s.is_empty()).then(|| json!(s));
    diff(
        &mut fields,
        "display_name",
        have.and_then(|h| text(&h.display_name)),
        text(&want.display_name),
    );
    let groups = |g: &[String]| (!g.is_empty()).then(|| json!(g));
    diff(
        &mut fields,
        "groups",
        have.and_then(|h| groups(&h.groups)),
        groups(&want.groups),
    );
    diff(
        &mut fields,
        "disabled",
        have.and_then(|h| flag(h.disabled)),
        flag(want.disabled),
    );
    fields
}

pub(super) fn grant_fields(have: Option<&GrantSpec>, want: &GrantSpec) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    diff(
        &mut fields,
        "tools",
        have.map(|h| json!(h.tools)),
        Some(json!(want.tools)),
    );
    diff(
        &mut fields,
        "resources",
        have.and_then(|h| flag(h.resources)),
        flag(want.resources),
    );
    diff(
        &mut fields,
        "prompts",
        have.and_then(|h| flag(h.prompts)),
        flag(want.prompts),
    );
    fields
}
