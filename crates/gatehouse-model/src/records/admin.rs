//! The admin API's own records: its tokens (with their role) and the answers it keeps for
//! retried creates (idempotency).

use serde::{Deserialize, Serialize};

use crate::names::InvalidValue;

/// What an admin token may do. Ordered: each role may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Reads everything but key material; searches and exports the audit trail; explains.
    Auditor,
    /// Changes configuration, but never sees key material and never manages admin tokens.
    Operator,
    /// Everything, including key material and admin tokens.
    Admin,
}

impl AdminRole {
    pub const ALL: [AdminRole; 3] = [AdminRole::Auditor, AdminRole::Operator, AdminRole::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Auditor => "auditor",
            AdminRole::Operator => "operator",
            AdminRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl std::str::FromStr for AdminRole {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| {
            InvalidValue::new(format!("role {text:?} must be admin, operator or auditor"))
        })
    }
}

impl std::fmt::Display for AdminRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An admin token as the store keeps it: never the secret, only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenRecord {
    pub id: String,
    pub name: String,
    pub role: AdminRole,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    /// The operator who created it (`cli:<account>` or an admin token's name).
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A create's `Idempotency-Key` as the store keeps it: claimed before the create runs, then
/// answered. `response` is sealed by the library (it may hold a secret shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub token_id: String,
    pub key: String,
    pub request_hash: String,
    /// `None` while the first request with this key is still running.
    pub answer: Option<(u16, Vec<u8>)>,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_are_ordered_by_what_they_may_do() {
        for role in AdminRole::ALL {
            assert_eq!(role.as_str().parse::<AdminRole>(), Ok(role));
        }
        assert!("root".parse::<AdminRole>().is_err());
        assert!(AdminRole::Auditor < AdminRole::Operator && AdminRole::Operator < AdminRole::Admin);
    }
}
