//! A running Gatehouse through its admin API (`/admin/api/v1` on the admin listener), with an
//! admin token: the only way in to a cluster, whose replicas share a store the operator's
//! machine does not reach. The server validates and records each change, naming the token.

use async_trait::async_trait;
use bytes::Bytes;
use gatehouse::{
    admin::{
        NewConnection, NewKey, NewPolicy, NewServer, ServerUpdate, declarative,
        oauth::OAuthRegistration,
    },
    admin_api::views::{
        AdminToken, ApiKey, Approved, Client, ClientSecret, Connection, CreatedAdminToken,
        CreatedApiKey, GroupConnection, OAuthRegistered, Policy, Rejected, Replica, RotatedSecret,
        Server, SigningKey, Status, ToolPin, UpstreamGrant, UpstreamGrantList, User,
    },
};
use gatehouse_model::{
    audit::{AuditFilter, AuditRow, EventKind},
    records::AdminRole,
};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::time::Duration;

use super::{Deployment, ExplainQuestion, Result, RowSink, SigningLead, selection::Target};

/// The most items the API hands out per page.
const PAGE_LIMIT: usize = 500;
/// How long a request may take (a connection that hangs is an error, not a wait forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change may take to reach every running replica (they poll every 250 ms by
/// default), and how often to ask.
const APPLY_WAIT: Duration = Duration::from_secs(5);
const APPLY_POLL: Duration = Duration::from_millis(100);
/// Rows handed to the printer at a time.
const SINK_CHUNK: usize = 1_000;

/// Why a call to the admin API failed: a problem document the server answered with, or no
/// answer at all. `output` renders it with a hint and `main` picks the exit code from it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{detail} (HTTP {status} {code})")]
    Problem {
        status: u16,
        code: String,
        detail: String,
        /// The request path, which names the kind of thing that was not found.
        path: String,
    },
    #[error("cannot reach the admin API at {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("the admin API at {url} answered {what}")]
    Unexpected { url: String, what: String },
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

