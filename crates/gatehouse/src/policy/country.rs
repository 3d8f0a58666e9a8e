//! Country rules: allow and deny lists of ISO 3166-1 alpha-2 codes, resolved from the caller's
//! address with the configured GeoIP database ([`GeoDb`]). Deny wins; a non-empty allow list
//! admits only its countries; `unknown` decides for addresses the database places in no country
//! (private ranges, missing entries) and is `deny` unless said otherwise: fail closed.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{Facts, Policy, Refusal, geo::GeoDb};
use gatehouse_model::policy_kind::PolicyKind;

/// The compile error when the server has no database; `validate` accepts a spec that fails
/// only for this reason (the database is the server's concern, not the spec's).
pub const NEEDS_DATABASE: &str = "country policies need policy.geoip_database (a MaxMind-format \
     country database) in the server configuration";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CountrySpec {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub unknown: Unknown,
}

/// What to do when the address has no country in the database.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    #[default]
    Deny,
    Allow,
}

pub struct CountryRule {
    allow: Vec<String>,
    deny: Vec<String>,
    unknown: Unknown,
    geo: Arc<GeoDb>,
}

impl std::fmt::Debug for CountryRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountryRule")
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .field("unknown", &self.unknown)
            .finish_non_exhaustive()
    }
}

/// Two ASCII letters, returned in upper case.
fn country_code(field: &str, code: &str) -> Result<String, String> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(format!(
            "country spec: {field}: {code:?} is not an ISO 3166-1 alpha-2 country code (two letters, e.g. \"FR\")"
        ))
    }
}

fn codes(field: &str, list: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(list.len());
    for code in list {
        let code = country_code(field, code)?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    Ok(out)
}

impl CountryRule {
    /// Validates the spec, then binds it to the database (`None`: the server has none).
    pub fn new(spec: &CountrySpec, geo: Option<&Arc<GeoDb>>) -> Result<Self, String> {
        let allow = codes("allow", &spec.allow)?;
        let deny = codes("deny", &spec.deny)?;
        if allow.is_empty() && deny.is_empty() {
            return Err("a country policy needs at least one allow or deny country".into());
        }
        let geo = geo.ok_or(NEEDS_DATABASE)?.clone();
        Ok(Self {
            allow,
            deny,
            unknown: spec.unknown,
            geo,
        })
    }

    fn judge(&self, country: Option<&str>) -> Result<(), Refusal> {
        let Some(country) = country else {
            return match self.unknown {
                Unknown::Allow => Ok(()),
                Unknown::Deny => Err(Refusal::new("the caller's address has no known country")),
            };
        };
        let listed = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case(country));
        if listed(&self.deny) {
            return Err(Refusal::new(format!(
                "the caller's country ({}) is denied",
                country.to_ascii_uppercase()
            )));
        }
        if !self.allow.is_empty() && !listed(&self.allow) {
            return Err(Refusal::new(format!(
                "the caller's country ({}) is not allowed",
                country.to_ascii_uppercase()
            )));
        }
        Ok(())
    }
}

impl Policy for CountryRule {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Country
    }

    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.geo
            .with_country(facts.ip, |country| self.judge(country))
    }

    fn peek(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.check(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{geo::tests::countries, tests_support::facts_at};
    use serde_json::json;

    fn rule(spec: serde_json::Value) -> CountryRule {
        let spec: CountrySpec = serde_json::from_value(spec).unwrap();
        CountryRule::new(&spec, Some(&countries())).unwrap()
    }

    fn from(rule: &CountryRule, ip: &str) -> Result<(), Refusal> {
        let mut facts = facts_at(0);
        facts.ip = ip.parse().unwrap();
        let peeked = rule.peek(&facts);
        let checked = rule.check(&facts);
        assert_eq!(peeked, checked);
        checked
    }

    // Fixture: 192.0.2.0/24 FR, 198.51.100.0/24 DE, 203.0.113.0/24 RU, 2001:db8:1::/48 FR,
    // 100.64.0.0/10 a record without a country, 10.0.0.0/8 absent.

    #[test]
    fn allow_list_admits_only_its_countries() {
        let r = rule(json!({ "allow": ["fr", "DE"] }));
        assert!(from(&r, "192.0.2.1").is_ok());
        assert!(from(&r, "198.51.100.1").is_ok());
        let refused = from(&r, "203.0.113.1").unwrap_err();
        assert_eq!(refused.message, "the caller's country (RU) is not allowed");
    }

    #[test]
    fn deny_wins_over_allow() {
        let r = rule(json!({ "allow": ["FR", "RU"], "deny": ["RU"] }));
        assert!(from(&r, "192.0.2.1").is_ok());
        let refused = from(&r, "203.0.113.1").unwrap_err();
        assert_eq!(refused.message, "the caller's country (RU) is denied");
        let deny_only = rule(json!({ "deny": ["RU"] }));
        assert!(from(&deny_only, "198.51.100.1").is_ok());
        assert!(from(&deny_only, "203.0.113.1").is_err());
    }

    #[test]
    fn unknown_countries_are_denied_unless_allowed() {
        let closed = rule(json!({ "deny": ["RU"] }));
        for ip in ["10.1.2.3", "100.64.0.1", "2001:db8:2::1"] {
            let refused = from(&closed, ip).unwrap_err();
            assert_eq!(refused.message, "the caller's address has no known country");
        }
        let open = rule(json!({ "allow": ["FR"], "unknown": "allow" }));
        assert!(from(&open, "10.1.2.3").is_ok());
        assert!(from(&open, "100.64.0.1").is_ok());
        assert!(
            from(&open, "198.51.100.1").is_err(),
            "known and not allowed"
        );
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let r = rule(json!({ "allow": ["FR"] }));
        assert!(from(&r, "2001:db8:1::7").is_ok());
        assert!(from(&r, "::ffff:192.0.2.1").is_ok());
        assert!(from(&r, "::ffff:203.0.113.1").is_err());
    }

    #[test]
    fn specs_are_validated() {
        let build = |spec: serde_json::Value| {
            serde_json::from_value::<CountrySpec>(spec)
                .map_err(|e| e.to_string())
                .and_then(|s| CountryRule::new(&s, Some(&countries())))
        };
        for (spec, needle) in [
            (json!({ "allow": ["FRA"] }), "\"FRA\""),
            (json!({ "deny": ["F1"] }), "deny"),
            (json!({ "allow": ["é"] }), "alpha-2"),
            (json!({}), "at least one"),
            (json!({ "unknown": "allow" }), "at least one"),
            (
                json!({ "allow": ["FR"], "unknown": "maybe" }),
                "unknown variant",
            ),
            (json!({ "allow": ["FR"], "countries": [] }), "countries"),
        ] {
            let err = build(spec.clone()).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn a_database_is_required() {
        let spec = CountrySpec {
            allow: vec!["FR".into()],
            deny: vec![],
            unknown: Unknown::Deny,
        };
        let err = CountryRule::new(&spec, None).unwrap_err();
        assert!(err.contains("policy.geoip_database"), "{err}");
    }
}
