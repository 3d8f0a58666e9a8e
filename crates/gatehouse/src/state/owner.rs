//! Who owns runtime state (sessions, tasks): the value every state backend keys on, below the
//! identity code that derives it from a caller (`identity::Principal::owner`).

use std::sync::Arc;

/// Who owns a session or a task: the client, and the person its token acts for. API keys and
/// client-credentials tokens name no person, so a client keeps its sessions across key
/// rotation; a token acting for a user reaches only that user's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner<'a> {
    pub client: Option<&'a str>,
    pub subject: Option<&'a str>,
}

/// An [`Owner`] kept beside what it owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerId {
    client: Option<Arc<str>>,
    subject: Option<Arc<str>>,
}

impl OwnerId {
    pub fn is(&self, owner: Owner<'_>) -> bool {
        self.as_owner() == owner
    }

    pub fn as_owner(&self) -> Owner<'_> {
        Owner {
            client: self.client.as_deref(),
            subject: self.subject.as_deref(),
        }
    }
}

impl From<Owner<'_>> for OwnerId {
    fn from(owner: Owner<'_>) -> Self {
        Self {
            client: owner.client.map(Arc::from),
            subject: owner.subject.map(Arc::from),
        }
    }
}
