//! Operator actions for users (who sign in so agents act for them) and group connections.

use super::{AdminError, AdminResult};
use crate::{identity::passwords, secrets, store::DynStore};
use gatehouse_model::{
    names::{GroupName, Username},
    records::{Generation, GroupConnectionRecord, UserRecord},
    tool_pattern::parse_pattern_list,
};

fn password_hash(password: &str) -> AdminResult<String> {
    if password.chars().count() < passwords::MIN_LEN {
        return Err(AdminError::Invalid(format!(
            "passwords need at least {} characters",
            passwords::MIN_LEN
        )));
    }
    Ok(passwords::hash(password)?)
}

/// The longest display name accepted, in characters.
const DISPLAY_NAME_MAX: usize = 200;

/// A display name is shown on consent pages and in the audit trail: bounded, and without
/// control characters that would rewrite a terminal or a log line.
pub fn check_display_name(name: &str) -> AdminResult<()> {
    if name.chars().count() > DISPLAY_NAME_MAX {
        return Err(AdminError::Invalid(format!(
            "display names have at most {DISPLAY_NAME_MAX} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "a display name cannot hold control characters".into(),
        ));
    }
    Ok(())
}

/// Creates a local user (with a password) or a user to be linked at first federated sign-in.
pub async fn create_user(
    store: &DynStore,
    username: &str,
    display_name: &str,
    password: Option<&str>,
    groups: Vec<String>,
) -> AdminResult<(UserRecord, Generation)> {
    Username::parse(username)?;
    GroupName::parse_all(&groups)?;
    let password_hash = password.map(password_hash).transpose()?;
    let record = UserRecord {
        id: format!("usr_{}", secrets::random_id(16)?),
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        password_hash,
        idp: None,
        idp_subject: None,
        groups,
        created_at: crate::now_ms(),
        disabled_at: None,
        last_login_at: None,
    };
    let generation = store.insert_user(&record).await?;
    Ok((record, generation))
}

pub async fn set_password(store: &DynStore, username: &str, password: &str) -> AdminResult<()> {
    let user = store.get_user(username).await?;
    // A password beside the provider would let the person in after the provider shut them out.
    if let Some(idp) = &user.idp {
        return Err(AdminError::Invalid(format!(
            "user {:?} signs in through the provider {idp:?}: it has no local password",
            user.username
        )));
    }
    let hash = password_hash(password)?;
    Ok(store.set_user_password(&user.id, &hash).await?)
}

pub async fn set_groups(
    store: &DynStore,
    username: &str,
    groups: Vec<String>,
) -> AdminResult<Generation> {
    GroupName::parse_all(&groups)?;
    let user = store.get_user(username).await?;
    Ok(store
        .update_user_profile(&user.id, &user.display_name, &groups)
        .await?)
}

pub async fn grant_group(
    store: &DynStore,
    group: &str,
    server: &str,
    tools: &str,
    resources: bool,
    prompts: bool,
) -> AdminResult<Generation> {
    GroupName::parse(group)?;
    let tools = parse_pattern_list(tools)?;
    let record = GroupConnectionRecord {
        group: group.to_owned(),
        server: server.to_owned(),
        tools: tools.into_iter().map(String::from).collect(),
        resources,
        prompts,
        created_at: crate::now_ms(),
    };
    Ok(store.upsert_group_connection(&record).await?)
}
