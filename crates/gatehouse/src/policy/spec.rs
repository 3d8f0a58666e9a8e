//! From stored JSON to compiled policies. Validation and compilation are the same code, so a
//! spec accepted by `gatehouse policy add` is one the server can run.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

use super::{
    CompiledPolicy, PolicyRuntime, Rule,
    arguments::{Arguments, ArgumentsSpec},
    country::{self, CountryRule, CountrySpec},
    ip::{IpRule, IpSpec},
    quota::{Quota, QuotaSpec},
    rate::{RateLimit, RateLimitSpec},
    schedule::{Schedule, ScheduleSpec},
};
use gatehouse_model::{
    names::{Name, NameKind},
    policy_kind::PolicyKind,
    records::PolicyRecord,
    tool_pattern::ToolPattern,
};

fn parse<T: DeserializeOwned>(kind: PolicyKind, spec: &Value) -> Result<T, String> {
    serde_json::from_value(spec.clone()).map_err(|e| format!("{} spec: {e}", kind.as_str()))
}

fn build(
    kind: PolicyKind,
    id: &str,
    spec: &Value,
    runtime: &PolicyRuntime,
) -> Result<Rule, String> {
    let key = spec.to_string();
    Ok(match kind {
        PolicyKind::Arguments => Rule::Stateless(Arc::new(Arguments::new(
            &parse::<ArgumentsSpec>(kind, spec)?,
        )?)),
        PolicyKind::Ip => Rule::Stateless(Arc::new(IpRule::new(&parse::<IpSpec>(kind, spec)?)?)),
        PolicyKind::Country => Rule::Stateless(Arc::new(CountryRule::new(
            &parse::<CountrySpec>(kind, spec)?,
            runtime.geo(),
        )?)),
        PolicyKind::Schedule => Rule::Stateless(Arc::new(Schedule::new(&parse::<ScheduleSpec>(
            kind, spec,
        )?)?)),
        PolicyKind::Quota => Rule::Stateful(Arc::new(Quota::new(
            &parse::<QuotaSpec>(kind, spec)?,
            runtime.quota_counters(id, &key),
        )?)),
        PolicyKind::RateLimit => Rule::Stateful(Arc::new(RateLimit::new(
            &parse::<RateLimitSpec>(kind, spec)?,
            runtime.rate_cells(id, &key),
        )?)),
    })
}

/// Checks a policy before it is stored; the error names the offending field.
///
/// A `country` spec is checked without a GeoIP database (the CLI has none): the server refuses
/// to compile it later if `policy.geoip_database` is not configured.
pub fn validate(record: &PolicyRecord) -> Result<(), String> {
    match compile(record, &PolicyRuntime::default()) {
        Ok(_) => Ok(()),
        // Reached only once the id, scope and spec have all been accepted.
        Err(reason) if reason == country::NEEDS_DATABASE => Ok(()),
        Err(reason) => Err(reason),
    }
}

/// Refuses what a server with this configuration could not compile, although the spec is
/// valid: a `country` policy needs `policy.geoip_database`.
pub fn check_runs_under(record: &PolicyRecord, geoip_configured: bool) -> Result<(), String> {
    if PolicyKind::parse(&record.kind) == Some(PolicyKind::Country) && !geoip_configured {
        return Err(format!(
            "{} (set it in the configuration the server and this command read)",
            country::NEEDS_DATABASE
        ));
    }
    Ok(())
}

