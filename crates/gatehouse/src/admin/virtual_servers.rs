//! Validating a virtual server's members (ADR 0006 §4), for `add_server`, `update_server` and
//! removing a server: members exist, are not virtual themselves (no nesting), and a server a
//! virtual server names cannot be removed from under it.

use super::{AdminError, AdminResult};
use crate::store::Store;
use gatehouse_model::names::{Name, NameKind};

/// The most members one virtual server aggregates: each list request fans out to all of
/// them at once.
pub const MAX_MEMBERS: usize = 16;

/// The URL a virtual server's row carries: it names the server, never a network address.
pub fn virtual_url(server: &str) -> String {
    format!("virtual://{server}")
}

/// Checks that `members` may be the members of virtual server `server`, in the order given.
pub async fn check_members(store: &dyn Store, server: &str, members: &[String]) -> AdminResult<()> {
    if members.is_empty() {
        return Err(AdminError::Invalid(
            "a virtual server needs at least one member".into(),
        ));
    }
    if members.len() > MAX_MEMBERS {
        return Err(AdminError::Invalid(format!(
            "a virtual server has at most {MAX_MEMBERS} members, not {}",
            members.len()
        )));
    }
    let servers = store.list_servers().await?;
    for (i, member) in members.iter().enumerate() {
        Name::parse(NameKind::Server, member)?;
        if member == server {
            return Err(AdminError::Invalid(format!(
                "virtual server {server:?} cannot be its own member"
            )));
        }
        if members[..i].contains(member) {
            return Err(AdminError::Invalid(format!(
                "member {member:?} is named twice"
            )));
        }
        let Some(record) = servers.iter().find(|s| &s.name == member) else {
            return Err(AdminError::Invalid(format!(
                "member {member:?} is not a server (add it first)"
            )));
        };
        if !record.members.is_empty() {
            return Err(AdminError::Invalid(format!(
                "member {member:?} is a virtual server itself: virtual servers do not nest"
            )));
        }
    }
    if let Some(outer) = servers
        .iter()
        .find(|s| s.members.iter().any(|m| m == server))
    {
        return Err(AdminError::Invalid(format!(
            "{server:?} is a member of virtual server {:?}: virtual servers do not nest",
            outer.name
        )));
    }
    Ok(())
}

/// Refuses to remove `server` while a virtual server names it as a member.
pub async fn check_removable(store: &dyn Store, server: &str) -> AdminResult<()> {
    let naming: Vec<String> = store
        .list_servers()
        .await?
        .into_iter()
        .filter(|s| s.members.iter().any(|m| m == server))
        .map(|s| s.name)
        .collect();
    if naming.is_empty() {
        return Ok(());
    }
    Err(AdminError::Invalid(format!(
        "server {server:?} is a member of virtual server {}; remove it from their members first",
        naming
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
