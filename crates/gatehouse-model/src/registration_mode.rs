//! Who may register an OAuth client dynamically (RFC 7591): `oauth.registration`.

use serde::{Deserialize, Serialize};

use crate::names::InvalidValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum RegistrationMode {
    /// No registration endpoint.
    #[default]
    Off,
    /// Anyone may register a public client.
    Open,
    /// Registration needs the initial access token whose SHA-256 is configured.
    Token,
}

impl RegistrationMode {
    pub const ALL: [RegistrationMode; 3] = [
        RegistrationMode::Off,
        RegistrationMode::Open,
        RegistrationMode::Token,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Off => "off",
            RegistrationMode::Open => "open",
            RegistrationMode::Token => "token",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == text)
    }
}

impl std::str::FromStr for RegistrationMode {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| {
            InvalidValue::new(format!(
                "oauth.registration {text:?} must be off, open or token"
            ))
        })
    }
}

impl TryFrom<String> for RegistrationMode {
    type Error = InvalidValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<RegistrationMode> for &'static str {
    fn from(mode: RegistrationMode) -> Self {
        mode.as_str()
    }
}

impl std::fmt::Display for RegistrationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_text_round_trips_and_nothing_else_parses() {
        for mode in RegistrationMode::ALL {
            let json = serde_json::to_value(mode).unwrap();
            assert_eq!(json, serde_json::json!(mode.as_str()));
            assert_eq!(
                serde_json::from_value::<RegistrationMode>(json).unwrap(),
                mode
            );
        }
        let err = serde_json::from_value::<RegistrationMode>(serde_json::json!("Open"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("oauth.registration \"Open\" must be off, open or token"),
            "{err}"
        );
    }
}
