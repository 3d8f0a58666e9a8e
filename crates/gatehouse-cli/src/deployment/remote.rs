//! A running Gatehouse through its admin API (`/admin/api/v1` on the admin listener), with an
//! admin token: the only way in to a cluster, whose replicas share a store the operator's
//! machine does not reach. The server validates and records each change, naming the token.

use async_trait::async_trait;
use gatehouse::{
    admin::{
        NewConnection, NewKey, NewPolicy, NewServer, ServerUpdate, declarative,
        oauth::OAuthRegistration,
    },
    admin_api::views::{
        AdminToken, ApiKey, Approved, Client, ClientSecret, Connection, CreatedAdminToken,
        CreatedApiKey, GroupConnection, OAuthRegistered, Policy, Rejected, RotatedSecret, Server,
        SigningKey, Status, ToolPin, UpstreamGrant, UpstreamGrantList, User,
    },
};
use gatehouse_model::{
    audit::{AuditFilter, AuditRow, EventKind},
    records::AdminRole,
};
use http::Method;
use serde_json::{Value, json};
use std::time::Duration;

pub use super::remote_client::{Remote, RemoteError};
use super::{Deployment, ExplainQuestion, Result, RowSink, SigningLead, remote_client::Items};

/// Rows handed to the printer at a time.
const SINK_CHUNK: usize = 1_000;

