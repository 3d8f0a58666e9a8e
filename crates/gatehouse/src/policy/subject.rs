//! Whom a stateful policy counts: the subject its `per` names in a request's facts, handed to
//! the counter backends (`state`) as a [`CounterSubject`], so the backends never see policies.

use super::{Facts, Per};
use crate::state::{CounterSubject, KeyHasher, SubjectKey};

impl Per {
    /// The key of this subject in `facts`: the same as `SubjectKey::of_text` of
    /// [`Per::subject`], without building the text.
    pub fn key(self, facts: &Facts<'_>) -> SubjectKey {
        let mut h = KeyHasher::new();
        let anonymous = || facts.client.unwrap_or("anonymous");
        match self {
            Per::Client => h.bytes(b"client:").bytes(anonymous().as_bytes()),
            Per::Key => match facts.key_id {
                Some(key) => h.bytes(b"key:").bytes(key.as_bytes()),
                None => h.bytes(b"client:").bytes(anonymous().as_bytes()),
            },
            Per::User => h.bytes(b"user:").bytes(
                facts
                    .user
                    .or(facts.client)
                    .unwrap_or("anonymous")
                    .as_bytes(),
            ),
            Per::Ip => {
                h.bytes(b"ip:");
                // Writing to a hasher cannot fail.
                let _ = std::fmt::Write::write_fmt(&mut h, format_args!("{}", facts.ip));
                &mut h
            }
            Per::Tool => h
                .bytes(b"tool:")
                .bytes(facts.tool.unwrap_or("-").as_bytes()),
            Per::Global => h.bytes(b"global"),
        };
        h.finish()
    }
}

/// The subject `per` names in `facts`.
#[derive(Debug, Clone, Copy)]
pub struct PerSubject<'a> {
    per: Per,
    facts: &'a Facts<'a>,
}

impl<'a> PerSubject<'a> {
    pub fn of(per: Per, facts: &'a Facts<'a>) -> Self {
        Self { per, facts }
    }
}

impl CounterSubject for PerSubject<'_> {
    fn key(&self) -> SubjectKey {
        self.per.key(self.facts)
    }

    fn text(&self) -> String {
        self.per.subject(self.facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{policy::tests_support::facts_at, state::SubjectKey};

    #[test]
    fn keys_match_the_subject_text_for_every_kind() {
        let mut facts = facts_at(0);
        for per in [
            Per::Client,
            Per::Key,
            Per::User,
            Per::Ip,
            Per::Tool,
            Per::Global,
        ] {
            assert_eq!(
                per.key(&facts),
                SubjectKey::of_text(&per.subject(&facts)),
                "{per:?}"
            );
        }
        facts.key_id = None;
        facts.ip = "2001:db8::1".parse().unwrap();
        for per in [Per::Key, Per::Ip] {
            assert_eq!(per.key(&facts), SubjectKey::of_text(&per.subject(&facts)));
        }
        assert_ne!(Per::Client.key(&facts), Per::Tool.key(&facts));
    }
}
