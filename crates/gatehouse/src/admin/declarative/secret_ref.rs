//! Secrets by reference: a state document says where a value is (`env:NAME`, `file:PATH`),
//! never the value, so the file can live in git. Values are read when a plan is made, by a
//! [`Resolve`]: the local CLI reads its own environment and files ([`LocalResolver`]); the
//! admin API only takes values sent with the request ([`SuppliedResolver`]), never the
//! server's own environment or files, which would let a caller copy the master key or any
//! readable file into an upstream's header.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// Where a secret value is read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretRef {
    /// An environment variable of the process resolving it.
    Env(String),
    /// A file of the machine resolving it; one trailing line break is not part of the value.
    File(String),
}

impl SecretRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(format!(
                    "{text:?}: an environment variable name is letters, digits and '_', not starting with a digit"
                ));
            }
            return Ok(SecretRef::Env(name.to_owned()));
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() || path.chars().any(char::is_control) {
                return Err(format!("{text:?}: name a file after 'file:'"));
            }
            return Ok(SecretRef::File(path.to_owned()));
        }
        Err(format!(
            "a secret is given by reference, `env:NAME` or `file:PATH`, never by value (got a value of {} characters)",
            text.chars().count()
        ))
    }

    /// The conventional variable an export names for a value it cannot show:
    /// `GATEHOUSE_<KIND>_<NAME>_<FIELD>`, upper case, other characters as `_`.
    pub fn conventional(kind: &str, name: &str, field: &str) -> Self {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        SecretRef::Env(format!(
            "GATEHOUSE_{}_{name}_{}",
            kind.to_ascii_uppercase(),
            field.to_ascii_uppercase()
        ))
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SecretRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A resolved value; wiped from memory when dropped.
pub type SecretValue = Zeroizing<String>;

/// Reads the value a reference names; the error says why it could not (never a value).
pub trait Resolve: Send + Sync {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, String>;
}

/// This process's environment and files: the local CLI's resolver.
pub struct LocalResolver;

impl Resolve for LocalResolver {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, String> {
        let value = match reference {
            SecretRef::Env(name) => Zeroizing::new(
                std::env::var(name).map_err(|_| format!("{reference}: the variable is not set"))?,
            ),
            SecretRef::File(path) => {
                let mut text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("{reference}: cannot be read ({e})"))?,
                );
                let keep = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .map(str::len);
                if let Some(len) = keep {
                    text.truncate(len);
                }
                text
            }
        };
        if value.is_empty() {
            return Err(format!("{reference}: the value is empty"));
        }
        Ok(value)
    }
}

/// Values sent along with a document (the admin API), by reference text.
#[derive(Default)]
pub struct SuppliedResolver {
    values: BTreeMap<String, SecretValue>,
}

impl SuppliedResolver {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        SuppliedResolver {
            values: values
                .into_iter()
                .map(|(k, v)| (k, Zeroizing::new(v)))
                .collect(),
        }
    }
}

impl Resolve for SuppliedResolver {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, String> {
        match self.values.get(&reference.to_string()) {
            Some(value) if !value.is_empty() => Ok(value.clone()),
            Some(_) => Err(format!("{reference}: the value sent is empty")),
            None => Err(format!(
                "{reference}: no value was sent for it (the admin API reads no environment or file of the server)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_values_are_refused() {
        assert_eq!(
            SecretRef::parse("env:GH_TOKEN"),
            Ok(SecretRef::Env("GH_TOKEN".into()))
        );
        assert_eq!(
            SecretRef::parse("file:/run/secrets/gh"),
            Ok(SecretRef::File("/run/secrets/gh".into()))
        );
        let err = SecretRef::parse("Bearer ghp_abc").unwrap_err();
        assert!(
            !err.contains("ghp_abc"),
            "the value must not be echoed: {err}"
        );
        assert!(SecretRef::parse("env:1X").is_err());
        assert!(SecretRef::parse("env:").is_err());
        assert!(SecretRef::parse("file:").is_err());
    }

    #[test]
    fn conventional_names_are_environment_variables() {
        let reference = SecretRef::conventional("server", "git-hub.v2", "credential");
        assert_eq!(
            reference.to_string(),
            "env:GATEHOUSE_SERVER_GIT_HUB_V2_CREDENTIAL"
        );
        assert_eq!(SecretRef::parse(&reference.to_string()), Ok(reference));
    }

    #[test]
    fn a_file_value_loses_one_trailing_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let reference = SecretRef::File(path.display().to_string());
        assert_eq!(
            LocalResolver.resolve(&reference).unwrap().as_str(),
            "s3cret"
        );
        let missing = SecretRef::File(dir.path().join("none").display().to_string());
        assert!(
            LocalResolver
                .resolve(&missing)
                .unwrap_err()
                .contains("cannot be read")
        );
    }

    #[test]
    fn supplied_values_are_found_by_reference_text() {
        let resolver =
            SuppliedResolver::new(BTreeMap::from([("env:A".to_owned(), "value".to_owned())]));
        assert_eq!(
            resolver
                .resolve(&SecretRef::Env("A".into()))
                .unwrap()
                .as_str(),
            "value"
        );
        let err = resolver.resolve(&SecretRef::Env("B".into())).unwrap_err();
        assert!(err.contains("env:B"), "{err}");
    }
}
