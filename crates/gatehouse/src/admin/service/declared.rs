//! The service's changes that only a declared state needs: setting every field of a server,
//! a client's description, registration and secret, a user's profile; and comparing declared
//! secrets with the stored ones without revealing either.

use serde_json::json;
use std::{collections::BTreeMap, time::Instant};
use subtle::ConstantTimeEq;

use super::{AdminService, Change, Operator};
use crate::{
    admin::{
        AdminError, AdminResult, oauth, seal_credential, summary,
        upstream_auth::{private_key_der, secret_context},
    },
    identity::oauth_clients,
    snapshot::{credential_context, stdio::env_context},
};
use gatehouse_model::{
    names::GroupName,
    pin_action::PinAction,
    records::{ClientSecretRecord, Generation},
    upstream_auth::UpstreamClientAuth,
};

/// Every field of a server as declared. `credential`: `None` keeps the stored one,
/// `Some(None)` removes it, `Some(Some("Header: value"))` replaces it.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub url: String,
    pub credential: Option<Option<String>>,
    pub allow_anonymous: bool,
    pub allow_unknown_methods: bool,
    pub pin_action: PinAction,
}

/// The shortest client secret a declaration may set: as hard to guess as a minted one.
pub const MIN_DECLARED_SECRET_LEN: usize = 32;

