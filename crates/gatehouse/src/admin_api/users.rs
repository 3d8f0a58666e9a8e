//! Users (who sign in so agents act for them), their groups' connections, and the OAuth
//! signing keys' public parts.

use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminOf,
    auth::Caller,
    idempotency,
    input::{JsonBody, PageParams, Params, page},
    problem::{ApiError, Problem},
};
use crate::context::AppState;
use gatehouse_model::records::{GroupConnectionRecord, SigningKeyRecord, UserRecord};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// Whether it signs in with a password here (else through an upstream provider).
    pub local: bool,
    /// The upstream OpenID provider it signs in through, if any.
    pub idp: Option<String>,
    /// Its subject (`sub`) at that provider: who it is there.
    pub idp_subject: Option<String>,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

impl From<&UserRecord> for User {
    fn from(r: &UserRecord) -> Self {
        User {
            id: r.id.clone(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            local: r.password_hash.is_some(),
            idp: r.idp.clone(),
            idp_subject: r.idp_subject.clone(),
            groups: r.groups.clone(),
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            last_login_at: r.last_login_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    /// A password for local sign-in (write-only); none: the user signs in upstream.
    pub password: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGroups {
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// The name shown on consent pages.
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password for local sign-in (write-only).
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupConnection {
    pub group: String,
    pub server: String,
    pub tools: Vec<String>,
    pub resources: bool,
    pub prompts: bool,
}

impl From<&GroupConnectionRecord> for GroupConnection {
    fn from(r: &GroupConnectionRecord) -> Self {
        GroupConnection {
            group: r.group.clone(),
            server: r.server.clone(),
            tools: r.tools.clone(),
            resources: r.resources,
            prompts: r.prompts,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupConnectionPage {
    pub items: Vec<GroupConnection>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantGroup {
    /// Comma-separated tool patterns.
    pub tools: String,
    #[serde(default)]
    pub resources: bool,
    #[serde(default)]
    pub prompts: bool,
}

/// A signing key's public part (its private part never leaves the store, sealed).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    /// The public JWK, as `/oauth/jwks.json` publishes it.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub active_at: i64,
    pub retired_at: Option<i64>,
}

impl From<&SigningKeyRecord> for SigningKey {
    fn from(r: &SigningKeyRecord) -> Self {
        SigningKey {
            kid: r.kid.clone(),
            alg: r.alg.clone(),
            public_jwk: serde_json::from_str(&r.public_jwk).unwrap_or(serde_json::Value::Null),
            created_at: r.created_at,
            active_at: r.active_at,
            retired_at: r.retired_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyList {
    pub items: Vec<SigningKey>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningKey {
    /// `EdDSA` (default), `ES256` or `RS256`.
    pub alg: Option<String>,
    /// Published this many seconds before it signs (default: the configured lead).
    pub lead_seconds: Option<u64>,
}

async fn user_named(state: &AppState, username: &str) -> Result<UserRecord, ApiError> {
    state
        .store
        .find_user_by_username(username)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "user",
            name: username.to_owned(),
        })
}

#[utoipa::path(get, path = "/admin/api/v1/users", tag = "users", operation_id = "listUsers",
    params(PageParams),
    responses((status = 200, description = "A page of users, by username", body = UserPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Params(params): Params<PageParams>,
) -> Result<axum::Json<UserPage>, ApiError> {
    let mut users = state.store.list_users().await?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let (items, next_cursor) = page(users, &params, |u| u.username.clone())?;
    Ok(axum::Json(UserPage {
        items: items.iter().map(User::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/users/{username}", tag = "users", operation_id = "getUser",
    params(("username" = String, Path, description = "The user's username")),
    responses((status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(User::from(
        &user_named(&state, &username).await?,
    )))
}

#[utoipa::path(post, path = "/admin/api/v1/users", tag = "users", operation_id = "createUser",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe create: same key and body, same answer")),
    request_body = CreateUser,
    responses((status = 201, description = "Created", body = User),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The username is taken, or the same Idempotency-Key is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or an Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    let JsonBody { value, bytes } = body;
    idempotency::once(&state, &caller, &headers, "createUser", &bytes, async {
        let (user, _) = state
            .admin()
            .create_user(
                &caller.operator()?,
                &value.username,
                &value.display_name,
                value.password.as_deref(),
                value.groups,
            )
            .await?;
        Ok((StatusCode::CREATED, super::to_json(&User::from(&user))?))
    })
    .await
}

#[utoipa::path(put, path = "/admin/api/v1/users/{username}/groups", tag = "users", operation_id = "setUserGroups",
    params(("username" = String, Path, description = "The user's username")),
    request_body = SetGroups,
    responses((status = 200, description = "The user with its new groups", body = User),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid group names", body = Problem, content_type = "application/problem+json")))]
pub async fn set_groups(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody { value, .. }: JsonBody<SetGroups>,
) -> Result<axum::Json<User>, ApiError> {
    user_named(&state, &username).await?;
    state
        .admin()
        .set_user_groups(&caller.operator()?, &username, value.groups)
        .await?;
    Ok(axum::Json(User::from(
        &user_named(&state, &username).await?,
    )))
}

#[utoipa::path(patch, path = "/admin/api/v1/users/{username}", tag = "users", operation_id = "updateUser",
    params(("username" = String, Path, description = "The user's username")),
    request_body = UpdateUser,
    responses((status = 200, description = "The user with its new profile", body = User),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid display name", body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody { value, .. }: JsonBody<UpdateUser>,
) -> Result<axum::Json<User>, ApiError> {
    let user = user_named(&state, &username).await?;
    if let Some(display_name) = &value.display_name {
        state
            .admin()
            .update_user(&caller.operator()?, &user.id, display_name)
            .await?;
    }
    Ok(axum::Json(User::from(
        &user_named(&state, &username).await?,
    )))
}

#[utoipa::path(put, path = "/admin/api/v1/users/{username}/password", tag = "users", operation_id = "setUserPassword",
    params(("username" = String, Path, description = "The user's username")),
    request_body = SetPassword,
    responses((status = 204, description = "Set: the user signs in here with it"),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The password is too short", body = Problem, content_type = "application/problem+json")))]
pub async fn set_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    JsonBody { value, .. }: JsonBody<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let user = user_named(&state, &username).await?;
    state
        .admin()
        .set_user_password(&caller.operator()?, &user.id, &value.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    username: &str,
    enabled: bool,
) -> Result<axum::Json<User>, ApiError> {
    user_named(state, username).await?;
    state
        .admin()
        .set_user_enabled(&caller.operator()?, username, enabled)
        .await?;
    Ok(axum::Json(User::from(&user_named(state, username).await?)))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{username}/disable", tag = "users", operation_id = "disableUser",
    params(("username" = String, Path, description = "The user's username")),
    responses((status = 200, description = "Disabled: its tokens stop working", body = User),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json")))]
pub async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<axum::Json<User>, ApiError> {
    set_enabled(&state, &caller, &username, false).await
}

#[utoipa::path(post, path = "/admin/api/v1/users/{username}/enable", tag = "users", operation_id = "enableUser",
    params(("username" = String, Path, description = "The user's username")),
    responses((status = 200, description = "Enabled again", body = User),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json")))]
pub async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<axum::Json<User>, ApiError> {
    set_enabled(&state, &caller, &username, true).await
}

#[utoipa::path(get, path = "/admin/api/v1/group-connections", tag = "users", operation_id = "listGroupConnections",
    params(PageParams),
    responses((status = 200, description = "What each group's users may use, by group then server", body = GroupConnectionPage),
        (status = 400, description = "Malformed query or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn list_groups(
    State(state): State<AppState>,
    Params(params): Params<PageParams>,
) -> Result<axum::Json<GroupConnectionPage>, ApiError> {
    let mut grants = state.store.list_group_connections().await?;
    grants.sort_by(|a, b| (&a.group, &a.server).cmp(&(&b.group, &b.server)));
    let (items, next_cursor) = page(grants, &params, |g| format!("{}\u{0}{}", g.group, g.server))?;
    Ok(axum::Json(GroupConnectionPage {
        items: items.iter().map(GroupConnection::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(put, path = "/admin/api/v1/group-connections/{group}/{server}", tag = "users",
    operation_id = "grantGroup",
    params(("group" = String, Path, description = "The group"), ("server" = String, Path, description = "The server's name")),
    request_body = GrantGroup,
    responses((status = 200, description = "Granted (created or replaced)", body = GroupConnection),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid group or tool patterns", body = Problem, content_type = "application/problem+json")))]
pub async fn grant_group(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((group, server)): Path<(String, String)>,
    JsonBody { value, .. }: JsonBody<GrantGroup>,
) -> Result<axum::Json<GroupConnection>, ApiError> {
    state.store.get_server(&server).await?;
    state
        .admin()
        .grant_group(
            &caller.operator()?,
            &group,
            &server,
            &value.tools,
            value.resources,
            value.prompts,
        )
        .await?;
    let granted = state
        .store
        .list_group_connections()
        .await?
        .into_iter()
        .find(|g| g.group == group && g.server == server)
        .ok_or(ApiError::Internal)?;
    Ok(axum::Json(GroupConnection::from(&granted)))
}

#[utoipa::path(delete, path = "/admin/api/v1/group-connections/{group}/{server}", tag = "users",
    operation_id = "revokeGroup",
    params(("group" = String, Path, description = "The group"), ("server" = String, Path, description = "The server's name")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such group connection", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_group(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((group, server)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .admin()
        .revoke_group(&caller.operator()?, &group, &server)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/api/v1/signing-keys", tag = "signing-keys", operation_id = "listSigningKeys",
    responses((status = 200, description = "Every signing key's public part, by activation", body = SigningKeyList)))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
) -> Result<axum::Json<SigningKeyList>, ApiError> {
    let mut keys = state.store.list_signing_keys().await?;
    keys.sort_by(|a, b| (a.active_at, &a.kid).cmp(&(b.active_at, &b.kid)));
    Ok(axum::Json(SigningKeyList {
        items: keys.iter().map(SigningKey::from).collect(),
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/signing-keys/rotate", tag = "signing-keys", operation_id = "rotateSigningKey",
    request_body = RotateSigningKey,
    responses((status = 201, description = "The new key's public part; it signs once its lead has passed", body = SigningKey),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown algorithm", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody { value, .. }: JsonBody<RotateSigningKey>,
) -> Result<(StatusCode, axum::Json<SigningKey>), ApiError> {
    let alg = value
        .alg
        .unwrap_or_else(|| state.config.oauth.signing_alg.clone());
    // Absent: the configured lead, as the CLI's default; 0 signs at once.
    let lead = Some(
        value
            .lead_seconds
            .map(|s| std::time::Duration::from_secs(s.min(super::MAX_SECONDS)))
            .unwrap_or(state.config.oauth.key_publish_lead),
    );
    let (record, _) = state
        .admin()
        .rotate_signing_key(&caller.operator()?, &alg, lead)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(SigningKey::from(&record))))
}
