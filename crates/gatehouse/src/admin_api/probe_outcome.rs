//! What a `test-connection` probe found, shared by the HTTP, stdio and virtual-server probes
//! (in its own file so that they need not import each other).

use serde_json::Value;

/// Why the upstream could not be asked: an answer of the probe, not a failure of the API.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl From<Unreachable> for Outcome {
    fn from(why: Unreachable) -> Self {
        Outcome::Unreachable(why.0)
    }
}

/// What the probe found.
pub enum Outcome {
    /// Each tool's definition as the upstream sent it.
    Tools(Vec<Value>),
    Unreachable(String),
    /// A virtual server: its members' tools under the names the gateway lists them by, and
    /// what each member answered.
    Members {
        tools: Vec<Value>,
        members: Vec<MemberReach>,
    },
}

/// One member of a virtual server, as its probe found it.
pub struct MemberReach {
    pub server: String,
    /// Why it could not be asked; `None` when it answered.
    pub error: Option<String>,
}
