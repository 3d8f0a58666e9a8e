//! `[[oauth.workload_issuers]]`: platforms whose workload tokens (Kubernetes service-account
//! tokens, CI OIDC tokens, SPIFFE JWT-SVIDs) authenticate machines as Gatehouse clients, by
//! ordered issuer + subject rules; and the checks of the enterprise IdPs that accept ID-JAGs.
//! Documented in docs/configuration.md and docs/oauth.md (guides 6 and 7).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{ConfigError, IdentityProviderConfig};

/// A platform whose signed workload tokens Gatehouse accepts, and which client each one is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIssuerConfig {
    /// Short name, in logs and the audit trail.
    pub name: String,
    /// Must equal the tokens' `iss` exactly.
    pub issuer: String,
    /// Where its keys are; default: `jwks_uri` from its discovery document. A SPIFFE trust
    /// domain's bundle endpoint has no discovery, so it needs this.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Required `aud`; default: Gatehouse's token endpoint URL (`{public_url}/oauth/token`).
    #[serde(default)]
    pub audience: Option<String>,
    /// Tried in order; the first whose subject and claims match names the client. A token no
    /// rule matches is refused.
    pub rules: Vec<WorkloadRule>,
}

/// One mapping: tokens whose `sub` matches `subject` (and every listed claim its pattern) are
/// the client `client`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRule {
    /// Pattern for `sub`; `*` stands for any run of characters (`system:serviceaccount:agents:*`).
    pub subject: String,
    /// Further string claims and their patterns, all of which must match (GitHub Actions:
    /// `repository`, `ref`, `environment`, …). A claim that is absent or not a string fails.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The Gatehouse client the workload is; its connections bound what the token reaches.
    pub client: String,
}

