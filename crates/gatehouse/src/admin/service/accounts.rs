//! The service's changes to users, groups, OAuth registrations, client secrets and signing
//! keys.

use serde_json::json;
use std::time::{Duration, Instant};

use super::{AdminService, Change, Operator};
use crate::admin::{
    AdminResult,
    oauth::{self, OAuthRegistration, Registered},
    summary, users,
};
use crate::store::StoreError;
use gatehouse_model::records::{ClientSecretRecord, Generation, SigningKeyRecord, UserRecord};

impl AdminService {
    /// Creates a local user (with a password) or one to be linked at first federated sign-in.
    pub async fn create_user(
        &self,
        by: &Operator,
        username: &str,
        display_name: &str,
        password: Option<&str>,
        groups: Vec<String>,
    ) -> AdminResult<(UserRecord, Generation)> {
        let started = Instant::now();
        let (user, generation) =
            users::create_user(&self.store, username, display_name, password, groups).await?;
        let change = Change {
            action: "user.create",
            target_kind: "user",
            target: user.id.clone(),
            before: None,
            after: Some(summary::user(&user)),
        };
        self.record(by, change, started).await?;
        Ok((user, generation))
    }

    pub async fn set_user_groups(
        &self,
        by: &Operator,
        username: &str,
        groups: Vec<String>,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_user(username).await?;
        let generation = users::set_groups(&self.store, username, groups).await?;
        self.record_user_change(by, "user.set_groups", &before, started)
            .await?;
        Ok(generation)
    }

    /// Changes a user's display name (a federated user's is replaced again at its next
    /// sign-in, from the provider's claims).
    pub async fn update_user(
        &self,
        by: &Operator,
        username: &str,
        display_name: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        users::check_display_name(display_name)?;
        let before = self.store.get_user(username).await?;
        let generation = self
            .store
            .update_user_profile(&before.id, display_name, &before.groups)
            .await?;
        self.record_user_change(by, "user.update", &before, started)
            .await?;
        Ok(generation)
    }

    /// Sets a local user's password; the event says it changed, nothing more.
    pub async fn set_user_password(
        &self,
        by: &Operator,
        username: &str,
        password: &str,
    ) -> AdminResult<()> {
        let started = Instant::now();
        let before = self.store.get_user(username).await?;
        users::set_password(&self.store, username, password).await?;
        self.record_user_change(by, "user.set_password", &before, started)
            .await
    }

    /// Disables the user (their tokens stop working) or enables them again.
    pub async fn set_user_enabled(
        &self,
        by: &Operator,
        username: &str,
        enabled: bool,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.store.get_user(username).await?;
        let at = (!enabled).then(|| (self.clock)());
        let generation = self.store.set_user_disabled(&before.id, at).await?;
        let action = if enabled {
            "user.enable"
        } else {
            "user.disable"
        };
        self.record_user_change(by, action, &before, started)
            .await?;
        Ok(generation)
    }

    pub(super) async fn record_user_change(
        &self,
        by: &Operator,
        action: &'static str,
        before: &UserRecord,
        started: Instant,
    ) -> AdminResult<()> {
        let after = self.store.get_user(&before.id).await.ok();
        let change = Change {
            action,
            target_kind: "user",
            target: before.id.clone(),
            before: Some(summary::user(before)),
            after: after.as_ref().map(summary::user),
        };
        self.record(by, change, started).await
    }

