//! The state document: `apiVersion: gatehouse/v1`, `kind: State`. Plain values, no I/O.
//!
//! Every collection is a map keyed by the entity's stable name (`BTreeMap`: byte order), and
//! every field has one spelling and a fixed place, so the same deployment always renders to
//! the same text and a change shows as a small diff in review.
//!
//! A section left out of a file is not managed by it: `apply --prune` removes only what a
//! section that is present no longer names (an empty `{}` manages "none").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::secret_ref::SecretRef;
use gatehouse_model::{
    pin_action::PinAction,
    records::{AdminRole, Sharing, StdioLimits},
};

pub const API_VERSION: &str = "gatehouse/v1";
pub const KIND: &str = "State";

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub servers: Option<BTreeMap<String, ServerSpec>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub clients: Option<BTreeMap<String, ClientSpec>>,
    /// Policies other than guardrails, by id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub policies: Option<BTreeMap<String, PolicySpec>>,
    /// Guardrails (policies of kind `guardrail`), by id; ids are shared with `policies`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub guardrails: Option<BTreeMap<String, GuardrailSpec>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub users: Option<BTreeMap<String, UserSpec>>,
    /// What each group's users may reach, by group.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "unique::optional"
    )]
    pub groups: Option<BTreeMap<String, GroupSpec>>,
    /// Which admin tokens exist (never their secrets), sorted by name then role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_tokens: Option<Vec<AdminTokenSpec>>,
}

impl State {
    /// A document managing nothing.
    pub fn empty() -> Self {
        State {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            servers: None,
            clients: None,
            policies: None,
            guardrails: None,
            users: None,
            groups: None,
            admin_tokens: None,
        }
    }

    /// Every secret reference the document makes, with where it is made.
    pub fn references(&self) -> Vec<(String, &SecretRef)> {
        let mut found = Vec::new();
        for (name, server) in self.servers.iter().flatten() {
            if let Some(credential) = &server.credential {
                found.push((
                    format!("server {name}, field credential.value"),
                    &credential.value,
                ));
            }
            for (variable, value) in server.stdio.iter().flat_map(|s| &s.env) {
                found.push((format!("server {name}, field stdio.env.{variable}"), value));
            }
            if let Some((field, value)) = server.upstream_auth.as_ref().and_then(|a| a.secret_ref())
            {
                found.push((format!("server {name}, field upstream_auth.{field}"), value));
            }
        }
        for (name, client) in self.clients.iter().flatten() {
            if let Some(secret) = client.oauth.as_ref().and_then(|o| o.secret.as_ref()) {
                found.push((format!("client {name}, field oauth.secret"), secret));
            }
        }
        found
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// The upstream's MCP endpoint; absent for a server that runs a local program.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// A local program instead of a URL (docs/upstreams.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioSpec>,
    /// A virtual server: the servers it aggregates instead of a URL, in the order their
    /// lists are merged (docs/upstreams.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Tokens Gatehouse fetches for the upstream (client credentials or token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<UpstreamAuthSpec>,
    /// The header carrying Gatehouse's signed assertion of the caller, lower-cased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    /// The header injected on every upstream request; its value is a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialSpec>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_anonymous: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unknown_methods: bool,
    /// What a changed tool definition does: `block`, `warn` or `off`.
    #[serde(default = "default_pin_action")]
    #[schema(value_type = String)]
    pub pin_action: PinAction,
}

/// What a stdio server runs. The environment's values are references, never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioSpec {
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The child's environment: each variable's value by reference (`env:NAME`, `file:PATH`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    #[schema(value_type = BTreeMap<String, String>)]
    pub env: BTreeMap<String, SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `shared` (one child for every client) or `per_principal`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub sharing: Sharing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<u32>,
    /// Seconds a per-principal child may stay unused before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Operating-system limits: `memory_bytes`, `open_files`, `processes`, `cpu_seconds`.
    #[serde(default, skip_serializing_if = "StdioLimits::is_empty")]
    #[schema(value_type = Object)]
    pub limits: StdioLimits,
}

/// Tokens fetched for the upstream (docs/upstreams.md). The client secret or private key is
/// a reference, read at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuthSpec {
    /// `client_credentials`, `token_exchange` or `per_user`.
    pub kind: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or `none` (a public
    /// client, `per_user` only).
    pub auth_method: String,
    /// `per_user`: where each person is sent to grant access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// `per_user`: the RFC 7009 endpoint told when a grant is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// `per_user`: the authorization server's issuer, when its endpoints were discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `per_user`: `pre_registered` (default), `metadata_document` or `dynamic`: how the
    /// client id was made (the document keeps the result; apply does not register again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
    /// `per_user`: the callback a metadata-document or registered client id was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// The client secret (`client_secret_basic`, `client_secret_post`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretRef>,
    /// The PEM PKCS #8 private key (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub private_key: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl UpstreamAuthSpec {
    /// The one reference the settings name, with its field.
    pub fn secret_ref(&self) -> Option<(&'static str, &SecretRef)> {
        match (&self.secret, &self.private_key) {
            (Some(secret), _) => Some(("secret", secret)),
            (None, Some(key)) => Some(("private_key", key)),
            (None, None) => None,
        }
    }
}

fn default_pin_action() -> PinAction {
    PinAction::Block
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The header's name, lower-cased (`authorization`).
    pub header: String,
    /// Where the header's value is read at apply time (`env:NAME` or `file:PATH`).
    #[schema(value_type = String)]
    pub value: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    /// The client's connections, by server.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique::map"
    )]
    pub connections: BTreeMap<String, GrantSpec>,
}

