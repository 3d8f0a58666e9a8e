//! The service's changes to admin tokens: who may use the admin API, and as what role.

use serde_json::json;
use std::time::{Duration, Instant};

use super::{AdminService, Change, Operator};
use crate::{
    admin::{AdminError, AdminResult, expiry},
    identity::admin_tokens,
};
use gatehouse_model::records::{AdminRole, AdminTokenRecord};

/// A created admin token: the record and the token itself, shown once.
#[derive(Debug)]
pub struct CreatedAdminToken {
    pub record: AdminTokenRecord,
    pub token: String,
}

fn summary(r: &AdminTokenRecord) -> serde_json::Value {
    json!({
        "name": r.name,
        "role": r.role,
        "expires_at": r.expires_at,
        "revoked_at": r.revoked_at,
    })
}

impl AdminService {
    /// Creates an admin token with `role`, valid for `expires_in` (none: until revoked).
    pub async fn create_admin_token(
        &self,
        by: &Operator,
        name: &str,
        role: AdminRole,
        expires_in: Option<Duration>,
    ) -> AdminResult<CreatedAdminToken> {
        let started = Instant::now();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AdminError::Invalid(format!(
                "admin token name {name:?}: give 1-64 printable characters"
            )));
        }
        if expires_in == Some(Duration::ZERO) {
            return Err(AdminError::Invalid(
                "expiry must be longer than zero (the token would be expired when created)".into(),
            ));
        }
        let minted = admin_tokens::mint(&self.keyring)?;
        let now = (self.clock)();
        let record = AdminTokenRecord {
            id: minted.id.clone(),
            name: name.to_owned(),
            role,
            secret_hash: minted.secret_hash.to_vec(),
            created_at: now,
            created_by: by.actor().to_owned(),
            expires_at: expiry(now, expires_in),
            revoked_at: None,
            last_used_at: None,
        };
        self.store.insert_admin_token(&record).await?;
        let change = Change {
            action: "admin_token.create",
            target_kind: "admin_token",
            target: record.id.clone(),
            before: None,
            after: Some(summary(&record)),
        };
        self.record(by, change, started).await?;
        Ok(CreatedAdminToken {
            record,
            token: minted.token,
        })
    }

    pub async fn revoke_admin_token(&self, by: &Operator, id: &str) -> AdminResult<()> {
        let started = Instant::now();
        let before = self.store.get_admin_token(id).await?;
        self.store.revoke_admin_token(id, (self.clock)()).await?;
        let after = self.store.get_admin_token(id).await.ok();
        let change = Change {
            action: "admin_token.revoke",
            target_kind: "admin_token",
            target: id.to_owned(),
            before: Some(summary(&before)),
            after: after.as_ref().map(summary),
        };
        self.record(by, change, started).await
    }
}