impl WorkloadRule {
    /// Whether a token with `subject` and string claims looked up by `claim` matches.
    pub fn matches<'a>(&self, subject: &str, claim: impl Fn(&str) -> Option<&'a str>) -> bool {
        glob(&self.subject, subject)
            && self
                .claims
                .iter()
                .all(|(name, pattern)| claim(name).is_some_and(|value| glob(pattern, value)))
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// TLS, except for this host's loopback (tests, a sidecar): the keys that authenticate
/// machines must not arrive over a channel anyone on the path can rewrite.
fn secure_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

fn invalid(text: String) -> ConfigError {
    ConfigError::Invalid(text)
}

/// Checks `[[oauth.workload_issuers]]` and the ID-JAG settings of `[[oauth.providers]]`.
pub fn validate(
    issuers: &[WorkloadIssuerConfig],
    providers: &[IdentityProviderConfig],
    own_issuer: &str,
) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    let mut iss = std::collections::BTreeSet::new();
    for issuer in issuers {
        let at = format!("oauth.workload_issuers {:?}", issuer.name);
        if issuer.name.is_empty() || !names.insert(issuer.name.as_str()) {
            return Err(invalid(format!("{at}: a name is required, once each")));
        }
        if issuer.issuer.is_empty() || !iss.insert(issuer.issuer.as_str()) {
            return Err(invalid(format!(
                "{at}: issuer is required, and each issuer is listed once"
            )));
        }
        if issuer.issuer.trim_end_matches('/') == own_issuer {
            return Err(invalid(format!("{at}: that is Gatehouse's own issuer")));
        }
        if issuer.jwks_uri.is_none() && !secure_url(&issuer.issuer) {
            return Err(invalid(format!(
                "{at}: keys are found through the issuer's discovery, so it must be an https URL; otherwise set jwks_uri"
            )));
        }
        if let Some(uri) = &issuer.jwks_uri
            && !secure_url(uri)
        {
            return Err(invalid(format!(
                "{at}: jwks_uri must be an https URL (http only on loopback)"
            )));
        }
        if issuer.audience.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(format!("{at}: audience must not be empty")));
        }
        if issuer.rules.is_empty() {
            return Err(invalid(format!(
                "{at}: rules are required (a token no rule maps is refused)"
            )));
        }
        for rule in &issuer.rules {
            if rule.subject.is_empty() {
                return Err(invalid(format!("{at}: a rule's subject must not be empty")));
            }
            gatehouse_model::names::Name::parse(
                gatehouse_model::names::NameKind::Client,
                &rule.client,
            )
            .map_err(|e| invalid(format!("{at}: rule client {:?}: {e}", rule.client)))?;
            if let Some((claim, _)) = rule
                .claims
                .iter()
                .find(|(c, p)| c.is_empty() || p.is_empty() || ["sub", "iss"].contains(&c.as_str()))
            {
                return Err(invalid(format!(
                    "{at}: rule claim {claim:?}: name a claim other than sub or iss, with a non-empty pattern"
                )));
            }
        }
    }
    for provider in providers.iter().filter(|p| p.accept_id_jag) {
        if !secure_url(&provider.issuer) {
            return Err(invalid(format!(
                "oauth.providers {}: accept_id_jag needs an https issuer (its keys authenticate people)",
                provider.name
            )));
        }
    }
    if let Some(provider) = providers
        .iter()
        .find(|p| p.link_by_email && !p.accept_id_jag)
    {
        return Err(invalid(format!(
            "oauth.providers {}: link_by_email applies to ID-JAGs only; set accept_id_jag too",
            provider.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "system:serviceaccount:agents:*",
            "system:serviceaccount:agents:bot"
        ));
        assert!(!glob(
            "system:serviceaccount:agents:*",
            "system:serviceaccount:other:bot"
        ));
        assert!(glob(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/tools:ref:refs/heads/main"
        ));
        assert!(!glob(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/tools:ref:refs/heads/dev"
        ));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(!glob("exact", "inexact"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*bc", "abc*"));
        assert!(!glob("ab*ba", "aba"), "the ends may not overlap");
    }

    #[test]
    fn a_rule_needs_every_claim() {
        let rule = WorkloadRule {
            subject: "repo:acme/tools:*".into(),
            claims: [("ref".to_owned(), "refs/heads/main".to_owned())].into(),
            client: "ci".into(),
        };
        let main = |c: &str| (c == "ref").then_some("refs/heads/main");
        let none = |_: &str| None;
        assert!(rule.matches("repo:acme/tools:ref:refs/heads/main", main));
        assert!(!rule.matches("repo:acme/tools:ref:refs/heads/main", none));
        assert!(!rule.matches("repo:acme/other:ref:refs/heads/main", main));
    }

    #[test]
    fn only_tls_or_loopback() {
        assert!(secure_url("https://token.actions.githubusercontent.com"));
        assert!(secure_url("http://127.0.0.1:8080/jwks"));
        assert!(secure_url("http://[::1]:8080/jwks"));
        assert!(secure_url("http://localhost/jwks"));
        assert!(!secure_url("http://idp.example/jwks"));
        assert!(!secure_url("spiffe://example.org"));
    }

    fn issuer(changes: serde_json::Value) -> WorkloadIssuerConfig {
        let mut value = serde_json::json!({
            "name": "cluster",
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "rules": [{ "subject": "system:serviceaccount:agents:*", "client": "agents" }],
        });
        for (k, v) in changes.as_object().unwrap() {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn refusal(issuers: &[WorkloadIssuerConfig]) -> String {
        match validate(issuers, &[], "https://gatehouse.example") {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn workload_issuers_are_checked_at_load() {
        assert_eq!(refusal(&[issuer(serde_json::json!({}))]), "");
        let cases = [
            (
                serde_json::json!({"issuer": "http://cluster.internal"}),
                "must be an https URL",
            ),
            (
                serde_json::json!({"jwks_uri": "http://keys.internal/jwks"}),
                "jwks_uri must be an https URL",
            ),
            (serde_json::json!({"rules": []}), "rules are required"),
            (
                serde_json::json!({"rules": [{"subject": "x", "client": "Not A Name"}]}),
                "rule client",
            ),
            (
                serde_json::json!({"rules": [{"subject": "", "client": "agents"}]}),
                "subject must not be empty",
            ),
            (
                serde_json::json!({"rules": [{"subject": "x", "claims": {"sub": "y"}, "client": "agents"}]}),
                "other than sub or iss",
            ),
            (
                serde_json::json!({"audience": ""}),
                "audience must not be empty",
            ),
            (
                serde_json::json!({"issuer": "https://gatehouse.example/"}),
                "Gatehouse's own issuer",
            ),
        ];
        for (changes, expected) in cases {
            let text = refusal(&[issuer(changes.clone())]);
            assert!(text.contains(expected), "{changes}: {text}");
        }
        let twice = refusal(&[
            issuer(serde_json::json!({})),
            issuer(serde_json::json!({"name": "other"})),
        ]);
        assert!(twice.contains("each issuer is listed once"), "{twice}");
        // A SPIFFE trust domain has no discovery: with its bundle endpoint it is fine.
        let spiffe = issuer(serde_json::json!({
            "issuer": "spiffe://example.org",
            "jwks_uri": "https://spire-bundle.example.org/",
        }));
        assert_eq!(refusal(&[spiffe]), "");
    }

    #[test]
    fn id_jag_settings_are_checked_at_load() {
        let provider = |changes: serde_json::Value| -> IdentityProviderConfig {
            let mut value = serde_json::json!({
                "name": "corp", "issuer": "https://idp.example", "client_id": "g",
                "client_secret_env": "S",
            });
            for (k, v) in changes.as_object().unwrap() {
                value[k] = v.clone();
            }
            serde_json::from_value(value).unwrap()
        };
        let check = |p: IdentityProviderConfig| match validate(&[], &[p], "https://g.example") {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            check(provider(
                serde_json::json!({"accept_id_jag": true, "link_by_email": true})
            )),
            ""
        );
        assert!(
            check(provider(serde_json::json!({"link_by_email": true})))
                .contains("set accept_id_jag")
        );
        assert!(
            check(provider(
                serde_json::json!({"accept_id_jag": true, "issuer": "http://idp.example"})
            ))
            .contains("https issuer")
        );
    }
}
