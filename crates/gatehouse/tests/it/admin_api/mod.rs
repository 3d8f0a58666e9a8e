//! The admin API (`/admin/api/v1` on the admin listener): its guard, problem documents,
//! pagination, idempotency and entities, driven over HTTP as an operator's tool would.

mod audit;
mod edits;
mod entities;
mod guard;
mod openapi;
mod policy_replace;
mod replicas;
mod roles;
mod state;
mod tool_pin_review;
mod upstream_auth;
mod virtual_servers;

use crate::helpers::TestApp;
use gatehouse::{
    Config,
    admin::{AdminService, Operator},
};
use gatehouse_model::records::AdminRole;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

pub struct AdminApi {
    pub app: TestApp,
    pub base: String,
}

impl AdminApi {
    pub async fn start() -> AdminApi {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> AdminApi {
        let app = TestApp::start_with(|config| {
            config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
            adjust(config);
        })
        .await;
        let base = format!("http://{}", app.server.admin_addr.unwrap());
        AdminApi { app, base }
    }

    pub fn service(&self) -> AdminService {
        AdminService::new(
            self.app.store.clone(),
            self.app.keyring.clone(),
            self.app.server.state.audit.clone(),
        )
    }

    /// A fresh token with `role`, as `gatehouse admin-tokens create` makes one.
    pub async fn token(&self, role: AdminRole) -> String {
        let by = Operator::cli("setup", None).unwrap();
        let name = format!("{role}-token");
        self.service()
            .create_admin_token(&by, &name, role, None)
            .await
            .unwrap()
            .token
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self
            .app
            .http
            .request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> RequestBuilder {
        self.request(Method::GET, path, Some(token))
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> RequestBuilder {
        self.request(Method::POST, path, Some(token)).json(body)
    }
}

/// Status and JSON body (null when empty; a string when not one JSON value, as an export).
pub async fn answer(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}
