//! People who sign in so agents can act for them, and what their groups may reach.

use async_trait::async_trait;

use super::StoreResult;
use gatehouse_model::records::{
    AuthorizationCodeRecord, CodeRedemption, Generation, GroupConnectionRecord,
    UpstreamGrantRecord, UserRecord,
};

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

    /// Keeps a person's tokens at an upstream, replacing any they had there. Runtime data:
    /// the generation does not move.
    async fn put_upstream_grant(&self, grant: &UpstreamGrantRecord) -> StoreResult<()>;
    async fn get_upstream_grant(
        &self,
        user_id: &str,
        server: &str,
    ) -> StoreResult<Option<UpstreamGrantRecord>>;
    /// One person's grants (`Some`), or everyone's, by user then server.
    async fn list_upstream_grants(
        &self,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<UpstreamGrantRecord>>;
    /// Whether there was one to remove.
    async fn delete_upstream_grant(&self, user_id: &str, server: &str) -> StoreResult<bool>;
}
