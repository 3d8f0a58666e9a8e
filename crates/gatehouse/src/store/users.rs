//! People who sign in so agents can act for them, and what their groups may reach.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Generation, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// argon2id PHC string (local users).
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Upstream OpenID provider and subject (federated users).
    pub idp: Option<String>,
    pub idp_subject: Option<String>,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConnectionRecord {
    pub group: String,
    pub server: String,
    pub tools: Vec<String>,
    pub resources: bool,
    pub prompts: bool,
    pub created_at: i64,
}

/// An authorization code as stored (the code itself only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_hash: Vec<u8>,
    pub client: String,
    pub subject: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// What redeeming it issued: revoked if the code is presented again.
    pub family: Option<String>,
    pub access_jti: Option<String>,
    pub access_expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use, now consumed.
    Fresh(AuthorizationCodeRecord),
    /// Used before: a replay (the record says what it issued, to revoke).
    Replayed(AuthorizationCodeRecord),
    /// Unknown or expired.
    Invalid,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<Generation>;
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    async fn get_user(&self, id: &str) -> StoreResult<UserRecord>;
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn find_user_by_idp(&self, idp: &str, subject: &str) -> StoreResult<Option<UserRecord>>;
    /// Replaces groups and display name (a federated user's, at each sign-in).
    async fn update_user_profile(
        &self,
        id: &str,
        display_name: &str,
        groups: &[String],
    ) -> StoreResult<Generation>;
    async fn set_user_password(&self, id: &str, password_hash: &str) -> StoreResult<()>;
    async fn set_user_disabled(&self, id: &str, at: Option<i64>) -> StoreResult<Generation>;
    async fn record_login(&self, id: &str, at: i64) -> StoreResult<()>;

    async fn upsert_group_connection(
        &self,
        connection: &GroupConnectionRecord,
    ) -> StoreResult<Generation>;
    async fn list_group_connections(&self) -> StoreResult<Vec<GroupConnectionRecord>>;
    async fn delete_group_connection(&self, group: &str, server: &str) -> StoreResult<Generation>;

    async fn insert_authorization_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()>;
    /// Consumes the code atomically (exactly one caller sees `Fresh`).
    async fn redeem_authorization_code(
        &self,
        code_hash: &[u8],
        now: i64,
    ) -> StoreResult<CodeRedemption>;
    /// Records what a redeemed code issued.
    async fn record_code_issue(
        &self,
        code_hash: &[u8],
        family: Option<&str>,
        access_jti: &str,
        access_expires_at: i64,
    ) -> StoreResult<()>;
}
