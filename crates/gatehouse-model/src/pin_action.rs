//! What a changed tool definition does (a server record's `pin_action`).

/// `block` hides the changed tool and refuses its calls until approved; `warn` lets it pass and
/// records it; `off` does not pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAction {
    Block,
    Warn,
    Off,
}

impl PinAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "block" => Some(PinAction::Block),
            "warn" => Some(PinAction::Warn),
            "off" => Some(PinAction::Off),
            _ => None,
        }
    }
}