pub struct Remote {
    /// `https://host:port` (no trailing slash).
    base: String,
    token: String,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Remote {
    pub fn connect(target: Target) -> Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(false);
        let tls = gatehouse::upstream::client::tls_config(&target.ca_files)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            base: target.server,
            token: target.token,
            http: HttpClient::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Sends one request; a 2xx answer's body, or the problem as a [`RemoteError`].
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Bytes> {
        let url = format!("{}/admin/api/v1{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(value)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        let unreachable = |why: String| RemoteError::Unreachable {
            url: self.base.clone(),
            why,
        };
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Err(unreachable(cause(&err)).into()),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                ))
                .into());
            }
        };
        let status = response.status();
        let bytes =
            match tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect()).await {
                Ok(Ok(body)) => body.to_bytes(),
                Ok(Err(err)) => return Err(unreachable(cause(&err)).into()),
                Err(_) => return Err(unreachable("the answer stalled".into()).into()),
            };
        if status.is_success() {
            return Ok(bytes);
        }
        Err(problem(&self.base, status, path, &bytes).into())
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let bytes = self.call(Method::GET, path, None).await?;
        self.parse(&bytes)
    }

    /// A change: its answer once every running replica applied it.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<T> {
        let bytes = self.call(method, path, Some(&body)).await?;
        self.applied().await?;
        self.parse(&bytes)
    }

    async fn send_empty(&self, method: Method, path: &str, body: Option<Value>) -> Result<()> {
        self.call(method, path, body.as_ref()).await?;
        self.applied().await
    }

    /// Waits until every live replica applied the store's generation as it is after the
    /// change, as the local mode does: "revoked" means revoked everywhere when the command
    /// returns. The server answers after its commit; its replicas apply the change at their
    /// next poll or change notification.
    async fn applied(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        let mut status: Status = self.get("/status").await?;
        let generation = status.generation;
        loop {
            let behind: Vec<&Replica> = status
                .replicas
                .iter()
                .filter(|r| r.live && r.applied_generation < generation)
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let live = status.replicas.iter().filter(|r| r.live).count();
                anyhow::bail!(
                    "the change is stored (generation {generation}) but {} of {live} running \
                     replica(s) {} not applied it within {}s: {}; see `gatehouse status`",
                    behind.len(),
                    if behind.len() == 1 { "has" } else { "have" },
                    APPLY_WAIT.as_secs(),
                    behind
                        .iter()
                        .map(|r| format!(
                            "{:?} runs generation {}",
                            r.replica_id, r.applied_generation
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            tokio::time::sleep(APPLY_POLL).await;
            status = self.get("/status").await?;
        }
    }

    fn parse<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            RemoteError::Unexpected {
                url: self.base.clone(),
                what: format!("a body this gatehouse cannot read ({e}); are the versions apart?"),
            }
            .into()
        })
    }

    /// Every item of a list, following `next_cursor` to the end.
    async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = vec![("limit", PAGE_LIMIT.to_string())];
            pairs.extend(query.iter().cloned());
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor.clone()));
            }
            let page: Page<T> = self
                .get(&format!("{path}?{}", query_string(&pairs)))
                .await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Events matching `filter`, newest first, until `enough` says stop (given the rows so
    /// far and the last page).
    async fn audit_pages(
        &self,
        filter: &AuditFilter,
        mut enough: impl FnMut(&[AuditRow]) -> bool,
    ) -> Result<Vec<AuditRow>> {
        let mut query = vec![("limit", PAGE_LIMIT.to_string())];
        let text = |v: &Option<String>| v.clone();
        for (name, value) in [
            ("client", text(&filter.client)),
            ("server", text(&filter.server)),
            ("user", text(&filter.user)),
            ("key", text(&filter.credential_id)),
            ("tool", text(&filter.tool)),
            ("reason", text(&filter.reason)),
            ("rule", text(&filter.rule)),
            ("decision", filter.decision.map(|d| d.as_str().to_owned())),
            ("kind", filter.kind.map(|k| kind_name(k).to_owned())),
            ("since", filter.since_ms.map(|ms| ms.to_string())),
            ("until", filter.until_ms.map(|ms| ms.to_string())),
        ] {
            if let Some(value) = value {
                query.push((name, value));
            }
        }
        let mut rows: Vec<AuditRow> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = query.clone();
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor.clone()));
            }
            let page: Page<AuditRow> = self
                .get(&format!("/audit/events?{}", query_string(&pairs)))
                .await?;
            let stop = enough(&page.items);
            rows.extend(page.items);
            match page.next_cursor {
                Some(next) if !stop => cursor = Some(next),
                _ => return Ok(rows),
            }
        }
    }
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Request => "request",
        EventKind::Operator => "operator",
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)").
fn cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        last = inner.to_string();
        source = inner.source();
    }
    last
}

fn problem(base: &str, status: StatusCode, path: &str, body: &[u8]) -> RemoteError {
    match serde_json::from_slice::<Value>(body) {
        Ok(doc) if doc.get("code").is_some() => RemoteError::Problem {
            status: status.as_u16(),
            code: doc["code"].as_str().unwrap_or("unknown").to_owned(),
            detail: doc["detail"]
                .as_str()
                .or(doc["title"].as_str())
                .unwrap_or("refused")
                .to_owned(),
            path: path.to_owned(),
        },
        _ => RemoteError::Unexpected {
            url: base.to_owned(),
            what: format!(
                "HTTP {status} without a problem document; is this the admin listener \
                 (`admin_listen`)?"
            ),
        },
    }
}

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
        let mut body = json!({
            "name": new.name,
            "url": new.url,
            "credential": new.credential,
            "allow_anonymous": new.allow_anonymous,
            "allow_unknown_methods": new.allow_unknown_methods,
            "pin_action": new.pin_action,
        });
        if !new.members.is_empty() {
            body["members"] = json!(new.members);
            body["url"] = Value::Null;
        }
        self.send(Method::POST, "/servers", body).await
    }

    async fn update_server(&self, name: &str, update: ServerUpdate) -> Result<Server> {
        let mut body = json!({ "url": update.url });
        if let Some(members) = update.members {
            body["members"] = json!(members);
        }
        match update.credential {
            Some(Some(credential)) => body["credential"] = json!(credential),
            Some(None) => body["remove_credential"] = json!(true),
            None => {}
        }
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
