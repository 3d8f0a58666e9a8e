//! Argument constraints on `tools/call`: conditions on values inside `params.arguments`,
//! addressed by a small JSON path (`$.readonly`, `$.filters[0].field`). A missing value fails
//! the condition unless it is marked optional: a constraint that silently passes when the
//! argument is absent would be a bypass.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Facts, Policy, Refusal};
use gatehouse_model::policy_kind::PolicyKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArgumentsSpec {
    pub rules: Vec<ArgumentRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArgumentRule {
    pub path: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Longest allowed string (in characters) or array.
    #[serde(default)]
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
struct Compiled {
    path: String,
    steps: Vec<Step>,
    rule: ArgumentRule,
    regex: Option<Regex>,
}

#[derive(Debug)]
pub struct Arguments {
    rules: Vec<Compiled>,
}

/// `$`, `.name`, `[index]`: the small JSON path used by argument rules and guardrails.
pub fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = || format!("path {path:?} must look like $.name, $.a.b or $.list[0]");
    let mut rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(bad());
            }
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(bad)?;
            let index = after[..end].parse().map_err(|_| bad())?;
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

impl Arguments {
    pub fn new(spec: &ArgumentsSpec) -> Result<Self, String> {
        if spec.rules.is_empty() {
            return Err("an arguments policy needs at least one rule".into());
        }
        let mut rules = Vec::new();
        for rule in &spec.rules {
            let has_condition = rule.equals.is_some()
                || rule.one_of.is_some()
                || rule.regex.is_some()
                || rule.min.is_some()
                || rule.max.is_some()
                || rule.max_length.is_some();
            if !has_condition {
                return Err(format!(
                    "rule for {:?} needs a condition (equals, one_of, regex, min, max, max_length)",
                    rule.path
                ));
            }
            let regex = rule
                .regex
                .as_deref()
                .map(|r| Regex::new(r).map_err(|e| format!("regex for {:?}: {e}", rule.path)))
                .transpose()?;
            rules.push(Compiled {
                path: rule.path.clone(),
                steps: parse_path(&rule.path)?,
                rule: rule.clone(),
                regex,
            });
        }
        Ok(Self { rules })
    }
}

pub fn lookup_mut<'v>(root: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get_mut(key),
        Step::Index(i) => value.get_mut(*i),
    })
}

fn lookup<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(root, |value, step| match step {
        Step::Key(key) => value.get(key),
        Step::Index(i) => value.get(*i),
    })
}

impl Compiled {
    /// `Some(why)` when the value breaks the rule.
    fn violation(&self, value: Option<&Value>) -> Option<&'static str> {
        let Some(value) = value else {
            return (!self.rule.optional).then_some("is required");
        };
        let r = &self.rule;
        if r.equals.as_ref().is_some_and(|want| want != value) {
            return Some("has a value that is not allowed");
        }
        if r.one_of.as_ref().is_some_and(|set| !set.contains(value)) {
            return Some("is not one of the allowed values");
        }
        if let Some(regex) = &self.regex {
            match value.as_str() {
                Some(text) if regex.is_match(text) => {}
                _ => return Some("does not match the required pattern"),
            }
        }
        if r.min.is_some() || r.max.is_some() {
            let Some(number) = value.as_f64() else {
                return Some("must be a number");
            };
            if r.min.is_some_and(|min| number < min) || r.max.is_some_and(|max| number > max) {
                return Some("is out of the allowed range");
            }
        }
        if let Some(max) = r.max_length {
            let length = match value {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                _ => return Some("must be a string or an array"),
            };
            if length > max {
                return Some("is too long");
            }
        }
        None
    }
}

impl Policy for Arguments {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Arguments
    }

    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        let empty = Value::Object(serde_json::Map::new());
        let arguments = facts.arguments.unwrap_or(&empty);
        for rule in &self.rules {
            if let Some(why) = rule.violation(lookup(arguments, &rule.steps)) {
                return Err(Refusal::new(format!("argument {} {why}", rule.path)));
            }
        }
        Ok(())
    }

    fn peek(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.check(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests_support::facts_at;
    use serde_json::json;

    fn policy(rules: Value) -> Arguments {
        Arguments::new(&serde_json::from_value(json!({ "rules": rules })).unwrap()).unwrap()
    }

    fn judge(p: &Arguments, args: Value) -> Result<(), Refusal> {
        let mut facts = facts_at(0);
        facts.arguments = Some(&args);
        p.check(&facts)
    }

    #[test]
    fn read_only_sql() {
        let p = policy(json!([
            { "path": "$.readonly", "equals": true },
            { "path": "$.query", "regex": "(?i)^\\s*select\\b", "max_length": 200 }
        ]));
        assert!(judge(&p, json!({ "readonly": true, "query": "SELECT 1" })).is_ok());
        let e = judge(&p, json!({ "readonly": false, "query": "SELECT 1" })).unwrap_err();
        assert_eq!(
            e.message,
            "argument $.readonly has a value that is not allowed"
        );
        assert!(
            judge(&p, json!({ "query": "SELECT 1" }))
                .unwrap_err()
                .message
                .contains("is required")
        );
        assert!(judge(&p, json!({ "readonly": true, "query": "DROP TABLE x" })).is_err());
        assert!(
            judge(
                &p,
                json!({ "readonly": true, "query": format!("SELECT {}", "x".repeat(300)) })
            )
            .is_err()
        );
        assert!(
            judge(&p, json!({ "readonly": "true", "query": "SELECT 1" })).is_err(),
            "types matter"
        );
    }

    #[test]
    fn ranges_sets_and_nested_paths() {
        let p = policy(json!([
            { "path": "$.limit", "min": 1, "max": 100 },
            { "path": "$.filters[0].field", "one_of": ["date", "amount"] },
            { "path": "$.note", "max_length": 5, "optional": true }
        ]));
        assert!(judge(&p, json!({ "limit": 10, "filters": [{ "field": "date" }] })).is_ok());
        assert!(judge(&p, json!({ "limit": 0, "filters": [{ "field": "date" }] })).is_err());
        assert!(judge(&p, json!({ "limit": 10, "filters": [{ "field": "ssn" }] })).is_err());
        assert!(judge(&p, json!({ "limit": 10, "filters": [] })).is_err());
        assert!(
            judge(
                &p,
                json!({ "limit": 10, "filters": [{ "field": "date" }], "note": "too long" })
            )
            .is_err()
        );
    }

    #[test]
    fn bad_specs() {
        let spec = |rules: Value| {
            serde_json::from_value::<ArgumentsSpec>(json!({ "rules": rules })).unwrap()
        };
        assert!(Arguments::new(&spec(json!([{ "path": "readonly", "equals": true }]))).is_err());
        assert!(
            Arguments::new(&spec(json!([{ "path": "$.a" }])))
                .unwrap_err()
                .contains("needs a condition")
        );
        assert!(Arguments::new(&spec(json!([{ "path": "$.a", "regex": "(" }]))).is_err());
        assert!(Arguments::new(&spec(json!([]))).is_err());
    }
}
