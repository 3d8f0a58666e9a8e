//! Validated names: parse once at the edge (an operator's command, a registration, a claim from
//! an identity provider), then hold a value that cannot be invalid.
//!
//! Each error message is what an operator or client sees, so it says what to write instead.

use std::fmt;

/// Why a text is not a valid name, URI or id; the message is meant for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

impl InvalidValue {
    /// For the value types of this crate: the message, written for whoever typed the value.
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

/// What a [`Name`] names: it only changes the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    Server,
    Client,
    Policy,
    Guardrail,
    Group,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Server => "server",
            NameKind::Client => "client",
            NameKind::Policy => "policy",
            NameKind::Guardrail => "guardrail",
            NameKind::Group => "group",
        }
    }
}

/// A server, client, policy, guardrail or group name: these appear in URLs (`/{server}/mcp`)
/// and scopes (`mcp:{server}`), so 1-64 lower-case letters, digits, `-` or `_`, starting with
/// a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn parse(kind: NameKind, name: &str) -> Result<Self, InvalidValue> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "invalid {} name {name:?}: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit",
                kind.as_str()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A group a user belongs to: a [`Name`] of kind group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(group: &str) -> Result<Self, InvalidValue> {
        Name::parse(NameKind::Group, group).map(|name| Self(name.0))
    }

    /// Every group of a list, or the error of the first invalid one.
    pub fn parse_all(groups: &[String]) -> Result<Vec<Self>, InvalidValue> {
        groups.iter().map(|g| Self::parse(g)).collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A username: what people type, so a little wider than resource names (e-mail addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub fn parse(name: &str) -> Result<Self, InvalidValue> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@+-".contains(&b));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "invalid username {name:?}: use 1-128 lower-case letters, digits or . _ @ + -"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// RFC 8252 client kinds: which redirect URI rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationType {
    Web,
    /// A native app: loopback redirect URIs on any port, and private-use schemes.
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }
}

/// A redirect URI registration accepts (OAuth 2.1 §2.3.1, RFC 8252 §7): absolute, no fragment,
/// https — or http only on a loopback host; or, for native apps, a private-use scheme
/// (`com.example.app:/cb`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(uri: &str, application: ApplicationType) -> Result<Self, InvalidValue> {
        let bad = |why: &str| InvalidValue(format!("redirect URI {uri:?}: {why}"));
        if uri.contains('#') {
            return Err(bad("must not have a fragment"));
        }
        if let Some((scheme, rest)) = uri.split_once(':')
            && application == ApplicationType::Native
            && scheme.contains('.')
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            && !rest.is_empty()
        {
            return Ok(Self(uri.to_owned()));
        }
        let parsed: http::Uri = uri.parse().map_err(|_| bad("not a URI"))?;
        match parsed.scheme_str() {
            Some("https") if parsed.host().is_some() => Ok(Self(uri.to_owned())),
            Some("http") => {
                let host = parsed.host().unwrap_or("");
                if matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
                    Ok(Self(uri.to_owned()))
                } else {
                    Err(bad("http is only allowed on a loopback host"))
                }
            }
            _ => Err(bad(
                "use https, http on a loopback host, or (native apps) a reverse-domain scheme",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A replica's id (`replica_id`): 1-64 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicaId(String);

impl ReplicaId {
    pub fn parse(id: &str) -> Result<Self, InvalidValue> {
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "replica_id {id:?}: use 1-64 letters, digits, '.', '_' or '-'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

macro_rules! text_value {
    ($($name:ident),+) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    )+};
}

text_value!(Name, GroupName, Username, RedirectUri, ReplicaId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert!(Name::parse(NameKind::Server, "demo-1_a").is_ok());
        for bad in ["", "Demo", "a b", "-x", "a/b", &"x".repeat(65)] {
            assert!(Name::parse(NameKind::Server, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_error_names_the_kind_and_the_rule() {
        let err = Name::parse(NameKind::Policy, "Bad")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid policy name \"Bad\": use 1-64 lower-case letters, digits, '-' or '_', \
             starting with a letter or digit"
        );
        let err = GroupName::parse_all(&["ops".into(), "Ops Team".into()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid group name \"Ops Team\""),
            "{err}"
        );
    }

    #[test]
    fn usernames_allow_email_addresses_but_not_capitals() {
        assert_eq!(
            Username::parse("alice@example.com").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in ["", "Alice", "a b", &"a".repeat(129)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirect_uris_follow_the_web_and_native_rules() {
        use ApplicationType::{Native, Web};
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:8765/cb",
            "http://[::1]/cb",
        ] {
            assert!(RedirectUri::parse(ok, Web).is_ok(), "{ok}");
        }
        assert!(RedirectUri::parse("com.example.app:/cb", Native).is_ok());
        for (bad, app) in [
            ("com.example.app:/cb", Web),
            ("https://app.example/cb#frag", Web),
            ("http://app.example/cb", Native),
            ("ftp://app.example/cb", Web),
        ] {
            assert!(RedirectUri::parse(bad, app).is_err(), "{bad} as {app:?}");
        }
    }

    #[test]
    fn replica_ids_are_short_and_plain() {
        assert!(ReplicaId::parse("gw-1.eu_west").is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(ReplicaId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