pub fn compile(record: &PolicyRecord, runtime: &PolicyRuntime) -> Result<CompiledPolicy, String> {
    Name::parse(NameKind::Policy, &record.id).map_err(|e| e.to_string())?;
    let kind = PolicyKind::parse(&record.kind).ok_or_else(|| {
        let known: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
        format!(
            "unknown policy kind {:?} (one of {})",
            record.kind,
            known.join(", ")
        )
    })?;
    let tools = record
        .tools
        .as_deref()
        .map(ToolPattern::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    if kind == PolicyKind::Arguments && tools.is_none() {
        return Err("an arguments policy must name the tools it constrains (--tools)".into());
    }
    Ok(CompiledPolicy {
        id: Arc::from(record.id.as_str()),
        kind,
        client: record.client.clone(),
        server: record.server.clone(),
        tools,
        policy: build(kind, &record.id, &record.spec, runtime)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: &str, spec: Value, tools: Option<&str>) -> PolicyRecord {
        PolicyRecord {
            id: "p1".into(),
            kind: kind.into(),
            client: None,
            server: None,
            tools: tools.map(Into::into),
            spec,
            created_at: 0,
        }
    }

    #[test]
    fn every_kind_compiles_from_json() {
        let runtime =
            PolicyRuntime::default().with_geo(Some(crate::policy::geo::tests::countries()));
        for (kind, spec, tools) in [
            (
                "rate_limit",
                json!({ "requests": 60, "period": "1m", "burst": 10, "per": "key" }),
                None,
            ),
            ("rate-limit", json!({ "requests": 1, "period": "1s" }), None),
            (
                "quota",
                json!({ "limit": 1000, "window": "day", "time_zone": "Europe/Paris" }),
                None,
            ),
            (
                "ip",
                json!({ "allow": ["10.0.0.0/8", "2001:db8::/32"] }),
                None,
            ),
            (
                "country",
                json!({ "allow": ["FR", "de"], "deny": ["RU"], "unknown": "allow" }),
                None,
            ),
            (
                "schedule",
                json!({ "time_zone": "Europe/Paris", "days": ["mon", "fri"], "from": "09:00", "until": "18:00" }),
                None,
            ),
            (
                "arguments",
                json!({ "rules": [{ "path": "$.readonly", "equals": true }] }),
                Some("query"),
            ),
        ] {
            let compiled = compile(&record(kind, spec, tools), &runtime).unwrap();
            assert_eq!(compiled.policy.kind(), compiled.kind);
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = validate(&record(
            "rate_limit",
            json!({ "requests": 5, "perod": "1s" }),
            None,
        ))
        .unwrap_err();
        assert!(err.contains("perod"), "{err}");
        let err = validate(&record("ip", json!({ "allow": ["10.0.0.0/33"] }), None)).unwrap_err();
        assert!(err.starts_with("ip spec"), "{err}");
        let err = validate(&record("weather", json!({}), None)).unwrap_err();
        assert!(err.contains("unknown policy kind"), "{err}");
        let err = validate(&record(
            "arguments",
            json!({ "rules": [{ "path": "$.a", "equals": 1 }] }),
            None,
        ))
        .unwrap_err();
        assert!(err.contains("--tools"), "{err}");
        let err = validate(&record("country", json!({ "allow": ["FRA"] }), None)).unwrap_err();
        assert!(err.contains("FRA"), "{err}");
    }

    #[test]
    fn country_specs_validate_without_a_database_but_need_one_to_compile() {
        let rec = record("country", json!({ "deny": ["RU"] }), None);
        validate(&rec).unwrap();
        let err = compile(&rec, &PolicyRuntime::default()).unwrap_err();
        assert!(err.contains("policy.geoip_database"), "{err}");
        let mut bad_id = rec.clone();
        bad_id.id = "not a name".into();
        assert!(validate(&bad_id).is_err(), "other checks still apply");
    }

    #[test]
    fn a_country_policy_is_refused_where_no_database_is_configured() {
        let rec = record("country", json!({ "deny": ["RU"] }), None);
        let err = check_runs_under(&rec, false).unwrap_err();
        assert!(err.contains("policy.geoip_database"), "{err}");
        check_runs_under(&rec, true).unwrap();
        check_runs_under(&record("ip", json!({ "allow": [] }), None), false).unwrap();
    }

    #[test]
    fn counters_survive_recompilation_of_the_same_spec() {
        let runtime = PolicyRuntime::default();
        let rec = record("rate_limit", json!({ "requests": 1, "period": "1h" }), None);
        let facts = crate::policy::tests_support::facts_at(1_000_000);
        let stateful = |compiled: CompiledPolicy| match compiled.policy {
            Rule::Stateful(policy) => policy,
            Rule::Stateless(_) => panic!("a rate limit keeps counters"),
        };
        let first = stateful(compile(&rec, &runtime).unwrap());
        crate::policy::tests_support::check(&*first, &facts).unwrap();
        let again = stateful(compile(&rec, &runtime).unwrap());
        assert!(crate::policy::tests_support::check(&*again, &facts).is_err());
    }
}
