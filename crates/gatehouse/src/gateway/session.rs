//! Legacy MCP sessions: the rules are in `state/memory/sessions.rs`, behind
//! [`crate::state::SessionStore`].

pub use crate::state::{
    SessionCheck,
    memory::sessions::{DEFAULT_MAX_PER_OWNER, MemorySessions},
};
