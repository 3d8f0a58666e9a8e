//! Operator sign-in through an OpenID provider: a session is an admin token (so the role
//! table, attribution, expiry and revocation are the token's), delivered as a cookie. Sign-ins,
//! refusals and sign-outs are operator events.

use serde_json::json;
use std::time::{Duration, Instant};

use super::{AdminService, Change, CreatedAdminToken, Operator};
use crate::{
    admin::{AdminResult, expiry},
    identity::admin_tokens,
};
use gatehouse_model::records::{AdminRole, AdminTokenRecord};

/// Admin token names are at most this long.
const MAX_NAME_CHARS: usize = 64;

impl AdminService {
    /// Opens a session for the person `by` names (`oidc:<provider>:<sub>`), shown as
    /// `session:<username>`, with `role`, for `lifetime`.
    pub async fn open_admin_session(
        &self,
        by: &Operator,
        username: &str,
        role: AdminRole,
        lifetime: Duration,
    ) -> AdminResult<CreatedAdminToken> {
        let started = Instant::now();
        let name: String = format!("session:{username}")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        let minted = admin_tokens::mint(&self.keyring)?;
        let now = (self.clock)();
        let record = AdminTokenRecord {
            id: minted.id.clone(),
            name,
            role,
            secret_hash: minted.secret_hash.to_vec(),
            created_at: now,
            created_by: by.actor().to_owned(),
            expires_at: expiry(now, Some(lifetime)),
            revoked_at: None,
            last_used_at: None,
        };
        self.store.insert_admin_token(&record).await?;
        let change = Change {
            action: "admin_session.sign_in",
            target_kind: "admin_token",
            target: record.id.clone(),
            before: None,
            after: Some(json!({
                "name": record.name,
                "role": record.role,
                "expires_at": record.expires_at,
            })),
        };
        self.record(by, change, started).await?;
        Ok(CreatedAdminToken {
            record,
            token: minted.token,
        })
    }

    /// Records a sign-in refused because none of the person's `groups` maps to a role.
    pub async fn refuse_admin_session(
        &self,
        by: &Operator,
        username: &str,
        groups: &[String],
    ) -> AdminResult<()> {
        let started = Instant::now();
        let change = Change {
            action: "admin_session.refuse",
            target_kind: "admin_session",
            target: username.to_owned(),
            before: None,
            after: Some(json!({ "groups": groups, "reason": "no_mapped_group" })),
        };
        self.record(by, change, started).await
    }

    /// Ends a session (revokes its token) on the person's request.
    pub async fn close_admin_session(&self, by: &Operator, id: &str) -> AdminResult<()> {
        let started = Instant::now();
        self.store.revoke_admin_token(id, (self.clock)()).await?;
        let change = Change {
            action: "admin_session.sign_out",
            target_kind: "admin_token",
            target: id.to_owned(),
            before: None,
            after: Some(json!({ "revoked": true })),
        };
        self.record(by, change, started).await
    }
}