/// An OAuth registration made by an operator (`gatehouse clients oauth`). Registrations
/// clients made themselves (dynamic registration, metadata documents) are not declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// `client_secret_basic` (default), `client_secret_post`, `private_key_jwt` or `none`.
    #[serde(default = "default_auth_method")]
    pub auth_method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// A native application (RFC 8252 loopback redirects).
    #[serde(default, skip_serializing_if = "is_false")]
    pub native: bool,
    /// The client's public keys, for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_dpop: bool,
    /// The client secret, by reference: when set, it is the client's one live secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretRef>,
}

fn default_auth_method() -> String {
    "client_secret_basic".to_owned()
}

/// What a connection (client → server) or a group's connection grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// Tool patterns (`search_*`, `get_issue`, `*`).
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub resources: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompts: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `arguments`, `ip`, `country`, `schedule`, `quota` or `rate_limit`.
    pub kind: String,
    /// The one client covered (none: every client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The one server covered (none: every server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The tool pattern covered (none: every tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<String>,
    /// The kind's specification (docs/policies.md).
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    /// The one client covered (none: every client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The one server covered (none: every server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The tool pattern covered (none: every tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<String>,
    /// The guardrail's specification (docs/guardrails.md).
    pub spec: serde_json::Value,
}

/// A user who signs in so agents act for them. Passwords and the link to an OpenID
/// provider's account are not declared: the first is a secret, the second is made at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's connections, by server.
    #[serde(default, deserialize_with = "unique::map")]
    pub connections: BTreeMap<String, GrantSpec>,
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenSpec {
    pub name: String,
    #[schema(value_type = String)]
    pub role: AdminRole,
}

/// Maps whose keys are names: a name given twice is refused, not silently the last one.
mod unique {
    use serde::{
        Deserialize, Deserializer,
        de::{Error, MapAccess, Visitor},
    };
    use std::{collections::BTreeMap, marker::PhantomData};

    struct Names<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Names<T> {
        type Value = BTreeMap<String, T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map from names, each given once")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut names = BTreeMap::new();
            while let Some(name) = access.next_key::<String>()? {
                if names.contains_key(&name) {
                    return Err(A::Error::custom(format!("duplicate name {name:?}")));
                }
                let value = access.next_value()?;
                names.insert(name, value);
            }
            Ok(names)
        }
    }

    pub fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, T>, D::Error> {
        deserializer.deserialize_map(Names(PhantomData))
    }

    pub fn optional<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<BTreeMap<String, T>>, D::Error> {
        map(deserializer).map(Some)
    }
}

/// Reading a document: YAML (JSON is YAML too).
pub fn parse(text: &str) -> Result<State, String> {
    let state: State = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if state.api_version != API_VERSION {
        return Err(format!(
            "apiVersion {:?}: this Gatehouse reads {API_VERSION:?}",
            state.api_version
        ));
    }
    if state.kind != KIND {
        return Err(format!("kind {:?}: expected {KIND:?}", state.kind));
    }
    Ok(state)
}

/// The document as YAML, as `gatehouse export` writes it.
pub fn to_yaml(state: &State) -> Result<String, String> {
    serde_yaml::to_string(state).map_err(|e| e.to_string())
}