impl AdminService {
    pub async fn set_server(
        &self,
        by: &Operator,
        name: &str,
        settings: ServerSettings,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_server(name).await?;
        let mut record = before.clone();
        // A program's row keeps its `stdio://` URL, a virtual server's its `virtual://` one:
        // the document declares none for them.
        if (before.stdio.is_none() && before.members.is_empty()) || !settings.url.is_empty() {
            crate::admin::check_upstream_url(&settings.url)?;
            record.url = settings.url;
        }
        record.allow_anonymous = settings.allow_anonymous;
        record.allow_unknown_methods = settings.allow_unknown_methods;
        record.pin_action = settings.pin_action;
        let replaced = matches!(settings.credential, Some(Some(_)));
        match settings.credential {
            Some(Some(text)) => {
                (record.credential_header, record.credential_sealed) =
                    seal_credential(&self.keyring, name, &text)?;
            }
            Some(None) => (record.credential_header, record.credential_sealed) = (None, None),
            None => {}
        }
        let generation = self.store.update_server(&record).await?;
        let mut after = summary::server(&record);
        if let (serde_json::Value::Object(fields), true) = (&mut after, replaced) {
            fields.insert("credential_replaced".into(), json!(true));
        }
        let change = Change {
            action: "server.update",
            target_kind: "server",
            target: name.to_owned(),
            before: Some(summary::server(&before)),
            after: Some(after),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn set_client_description(
        &self,
        by: &Operator,
        name: &str,
        description: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_client(name).await?;
        let generation = self.store.set_client_description(name, description).await?;
        let after = self.store.get_client(name).await.ok();
        let change = Change {
            action: "client.update",
            target_kind: "client",
            target: name.to_owned(),
            before: Some(summary::client(&before)),
            after: after.as_ref().map(summary::client),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Registers the client for OAuth as declared (no secret is minted: a declaration names
    /// its own), or with `None` removes its registration.
    pub async fn set_client_registration(
        &self,
        by: &Operator,
        name: &str,
        registration: Option<oauth::OAuthRegistration>,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_client(name).await?;
        let (action, generation) = match registration {
            Some(registration) => {
                let registered = oauth::register_client_with(
                    &self.store,
                    &self.keyring,
                    name,
                    registration,
                    false,
                )
                .await?;
                ("client.register_oauth", registered.generation)
            }
            None => (
                "client.unregister_oauth",
                self.store.set_client_oauth(name, None).await?,
            ),
        };
        let after = self.store.get_client(name).await.ok();
        let change = Change {
            action,
            target_kind: "client",
            target: name.to_owned(),
            before: Some(summary::client(&before)),
            after: after.as_ref().map(summary::client),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Makes `secret` the client's one live secret: stored as a keyed hash, every other
    /// secret of the client ends now. The event names the new secret's id, never the secret.
    pub async fn set_client_secret(
        &self,
        by: &Operator,
        client: &str,
        secret: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        if secret.chars().count() < MIN_DECLARED_SECRET_LEN {
            return Err(AdminError::Invalid(format!(
                "client {client:?}: a client secret needs at least {MIN_DECLARED_SECRET_LEN} characters"
            )));
        }
        let now = (self.clock)();
        let record = ClientSecretRecord {
            id: format!("cs_{}", crate::secrets::random_id(12)?),
            client: client.to_owned(),
            secret_hash: oauth_clients::hash_client_secret(&self.keyring, client, secret).to_vec(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        let generation = self.store.rotate_client_secret(&record, now).await?;
        let change = Change {
            action: "client_secret.set",
            target_kind: "client_secret",
            target: record.id.clone(),
            before: None,
            after: Some(summary::client_secret(&record)),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn set_user_profile(
        &self,
        by: &Operator,
        username: &str,
        display_name: &str,
        groups: Vec<String>,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        GroupName::parse_all(&groups)?;
        let before = self.store.get_user(username).await?;
        let generation = self
            .store
            .update_user_profile(&before.id, display_name, &groups)
            .await?;
        self.record_user_change(by, "user.update", &before, started)
            .await?;
        Ok(generation)
    }

    /// Whether `value` is the credential header value stored for `server` (constant time).
    pub async fn server_credential_is(&self, server: &str, value: &str) -> AdminResult<bool> {
        let record = self.store.get_server(server).await?;
        let Some(sealed) = record.credential_sealed else {
            return Ok(false);
        };
        let stored =
            zeroize::Zeroizing::new(self.keyring.decrypt(&sealed, &credential_context(server))?);
        Ok(bool::from(stored.as_slice().ct_eq(value.as_bytes())))
    }

    /// Whether `env` (a JSON object of the variables' values) is the environment stored for
    /// the stdio server `server` (constant time over the canonical JSON of both).
    pub async fn stdio_env_is(&self, server: &str, env: &str) -> AdminResult<bool> {
        let record = self.store.get_server(server).await?;
        let Some(sealed) = record.stdio.and_then(|s| s.env_sealed) else {
            return Ok(false);
        };
        let stored = zeroize::Zeroizing::new(self.keyring.decrypt(&sealed, &env_context(server))?);
        let canonical = |bytes: &[u8]| {
            serde_json::from_slice::<BTreeMap<String, String>>(bytes)
                .ok()
                .and_then(|map| serde_json::to_vec(&map).ok())
                .map(zeroize::Zeroizing::new)
        };
        let (Some(stored), Some(declared)) = (canonical(&stored), canonical(env.as_bytes())) else {
            return Ok(false);
        };
        Ok(bool::from(stored.as_slice().ct_eq(declared.as_slice())))
    }

    /// Whether `value` is the client secret or private key stored for `server`'s upstream
    /// token client, compared in the stored form (constant time).
    pub async fn upstream_secret_is(&self, server: &str, value: &str) -> AdminResult<bool> {
        let record = self.store.get_server(server).await?;
        let auth = record.upstream_auth;
        let (Some(spec), Some(sealed)) = (auth.spec, auth.secret_sealed) else {
            return Ok(false);
        };
        let stored =
            zeroize::Zeroizing::new(self.keyring.decrypt(&sealed, &secret_context(server))?);
        let declared = zeroize::Zeroizing::new(match spec.client().auth_method {
            UpstreamClientAuth::PrivateKeyJwt => match private_key_der(value) {
                Ok(der) => der,
                Err(_) => return Ok(false),
            },
            _ => value.trim().as_bytes().to_vec(),
        });
        Ok(bool::from(stored.as_slice().ct_eq(declared.as_slice())))
    }

    /// Whether `value` is the client's one live secret (constant time per secret).
    pub async fn client_secret_is(&self, client: &str, value: &str, now: i64) -> AdminResult<bool> {
        let live: Vec<ClientSecretRecord> = self
            .store
            .list_client_secrets(client)
            .await?
            .into_iter()
            .filter(|s| crate::admin::declarative::live_secret(s, now))
            .collect();
        let presented = oauth_clients::hash_client_secret(&self.keyring, client, value);
        let [only] = live.as_slice() else {
            return Ok(false);
        };
        Ok(bool::from(
            presented.as_slice().ct_eq(only.secret_hash.as_slice()),
        ))
    }
}