/// A path segment: names are validated by the server, but a `/` or `?` must not change
/// which operation is asked for.
fn seg(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn sorted<T>(mut items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
    items.sort_by_key(|item| key(item));
    items
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs()
}

#[async_trait]
impl Deployment for Remote {
    async fn add_server(&self, new: NewServer) -> Result<Server> {
        let body = super::remote_servers::create_body(new);
        self.send(Method::POST, "/servers", body).await
    }

    async fn update_server(&self, name: &str, update: ServerUpdate) -> Result<Server> {
        let body = super::remote_servers::update_body(update);
        self.send(Method::PATCH, &format!("/servers/{}", seg(name)), body)
            .await
    }

    async fn list_servers(&self) -> Result<Vec<Server>> {
        Ok(sorted(self.all("/servers", &[]).await?, |s: &Server| {
            s.name.clone()
        }))
    }

    async fn get_server(&self, name: &str) -> Result<Server> {
        self.get(&format!("/servers/{}", seg(name))).await
    }

    async fn remove_server(&self, name: &str) -> Result<()> {
        self.send_empty(Method::DELETE, &format!("/servers/{}", seg(name)), None)
            .await
    }

    async fn tool_pins(&self, server: &str) -> Result<Vec<ToolPin>> {
        // A server without pins and no server at all list the same: ask for the server first.
        self.get_server(server).await?;
        let pins = self
            .all("/tool-pins", &[("server", server.to_owned())])
            .await?;
        Ok(sorted(pins, |p: &ToolPin| p.tool.clone()))
    }

    async fn approve_tools(&self, server: &str, tools: &[String]) -> Result<u64> {
        let path = format!("/servers/{}/tool-pins/approve", seg(server));
        let approved: Approved = self
            .send(Method::POST, &path, json!({ "tools": tools }))
            .await?;
        Ok(approved.approved)
    }

    async fn reject_tools(&self, server: &str, tools: &[String]) -> Result<u64> {
        let path = format!("/servers/{}/tool-pins/reject", seg(server));
        let rejected: Rejected = self
            .send(Method::POST, &path, json!({ "tools": tools }))
            .await?;
        Ok(rejected.rejected)
    }

    async fn create_client(&self, name: &str, description: &str) -> Result<Client> {
        let body = json!({ "name": name, "description": description });
        self.send(Method::POST, "/clients", body).await
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        Ok(sorted(self.all("/clients", &[]).await?, |c: &Client| {
            c.name.clone()
        }))
    }

    async fn get_client(&self, name: &str) -> Result<Client> {
        self.get(&format!("/clients/{}", seg(name))).await
    }

    async fn set_client_enabled(&self, name: &str, enabled: bool) -> Result<Client> {
        let verb = if enabled { "enable" } else { "disable" };
        self.send(
            Method::POST,
            &format!("/clients/{}/{verb}", seg(name)),
            json!({}),
        )
        .await
    }

    async fn delete_client(&self, name: &str) -> Result<()> {
        self.send_empty(Method::DELETE, &format!("/clients/{}", seg(name)), None)
            .await
    }

    async fn register_oauth(
        &self,
        name: &str,
        registration: OAuthRegistration,
    ) -> Result<OAuthRegistered> {
        let body = json!({
            "grant_types": registration.grant_types,
            "auth_method": registration.auth_method,
            "redirect_uris": registration.redirect_uris,
            "native": registration.native,
            "jwks": registration.jwks,
            "require_dpop": registration.require_dpop,
        });
        self.send(Method::POST, &format!("/clients/{}/oauth", seg(name)), body)
            .await
    }

    async fn rotate_client_secret(&self, name: &str, overlap: Duration) -> Result<RotatedSecret> {
        let body = json!({ "overlap_seconds": seconds(overlap) });
        let path = format!("/clients/{}/secrets/rotate", seg(name));
        self.send(Method::POST, &path, body).await
    }

    async fn list_client_secrets(&self, name: &str) -> Result<Vec<ClientSecret>> {
        let list: Items<ClientSecret> =
            self.get(&format!("/clients/{}/secrets", seg(name))).await?;
        Ok(list.items)
    }

    async fn revoke_client_secret(&self, id: &str) -> Result<()> {
        let path = format!("/client-secrets/{}/revoke", seg(id));
        self.send_empty(Method::POST, &path, Some(json!({}))).await
    }

    async fn create_key(&self, new: NewKey) -> Result<CreatedApiKey> {
        let body = json!({
            "client": new.client,
            "label": new.label,
            "expires_in_seconds": new.expires_in.map(seconds),
            "tools": new.tools,
        });
        self.send(Method::POST, "/keys", body).await
    }

    async fn list_keys(&self, client: Option<&str>) -> Result<Vec<ApiKey>> {
        let query: Vec<(&str, String)> = match client {
            Some(name) => {
                self.get_client(name).await?;
                vec![("client", name.to_owned())]
            }
            None => Vec::new(),
        };
        Ok(sorted(self.all("/keys", &query).await?, |k: &ApiKey| {
            k.id.clone()
        }))
    }

    async fn rotate_key(&self, id: &str, overlap: Duration) -> Result<CreatedApiKey> {
        let body = json!({ "overlap_seconds": seconds(overlap) });
        self.send(Method::POST, &format!("/keys/{}/rotate", seg(id)), body)
            .await
    }

    async fn revoke_key(&self, id: &str) -> Result<ApiKey> {
        self.send(
            Method::POST,
            &format!("/keys/{}/revoke", seg(id)),
            json!({}),
        )
        .await
    }

    async fn list_connections(&self) -> Result<Vec<Connection>> {
        let all = self.all("/connections", &[]).await?;
        Ok(sorted(all, |c: &Connection| {
            format!("{}\u{0}{}", c.client, c.server)
        }))
    }

    async fn grant_connection(&self, new: NewConnection) -> Result<Connection> {
        let path = format!("/connections/{}/{}", seg(&new.client), seg(&new.server));
        let body = json!({
            "tools": new.tools,
            "resources": new.resources,
            "prompts": new.prompts,
        });
        self.send(Method::PUT, &path, body).await
    }

    async fn revoke_connection(&self, client: &str, server: &str) -> Result<()> {
        let path = format!("/connections/{}/{}", seg(client), seg(server));
        self.send_empty(Method::DELETE, &path, None).await
    }

    async fn add_policy(&self, new: NewPolicy) -> Result<Policy> {
        let spec: Value = serde_json::from_str(&new.spec)
            .map_err(|e| anyhow::anyhow!("policy {:?}: the spec is not JSON: {e}", new.id))?;
        let body = json!({
            "id": new.id,
            "kind": new.kind,
            "client": new.client,
            "server": new.server,
            "tools": new.tools,
            "spec": spec,
        });
        self.send(Method::POST, "/policies", body).await
    }

    async fn import_policies(&self, text: &str) -> Result<Vec<Policy>> {
        let policies: Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("the file is not a JSON array of policies: {e}"))?;
        let _: Items<Policy> = self
            .send(
                Method::POST,
                "/policies/import",
                json!({ "policies": policies }),
            )
            .await?;
        self.list_policies().await
    }

    async fn list_policies(&self) -> Result<Vec<Policy>> {
        Ok(sorted(self.all("/policies", &[]).await?, |p: &Policy| {
            p.id.clone()
        }))
    }

    async fn remove_policy(&self, id: &str) -> Result<()> {
        self.send_empty(Method::DELETE, &format!("/policies/{}", seg(id)), None)
            .await
    }

    async fn explain(&self, question: ExplainQuestion) -> Result<Value> {
        let mut answer: Value = self
            .send(
                Method::POST,
                "/policy/explain",
                serde_json::to_value(&question)?,
            )
            .await?;
        Ok(answer["explanation"].take())
    }

    async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password: Option<String>,
        groups: Vec<String>,
    ) -> Result<User> {
        let body = json!({
            "username": username,
            "display_name": display_name,
            "password": password,
            "groups": groups,
        });
        self.send(Method::POST, "/users", body).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Ok(sorted(self.all("/users", &[]).await?, |u: &User| {
            u.username.clone()
        }))
    }

    async fn update_user(&self, username: &str, display_name: &str) -> Result<User> {
        let path = format!("/users/{}", seg(username));
        self.send(
            Method::PATCH,
            &path,
            json!({ "display_name": display_name }),
        )
        .await
    }

    async fn set_user_groups(&self, username: &str, groups: Vec<String>) -> Result<User> {
        let path = format!("/users/{}/groups", seg(username));
        self.send(Method::PUT, &path, json!({ "groups": groups }))
            .await
    }

    async fn set_user_password(&self, username: &str, password: &str) -> Result<()> {
        let path = format!("/users/{}/password", seg(username));
        self.send_empty(Method::PUT, &path, Some(json!({ "password": password })))
            .await
    }

    async fn set_user_enabled(&self, username: &str, enabled: bool) -> Result<User> {
        let verb = if enabled { "enable" } else { "disable" };
        let path = format!("/users/{}/{verb}", seg(username));
        self.send(Method::POST, &path, json!({})).await
    }

    async fn list_upstream_grants(&self, username: Option<&str>) -> Result<Vec<UpstreamGrant>> {
        let usernames = match username {
            Some(name) => vec![name.to_owned()],
            None => self
                .list_users()
                .await?
                .into_iter()
                .map(|u| u.username)
                .collect(),
        };
        let mut all = Vec::new();
        for name in usernames {
            let list: UpstreamGrantList = self
                .get(&format!("/users/{}/upstream-grants", seg(&name)))
                .await?;
            all.extend(list.items);
        }
        all.sort_by(|a, b| (&a.user, &a.server).cmp(&(&b.user, &b.server)));
        Ok(all)
    }

    async fn revoke_upstream_grant(&self, username: &str, server: &str) -> Result<()> {
        let path = format!("/users/{}/upstream-grants/{}", seg(username), seg(server));
        self.send_empty(Method::DELETE, &path, None).await
    }

    async fn list_group_connections(&self) -> Result<Vec<GroupConnection>> {
        let all = self.all("/group-connections", &[]).await?;
        Ok(sorted(all, |g: &GroupConnection| {
            format!("{}\u{0}{}", g.group, g.server)
        }))
    }

    async fn grant_group(
        &self,
        group: &str,
        server: &str,
        tools: &str,
        resources: bool,
        prompts: bool,
    ) -> Result<GroupConnection> {
        let path = format!("/group-connections/{}/{}", seg(group), seg(server));
        let body = json!({ "tools": tools, "resources": resources, "prompts": prompts });
        self.send(Method::PUT, &path, body).await
    }

    async fn revoke_group(&self, group: &str, server: &str) -> Result<()> {
        let path = format!("/group-connections/{}/{}", seg(group), seg(server));
        self.send_empty(Method::DELETE, &path, None).await
    }

    async fn create_admin_token(
        &self,
        name: &str,
        role: AdminRole,
        expires: Option<Duration>,
    ) -> Result<CreatedAdminToken> {
        let body = json!({
            "name": name,
            "role": role,
            "expires_in_seconds": expires.map(seconds),
        });
        self.send(Method::POST, "/admin-tokens", body).await
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        Ok(sorted(
            self.all("/admin-tokens", &[]).await?,
            |t: &AdminToken| t.id.clone(),
        ))
    }

    async fn revoke_admin_token(&self, id: &str) -> Result<AdminToken> {
        let path = format!("/admin-tokens/{}/revoke", seg(id));
        self.send(Method::POST, &path, json!({})).await
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>> {
        let list: Items<SigningKey> = self.get("/signing-keys").await?;
        Ok(list.items)
    }

    async fn rotate_signing_key(
        &self,
        alg: Option<String>,
        lead: SigningLead,
    ) -> Result<SigningKey> {
        let lead_seconds = match lead {
            SigningLead::Now => Some(0),
            SigningLead::Configured => None,
            SigningLead::After(lead) => Some(seconds(lead)),
        };
        let body = json!({ "alg": alg, "lead_seconds": lead_seconds });
        self.send(Method::POST, "/signing-keys/rotate", body).await
    }

    async fn export_state(&self) -> Result<declarative::State> {
        self.get("/state").await
    }

    async fn apply_state(
        &self,
        state: declarative::State,
        options: declarative::Options,
    ) -> Result<declarative::Outcome> {
        // The references are read here, where the operator runs the command; the server
        // never reads its own environment or files for a caller (docs/gitops.md).
        let secrets = declarative::supplied_values(&state, &declarative::LocalResolver)
            .map_err(|err| anyhow::anyhow!("nothing was changed: {err}"))?;
        let path = format!(
            "/state/apply?dry_run={}&prune={}",
            options.dry_run, options.prune
        );
        let applied: StateApplied = self
            .send(
                Method::POST,
                &path,
                json!({ "state": state, "secrets": secrets }),
            )
            .await?;
        Ok(declarative::Outcome {
            plan: declarative::Plan {
                changes: applied.changes,
                notices: applied.notices,
            },
            applied: applied.applied,
            generation: applied.generation,
        })
    }

    async fn status(&self) -> Result<Status> {
        self.get("/status").await
    }

    async fn audit_newest(
        &self,
        filter: AuditFilter,
        limit: i64,
        sink: RowSink<'_>,
    ) -> Result<Option<i64>> {
        let wanted = usize::try_from(limit).unwrap_or(0);
        let mut seen = 0usize;
        let mut rows = self
            .audit_pages(&filter, |page| {
                seen += page.len();
                wanted > 0 && seen >= wanted
            })
            .await?;
        if wanted > 0 {
            rows.truncate(wanted);
        }
        rows.reverse();
        for chunk in rows.chunks(SINK_CHUNK) {
            sink(chunk)?;
        }
        Ok(rows.last().map(|row| row.seq))
    }

    async fn audit_after(&self, after_seq: i64, kind: Option<EventKind>) -> Result<Vec<AuditRow>> {
        let filter = AuditFilter {
            kind,
            ..AuditFilter::default()
        };
        let mut rows = self
            .audit_pages(&filter, |page| page.iter().any(|row| row.seq <= after_seq))
            .await?;
        rows.retain(|row| row.seq > after_seq);
        rows.reverse();
        Ok(rows)
    }

    async fn close(self: Box<Self>) {}
}

/// The answer of `POST /admin/api/v1/state/apply`.
#[derive(Debug, serde::Deserialize)]
struct StateApplied {
    changes: Vec<declarative::Change>,
    notices: Vec<String>,
    applied: usize,
    generation: Option<i64>,
}