    /// Lets members of `group` reach `server` (replacing an existing grant).
    pub async fn grant_group(
        &self,
        by: &Operator,
        group: &str,
        server: &str,
        tools: &str,
        resources: bool,
        prompts: bool,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.group_connection(group, server).await?;
        let generation =
            users::grant_group(&self.store, group, server, tools, resources, prompts).await?;
        let after = self.group_connection(group, server).await.ok().flatten();
        let change = Change {
            action: "group.grant",
            target_kind: "group_connection",
            target: format!("{group}/{server}"),
            before: before.as_ref().map(summary::group_connection),
            after: after.as_ref().map(summary::group_connection),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    pub async fn revoke_group(
        &self,
        by: &Operator,
        group: &str,
        server: &str,
    ) -> AdminResult<Generation> {
        let started = Instant::now();
        let before = self.group_connection(group, server).await?;
        let generation = self.store.delete_group_connection(group, server).await?;
        let change = Change {
            action: "group.revoke",
            target_kind: "group_connection",
            target: format!("{group}/{server}"),
            before: before.as_ref().map(summary::group_connection),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Forgets a person's own tokens at an upstream (per-user delegated tokens); the removed
    /// grant is returned so the caller can tell the upstream. Runtime data: the generation
    /// does not move.
    pub async fn revoke_upstream_grant(
        &self,
        by: &Operator,
        username: &str,
        server: &str,
    ) -> AdminResult<gatehouse_model::records::UpstreamGrantRecord> {
        let started = Instant::now();
        let user = self
            .store
            .find_user_by_username(username)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "user",
                name: username.to_owned(),
            })?;
        let grant = self
            .store
            .get_upstream_grant(&user.id, server)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "upstream grant",
                name: format!("{username}/{server}"),
            })?;
        self.store.delete_upstream_grant(&user.id, server).await?;
        let change = Change {
            action: "user.upstream_grant.revoke",
            target_kind: "upstream_grant",
            target: format!("{}/{server}", user.id),
            // What was granted, never the tokens.
            before: Some(json!({
                "user": user.username,
                "server": server,
                "scope": grant.scope,
                "expires_at": grant.expires_at,
                "created_at": grant.created_at,
            })),
            after: None,
        };
        self.record(by, change, started).await?;
        Ok(grant)
    }

    async fn group_connection(
        &self,
        group: &str,
        server: &str,
    ) -> AdminResult<Option<gatehouse_model::records::GroupConnectionRecord>> {
        Ok(self
            .store
            .list_group_connections()
            .await?
            .into_iter()
            .find(|c| c.group == group && c.server == server))
    }

    /// Registers the client for OAuth; a first secret is in the result, never in the event.
    pub async fn register_oauth_client(
        &self,
        by: &Operator,
        client: &str,
        registration: OAuthRegistration,
    ) -> AdminResult<Registered> {
        let started = Instant::now();
        let before = self.store.get_client(client).await?;
        let registered =
            oauth::register_client(&self.store, &self.keyring, client, registration).await?;
        let mut after = self
            .store
            .get_client(client)
            .await
            .ok()
            .map(|c| summary::client(&c));
        if let (Some(serde_json::Value::Object(fields)), Some(id)) =
            (after.as_mut(), &registered.secret_id)
        {
            fields.insert("new_secret_id".into(), json!(id));
        }
        let change = Change {
            action: "client.register_oauth",
            target_kind: "client",
            target: client.to_owned(),
            before: Some(summary::client(&before)),
            after,
        };
        self.record(by, change, started).await?;
        Ok(registered)
    }

    /// A new client secret; the others keep working for `overlap`.
    pub async fn rotate_client_secret(
        &self,
        by: &Operator,
        client: &str,
        overlap: Duration,
    ) -> AdminResult<(String, ClientSecretRecord, Generation)> {
        let started = Instant::now();
        let (secret, record, generation) =
            oauth::rotate_client_secret(&self.store, &self.keyring, client, overlap).await?;
        let change = Change {
            action: "client_secret.rotate",
            target_kind: "client_secret",
            target: record.id.clone(),
            before: None,
            after: Some(json!({
                "client": client,
                "others_valid_for_ms": u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX),
            })),
        };
        self.record(by, change, started).await?;
        Ok((secret, record, generation))
    }

    /// Revokes one client secret by id. The store finds secrets by client only, so the event
    /// records the id and the revocation, not the client.
    pub async fn revoke_client_secret(&self, by: &Operator, id: &str) -> AdminResult<Generation> {
        let started = Instant::now();
        let at = (self.clock)();
        let generation = self.store.revoke_client_secret(id, at).await?;
        let change = Change {
            action: "client_secret.revoke",
            target_kind: "client_secret",
            target: id.to_owned(),
            before: None,
            after: Some(json!({ "revoked_at": at })),
        };
        self.record(by, change, started).await?;
        Ok(generation)
    }

    /// Creates a signing key (see [`oauth::rotate_signing_key`]); never records key material.
    pub async fn rotate_signing_key(
        &self,
        by: &Operator,
        alg: &str,
        lead: Option<Duration>,
    ) -> AdminResult<(SigningKeyRecord, Generation)> {
        let started = Instant::now();
        let (record, generation) =
            oauth::rotate_signing_key(&self.store, &self.keyring, alg, lead).await?;
        let change = Change {
            action: "signing_key.rotate",
            target_kind: "signing_key",
            target: record.kid.clone(),
            before: None,
            after: Some(summary::signing_key(&record)),
        };
        self.record(by, change, started).await?;
        Ok((record, generation))
    }
}
