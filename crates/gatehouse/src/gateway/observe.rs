//! What a request's refusal adds to the metrics beyond its reason: the detector of a blocking
//! guardrail, the kind of a refusing policy.

use crate::{error::GatewayError, metrics::Metrics};

pub(super) fn count_refusal(metrics: &Metrics, server: Option<&str>, err: &GatewayError) {
    match err {
        GatewayError::GuardrailBlocked { detector, .. }
        | GatewayError::GuardrailBlockedAnswer { detector, .. } => {
            metrics.guardrail_finding(detector, "block");
        }
        GatewayError::PolicyDenied(denial) => {
            metrics
                .policy_denials
                .get_or_create(&crate::metrics::PolicyLabels {
                    server: server.unwrap_or("-").to_owned(),
                    kind: denial.kind.as_str(),
                })
                .inc();
        }
        _ => {}
    }
}
