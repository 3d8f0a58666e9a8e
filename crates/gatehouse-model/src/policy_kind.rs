//! The closed set of policy kinds (stored as text in a policy record's `kind`).

use serde::{Deserialize, Serialize};

/// Policy kinds, declared in evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Arguments,
    Ip,
    Country,
    Schedule,
    Quota,
    RateLimit,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::Arguments,
        PolicyKind::Ip,
        PolicyKind::Country,
        PolicyKind::Schedule,
        PolicyKind::Quota,
        PolicyKind::RateLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Arguments => "arguments",
            PolicyKind::Ip => "ip",
            PolicyKind::Country => "country",
            PolicyKind::Schedule => "schedule",
            PolicyKind::Quota => "quota",
            PolicyKind::RateLimit => "rate_limit",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let normalized = text.replace('-', "_");
        Self::ALL.into_iter().find(|k| k.as_str() == normalized)
    }

    /// Rate and quota refusals are "slow down" (429); the others are "not allowed" (403).
    pub fn is_throttle(self) -> bool {
        matches!(self, PolicyKind::Quota | PolicyKind::RateLimit)
    }
}
