//! What an operator event records of a record before and after a change: ids, names and
//! settings an auditor needs, never a secret. Key material, client secrets, passwords and
//! injected credentials stay out, hashes included (a hash of a short secret can be guessed).
//! No floating-point numbers either (a policy spec goes in as its JSON text), so a summary
//! reads back from the store exactly as it was hashed.

use serde_json::{Value, json};

use gatehouse_model::records::{
    ApiKeyRecord, ClientRecord, ClientSecretRecord, ConnectionRecord, GroupConnectionRecord,
    PolicyRecord, ServerRecord, SigningKeyRecord, UserRecord,
};

pub fn server(r: &ServerRecord) -> Value {
    let mut summary = json!({
        "url": r.url,
        "credential_header": r.credential_header,
        "allow_anonymous": r.allow_anonymous,
        "allow_unknown_methods": r.allow_unknown_methods,
        "pin_action": r.pin_action,
        "upstream_auth": r.upstream_auth.spec,
        "identity_header": r.upstream_auth.identity_header,
    });
    // The environment's names, never its values (they are sealed, and stay out like a header's).
    if let Some(stdio) = &r.stdio {
        summary["stdio"] = serde_json::to_value(stdio).unwrap_or(Value::Null);
    }
    if !r.members.is_empty() {
        summary["members"] = json!(r.members);
    }
    summary
}

pub fn client(r: &ClientRecord) -> Value {
    json!({
        "description": r.description,
        "disabled_at": r.disabled_at,
        "oauth": r.oauth.as_ref().map(|m| json!({
            "auth_method": m.token_endpoint_auth_method,
            "grant_types": m.grant_types,
            "redirect_uris": m.redirect_uris,
        })),
    })
}

pub fn key(r: &ApiKeyRecord) -> Value {
    json!({
        "client": r.client,
        "label": r.label,
        "tools": r.tools,
        "expires_at": r.expires_at,
        "revoked_at": r.revoked_at,
        "rotated_from": r.rotated_from,
    })
}

pub fn connection(r: &ConnectionRecord) -> Value {
    json!({ "tools": r.tools, "resources": r.resources, "prompts": r.prompts })
}

pub fn group_connection(r: &GroupConnectionRecord) -> Value {
    json!({ "tools": r.tools, "resources": r.resources, "prompts": r.prompts })
}

pub fn policy(r: &PolicyRecord) -> Value {
    json!({
        "kind": r.kind,
        "client": r.client,
        "server": r.server,
        "tools": r.tools,
        "spec": r.spec.to_string(),
    })
}

pub fn user(r: &UserRecord) -> Value {
    let sign_in = match (&r.idp, &r.password_hash) {
        (Some(idp), _) => idp.as_str(),
        (None, Some(_)) => "password",
        (None, None) => "none",
    };
    json!({
        "username": r.username,
        "display_name": r.display_name,
        "groups": r.groups,
        "sign_in": sign_in,
        "disabled_at": r.disabled_at,
    })
}

pub fn client_secret(r: &ClientSecretRecord) -> Value {
    json!({ "client": r.client, "expires_at": r.expires_at, "revoked_at": r.revoked_at })
}

pub fn signing_key(r: &SigningKeyRecord) -> Value {
    json!({ "alg": r.alg, "active_at": r.active_at, "retired_at": r.retired_at })
}
