//! What a changed tool definition does (a server record's `pin_action`).

use serde::{Deserialize, Serialize};

use crate::names::InvalidValue;

/// `block` hides the changed tool and refuses its calls until approved; `warn` lets it pass and
/// records it; `off` does not pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinAction {
    Block,
    Warn,
    Off,
}

impl PinAction {
    pub const ALL: [PinAction; 3] = [PinAction::Block, PinAction::Warn, PinAction::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            PinAction::Block => "block",
            PinAction::Warn => "warn",
            PinAction::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

impl std::str::FromStr for PinAction {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or_else(|| {
            InvalidValue::new(format!("pin action {text:?} must be block, warn or off"))
        })
    }
}

impl std::fmt::Display for PinAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_text_round_trips_and_nothing_else_parses() {
        for action in PinAction::ALL {
            assert_eq!(action.as_str().parse::<PinAction>(), Ok(action));
            assert_eq!(
                serde_json::to_value(action).unwrap(),
                serde_json::json!(action.as_str())
            );
        }
        let err = "Block".parse::<PinAction>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "pin action \"Block\" must be block, warn or off"
        );
        assert_eq!(PinAction::parse(""), None);
    }
}
