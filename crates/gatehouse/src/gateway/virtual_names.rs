//! A virtual server's names and cursors (ADR 0006 §4): each member's tool or prompt shown as
//! `{member}__{name}`, or `{prefix}_{hash8}` when that would not fit the
//! `^[a-zA-Z0-9_-]{1,64}$` rule clients enforce; and the merged list's cursor, which holds
//! each member's own.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest name clients accept.
const MAX_NAME: usize = 64;
/// The longest cursor a client may send back: 16 members' cursors of a few hundred bytes.
const MAX_CURSOR: usize = 16 * 1024;

/// The name a member's tool or prompt has on the virtual server.
pub fn exposed(member: &str, name: &str) -> String {
    let plain = format!("{member}__{name}");
    if plain.len() <= MAX_NAME && plain.bytes().all(allowed) {
        return plain;
    }
    let digest = Sha256::digest(format!("{member}\0{name}").as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // The readable part keeps what it can of the plain name, so a person still sees whose
    // tool it is; the hash makes it unique.
    let prefix: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii() && allowed(c as u8) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME - 9)
        .collect();
    format!("{prefix}_{hash}")
}

/// Whether `name` has the shape of a hashed name (`_` and 8 hex digits at the end). Such a
/// name may also be the plain name of a tool that happens to end that way, so the caller
/// looks it up in the member's list before taking it as plain.
pub fn may_be_hashed(name: &str) -> bool {
    let bytes = name.as_bytes();
    // Bytes, not a `str` slice: a caller's name may hold any character at any place.
    let tail = bytes
        .len()
        .checked_sub(9)
        .filter(|&at| at > 0)
        .and_then(|at| bytes.get(at..));
    name.len() <= MAX_NAME
        && matches!(tail, Some([b'_', hex @ ..])
            if hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where an exposed name points: the member whose prefix it carries (the longest, since a
/// member's name may itself contain `__`), and the original name when the name is the plain
/// form. `None` for the original when the name was hashed: the caller looks it up in the
/// member's list.
pub fn resolve<'m>(members: &'m [impl AsRef<str>], exposed_name: &str) -> Option<Target<'m>> {
    let member = members
        .iter()
        .map(AsRef::as_ref)
        .filter(|m| {
            exposed_name.len() > m.len() + 2
                && exposed_name.starts_with(m)
                && exposed_name[m.len()..].starts_with("__")
        })
        .max_by_key(|m| m.len())
        .or_else(|| {
            // A hashed name whose readable prefix was cut inside the member's name.
            members
                .iter()
                .map(AsRef::as_ref)
                .find(|m| exposed_name.starts_with(&format!("{m}_")[..m.len().min(MAX_NAME - 9)]))
        })?;
    let original = exposed_name
        .strip_prefix(member)
        .and_then(|rest| rest.strip_prefix("__"))
        .filter(|original| exposed(member, original) == exposed_name);
    Some(Target {
        member,
        original: original.map(str::to_owned),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub struct Target<'m> {
    pub member: &'m str,
    pub original: Option<String>,
}

/// Each member still to be paged and its own cursor (`None`: its first page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedCursor {
    #[serde(rename = "m")]
    pub members: Vec<(String, Option<String>)>,
}

impl MergedCursor {
    /// Encoded, not sealed: every page's hops are authorised per member, so a forged cursor
    /// reaches nothing the caller could not ask for directly.
    pub fn encode(&self) -> String {
        B64.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The cursor a client sent back; `None` when it is not one Gatehouse made for one of
    /// `members`.
    pub fn decode(text: &str, members: &[impl AsRef<str>]) -> Option<Self> {
        if text.len() > MAX_CURSOR {
            return None;
        }
        let bytes = B64.decode(text).ok()?;
        let cursor: MergedCursor = serde_json::from_slice(&bytes).ok()?;
        let known = cursor
            .members
            .iter()
            .all(|(m, _)| members.iter().any(|k| k.as_ref() == m));
        (known && !cursor.members.is_empty()).then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_valid_name_is_prefixed_with_its_member_and_resolves_back() {
        assert_eq!(exposed("github", "create_issue"), "github__create_issue");
        let members = ["github", "jira"];
        assert_eq!(
            resolve(&members, "github__create_issue"),
            Some(Target {
                member: "github",
                original: Some("create_issue".into())
            })
        );
        assert_eq!(resolve(&members, "gitlab__create_issue"), None);
    }

    #[test]
    fn a_name_too_long_or_outside_the_rule_is_hashed_deterministically_within_64() {
        let long = "x".repeat(80);
        let hashed = exposed("files", &long);
        assert!(hashed.len() <= 64, "{hashed}");
        assert!(hashed.bytes().all(allowed), "{hashed}");
        assert_eq!(hashed, exposed("files", &long), "deterministic");
        assert_ne!(hashed, exposed("files", &"x".repeat(81)), "unique");
        let dotted = exposed("files", "read.file");
        assert!(dotted.starts_with("files__read_file_"), "{dotted}");
        // Hashed names name their member; the original is looked up in its list (the name
        // may also be a plain one that ends the same way, which is the fallback).
        assert!(may_be_hashed(&dotted), "{dotted}");
        assert!(!may_be_hashed("files__read_file"));
        assert_eq!(
            resolve(&["files"], &dotted).map(|t| t.member),
            Some("files")
        );
        // The plain form of a name that is hashed is not accepted for it.
        assert_eq!(
            resolve(&["files"], "files__read.file").map(|t| t.original),
            Some(None)
        );
    }

    #[test]
    fn the_hashed_shape_is_read_from_bytes_whatever_characters_the_name_holds() {
        assert!(
            may_be_hashed("f_0123abcd"),
            "the shortest: one byte before the tail"
        );
        assert!(!may_be_hashed("_0123abcd"), "nothing before the underscore");
        assert!(
            !may_be_hashed("files_0123ABCD"),
            "upper-case hex is not Gatehouse's"
        );
        for name in ["é_0123abc", "ab_0123abcé", "名前_0123abcd名", "é", ""] {
            assert!(!may_be_hashed(name), "{name:?}");
        }
        assert!(may_be_hashed("名前_0123abcd"));
        assert!(!may_be_hashed(&format!(
            "{}_0123abcd",
            "x".repeat(MAX_NAME)
        )));
    }

    #[test]
    fn a_member_whose_name_holds_two_underscores_wins_over_a_shorter_prefix() {
        let members = ["a", "a__b"];
        assert_eq!(
            resolve(&members, "a__b__tool").map(|t| t.member),
            Some("a__b")
        );
    }

    #[test]
    fn a_cursor_round_trips_and_refuses_members_it_does_not_know() {
        let cursor = MergedCursor {
            members: vec![("a".into(), Some("p2".into())), ("b".into(), None)],
        };
        let text = cursor.encode();
        assert_eq!(MergedCursor::decode(&text, &["a", "b"]), Some(cursor));
        assert_eq!(MergedCursor::decode(&text, &["a"]), None);
        assert_eq!(MergedCursor::decode("not base64!", &["a"]), None);
    }
}
