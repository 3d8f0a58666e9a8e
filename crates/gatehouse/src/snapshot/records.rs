//! Compiling stored records one at a time.
//!
//! A snapshot is built from many rows written by another process (the CLI) or by an older
//! version. If one of them cannot be compiled here (a `country` policy on a server without a
//! GeoIP database, a URL or a sealed credential that no longer parses, a tool pattern an
//! older version accepted), refusing the whole snapshot would freeze every other change,
//! revocations included, and stop the next start. So each record is compiled on its own: one
//! that fails is replaced by a deny-all for its scope (fail closed) and reported in a
//! [`ReloadReport`] that the log, `/metrics`, `/readyz` and `gatehouse status` show.
//!
//! What "its scope" means per record:
//! - a policy or guardrail: every call it would have applied to (its client, server or
//!   everything), whatever its tool filter, is refused with `rule_unavailable`;
//! - a server: the server answers `server_unavailable` (503), not `unknown_server`;
//! - a connection, a group's connection, an API key or a signing key: left out, so what it
//!   granted is not granted (no connection, an unknown key, tokens it signed refused).

use http::{HeaderName, HeaderValue, Uri};
use std::sync::Arc;

use crate::{
    policy::{CompiledPolicy, Facts, Policy, Refusal},
    secrets::Keyring,
    tokens::signing::{SigningError, SigningKeys},
};
use gatehouse_model::{
    policy_kind::PolicyKind,
    records::{PolicyRecord, RecordIssue, ServerRecord, SigningKeyRecord},
};

/// Stands in for a policy or guardrail that could not be compiled: refuses every call in the
/// record's scope, since running without the rule could allow what it was written to stop.
#[derive(Debug)]
pub struct UnloadableRule;

impl Policy for UnloadableRule {
    fn kind(&self) -> PolicyKind {
        // The first kind in evaluation order: refuse before any counter is charged.
        PolicyKind::Arguments
    }

    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.peek(facts)
    }

    fn peek(&self, _facts: &Facts<'_>) -> Result<(), Refusal> {
        // The reason stays with the operator (it may name configuration); the caller learns
        // only that a rule is out of order.
        Err(Refusal::new(
            "a rule that applies here could not be loaded; calls are refused until it is fixed",
        ))
    }

    fn unloadable(&self) -> bool {
        true
    }
}

/// The deny-all that replaces `record` (a policy or a guardrail) when it does not compile.
pub fn unloadable_rule(record: &PolicyRecord) -> CompiledPolicy {
    CompiledPolicy {
        id: Arc::from(record.id.as_str()),
        kind: PolicyKind::Arguments,
        client: record.client.clone(),
        server: record.server.clone(),
        // Not limited to the record's tools: the filter itself may be what failed.
        tools: None,
        policy: crate::policy::Rule::Stateless(Arc::new(UnloadableRule)),
    }
}

/// A server row's upstream URL and injected credential, decrypted.
pub fn compile_server(
    server: &ServerRecord,
    keyring: &Keyring,
) -> Result<(Uri, Option<(HeaderName, HeaderValue)>), String> {
    let upstream: Uri = server.url.parse().map_err(|e| format!("url: {e}"))?;
    if upstream.scheme().is_none() || upstream.authority().is_none() {
        return Err("url: not an absolute http(s) URL".into());
    }
    let credential = match (&server.credential_header, &server.credential_sealed) {
        (Some(name), Some(sealed)) => {
            let value = keyring
                .decrypt(sealed, &crate::snapshot::credential_context(&server.name))
                .map_err(|e| format!("credential: {e}"))?;
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| format!("credential header: {e}"))?;
            let mut value =
                HeaderValue::from_bytes(&value).map_err(|e| format!("credential value: {e}"))?;
            value.set_sensitive(true);
            Some((name, value))
        }
        (Some(_), None) => return Err("credential header without a credential".into()),
        _ => None,
    };
    Ok((upstream, credential))
}

/// The signing keys that decrypt and parse; each that does not is left out and reported
/// (tokens it signed are refused, and it signs nothing).
pub fn compile_signing_keys(
    records: &[SigningKeyRecord],
    keyring: &Keyring,
    issues: &mut Vec<RecordIssue>,
) -> Result<SigningKeys, SigningError> {
    let good: Vec<SigningKeyRecord> = records
        .iter()
        .filter(
            |record| match SigningKeys::build(std::slice::from_ref(record), keyring) {
                Ok(_) => true,
                Err(err) => {
                    issues.push(RecordIssue::new(
                        "signing_key",
                        record.kid.clone(),
                        err.to_string(),
                        "left out: tokens it signed are refused",
                    ));
                    false
                }
            },
        )
        .cloned()
        .collect();
    SigningKeys::build(&good, keyring)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn server(url: &str) -> ServerRecord {
        ServerRecord {
            name: "demo".into(),
            url: url.into(),
            credential_header: None,
            credential_sealed: None,
            upstream_auth: Default::default(),
            allow_anonymous: false,
            allow_unknown_methods: false,
            pin_action: gatehouse_model::pin_action::PinAction::Block,
            created_at: 0,
            stdio: None,
            members: Vec::new(),
        }
    }

    #[test]
    fn a_server_row_that_does_not_compile_says_why() {
        let keyring = Keyring::from_master(&[7; 32]);
        assert!(compile_server(&server("http://127.0.0.1:9/mcp"), &keyring).is_ok());
        let err = compile_server(&server("not a url"), &keyring).unwrap_err();
        assert!(err.starts_with("url"), "{err}");
        let mut sealed = server("http://127.0.0.1:9/mcp");
        sealed.credential_header = Some("authorization".into());
        sealed.credential_sealed = Some(vec![0; 40]);
        let err = compile_server(&sealed, &keyring).unwrap_err();
        assert!(err.starts_with("credential"), "{err}");
    }

    #[test]
    fn an_unloadable_rule_refuses_everything_in_its_scope() {
        let record = PolicyRecord {
            id: "geo".into(),
            kind: "country".into(),
            client: Some("agent".into()),
            server: None,
            tools: Some("echo".into()),
            spec: serde_json::json!({}),
            created_at: 0,
        };
        let rule = unloadable_rule(&record);
        assert!(rule.attached_to(Some("agent"), "any"));
        assert!(!rule.attached_to(Some("other"), "any"));
        assert!(rule.tools.is_none(), "not narrowed to the record's tools");
        let facts = crate::policy::tests_support::facts_at(0);
        let crate::policy::Rule::Stateless(policy) = &rule.policy else {
            panic!("the stand-in keeps no counters");
        };
        assert!(policy.check(&facts).is_err());
        assert!(rule.policy.unloadable());
    }
}
