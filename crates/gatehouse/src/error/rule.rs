//! Which rule decided a refusal, as the audit trail records it (`AuditEvent::rule`), so the
//! trail can be searched by rule (docs/audit.md, "Which rule decided").
//!
//! The identifiers are stable: operators keep them in saved searches and alerts.

use super::GatewayError;

impl GatewayError {
    /// `policy:<id>` for a policy's refusal (also one that could not be loaded),
    /// `guardrail:<name>` for a guardrail's block, `grant` when the connection does not grant
    /// the call, `scope` when the access token's scope does not cover it, `pin` for a tool
    /// held for approval; `None` when no rule decided (authentication, the protocol, limits,
    /// the upstream).
    pub fn audit_rule(&self) -> Option<String> {
        match self {
            GatewayError::PolicyDenied(denial) => Some(format!("policy:{}", denial.rule)),
            GatewayError::RuleUnavailable { rule } => Some(format!("policy:{rule}")),
            GatewayError::GuardrailBlocked { rule, .. }
            | GatewayError::GuardrailBlockedAnswer { rule, .. } => {
                Some(format!("guardrail:{rule}"))
            }
            GatewayError::NoConnection
            | GatewayError::ToolNotGranted { .. }
            | GatewayError::FamilyNotGranted { .. } => Some("grant".to_owned()),
            GatewayError::InsufficientScope { .. } => Some("scope".to_owned()),
            GatewayError::ToolPendingApproval { .. } => Some("pin".to_owned()),
            _ => None,
        }
    }
}
