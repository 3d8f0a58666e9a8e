//! Operator actions for users (who sign in so agents act for them) and group connections.

use super::{AdminError, AdminResult, validate_name};
use crate::{
    grants::parse_pattern_list,
    identity::passwords,
    secrets,
    store::{DynStore, Generation, GroupConnectionRecord, UserRecord},
};

/// Usernames: what people type, so a little wider than resource names (e-mail addresses).
pub fn validate_username(name: &str) -> AdminResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid username {name:?}: use 1-128 lower-case letters, digits or . _ @ + -"
        )))
    }
}

pub fn validate_groups(groups: &[String]) -> AdminResult<()> {
    groups.iter().try_for_each(|g| validate_name("group", g))
}

fn password_hash(password: &str) -> AdminResult<String> {
    if password.chars().count() < passwords::MIN_LEN {
        return Err(AdminError::Invalid(format!(
            "passwords need at least {} characters",
            passwords::MIN_LEN
        )));
    }
    Ok(passwords::hash(password)?)
}

/// Creates a local user (with a password) or a user to be linked at first federated sign-in.
pub async fn create_user(
    store: &DynStore,
    username: &str,
    display_name: &str,
    password: Option<&str>,
    groups: Vec<String>,
) -> AdminResult<(UserRecord, Generation)> {
    validate_username(username)?;
    validate_groups(&groups)?;
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
    let hash = password_hash(password)?;
    Ok(store.set_user_password(&user.id, &hash).await?)
}

pub async fn set_groups(
    store: &DynStore,
    username: &str,
    groups: Vec<String>,
) -> AdminResult<Generation> {
    validate_groups(&groups)?;
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
    validate_name("group", group)?;
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
