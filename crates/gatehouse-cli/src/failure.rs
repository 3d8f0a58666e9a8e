//! How a failed command ends: its exit code and, where the operator can fix something, a
//! `hint:` saying how. The codes are stable (docs/cli.md lists them): scripts branch on them.

use crate::deployment::remote::RemoteError;

/// The operation was refused or failed (invalid value, not found, conflict, audit trail
/// broken, a change some replica has not applied).
pub const REFUSED: u8 = 1;
/// The command line is wrong (clap's own usage code), or the command cannot run in the mode
/// asked for (a local-only command with `--server`).
pub const USAGE: u8 = 2;
/// `policy explain`: the request would be denied.
pub const DENIED: u8 = 3;
/// The admin API did not accept the token: missing, unknown, expired, or its role too low.
pub const AUTH: u8 = 4;
/// The server or the database could not be reached, or is unavailable; nothing was changed.
pub const UNREACHABLE: u8 = 5;

/// A command that only runs where the database is, given `--server` or a profile.
#[derive(Debug, thiserror::Error)]
#[error("`gatehouse {command}` works on the local database only, not through --server")]
pub struct LocalOnly {
    pub command: &'static str,
}

/// What the operator sees and the exit code.
pub struct Failure {
    pub code: u8,
    pub hint: Option<String>,
    /// The HTTP status and problem code of an admin API refusal.
    pub problem: Option<(u16, String)>,
}

pub fn classify(err: &anyhow::Error) -> Failure {
    if let Some(local) = err.chain().find_map(|c| c.downcast_ref::<LocalOnly>()) {
        return Failure {
            code: USAGE,
            hint: Some(format!(
                "run `gatehouse {}` on a host that has the data directory (or database_url) \
                 and the master key, without --server, --profile, GATEHOUSE_SERVER or \
                 GATEHOUSE_PROFILE",
                local.command
            )),
            problem: None,
        };
    }
    if err
        .chain()
        .any(|c| c.is::<crate::deployment::selection::NoToken>())
    {
        return Failure {
            code: AUTH,
            hint: Some(
                "an admin makes one with `gatehouse admin-tokens create --name NAME --role ROLE` \
                 (docs/cli.md, \"Selecting a running server\")"
                    .into(),
            ),
            problem: None,
        };
    }
    if let Some(remote) = err.chain().find_map(|c| c.downcast_ref::<RemoteError>()) {
        return remote_failure(remote);
    }
    if let Some(hint) = err.chain().find_map(local_store_hint) {
        return Failure {
            code: REFUSED,
            hint: Some(hint),
            problem: None,
        };
    }
    let unreachable = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<gatehouse::store::StoreError>())
        .any(gatehouse::store::StoreError::is_unreachable);
    Failure {
        code: if unreachable { UNREACHABLE } else { REFUSED },
        hint: None,
        problem: None,
    }
}

fn remote_failure(err: &RemoteError) -> Failure {
    match err {
        RemoteError::Problem {
            status,
            code,
            detail,
            path,
        } => {
            let (exit, hint) = problem_hint(*status, code, detail, path);
            Failure {
                code: exit,
                hint,
                problem: Some((*status, code.clone())),
            }
        }
        RemoteError::Unreachable { url, .. } => Failure {
            code: UNREACHABLE,
            hint: Some(format!(
                "is {url} the admin listener? The admin API is served on the server's \
                 `admin_listen` address (GATEHOUSE_ADMIN_LISTEN), not on its public `listen` \
                 one; check that the server runs and the address and port are right"
            )),
            problem: None,
        },
        RemoteError::Unexpected { .. } => Failure {
            code: REFUSED,
            hint: Some(
                "check that --server names a Gatehouse admin listener of the same version \
                 (`gatehouse --version`)"
                    .into(),
            ),
            problem: None,
        },
    }
}

fn problem_hint(status: u16, code: &str, detail: &str, path: &str) -> (u8, Option<String>) {
    let list = list_command(path);
    match (status, code) {
        (401, _) => (
            AUTH,
            Some(format!(
                "check the admin token ({} or the profile's token_file/token_env); an admin \
                 makes one with `gatehouse admin-tokens create --name NAME --role ROLE`",
                crate::deployment::selection::TOKEN_ENV
            )),
        ),
        (403, _) => {
            let needed = detail
                .split_whitespace()
                .skip_while(|w| *w != "the")
                .nth(1)
                .unwrap_or("a higher");
            (
                AUTH,
                Some(format!(
                    "this token's role is too low: the operation needs the {needed} role; \
                     use a token made with `gatehouse admin-tokens create --role {needed}`"
                )),
            )
        }
        (404, "no_such_operation") => (
            REFUSED,
            Some(
                "the server does not offer this operation: is it an older Gatehouse? compare \
                 `gatehouse --version` with the server's"
                    .into(),
            ),
        ),
        (404, _) => (
            REFUSED,
            list.map(|list| format!("`{list}` shows what exists")),
        ),
        (409, "idempotency_in_progress") => (
            REFUSED,
            Some("the same request is still being processed; retry shortly".into()),
        ),
        (409, _) => (
            REFUSED,
            Some(match list {
                Some(list) => {
                    format!("it exists already (`{list}` shows it): change it, or remove it first")
                }
                None => "it exists already: change it, or remove it first".into(),
            }),
        ),
        (429, _) => (
            AUTH,
            Some(
                "too many failed authentications from this address: wait, then check the token"
                    .into(),
            ),
        ),
        (503, _) => (
            UNREACHABLE,
            Some("the server cannot reach its database; nothing was changed: retry later".into()),
        ),
        _ => (REFUSED, None),
    }
}

/// The local mode's counterpart of the admin API's 404 and 409 hints, so both modes tell
/// the operator the same thing. `AdminError::Store` is transparent, which hides the store
/// error from the chain: look inside it too.
fn local_store_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    let store = match cause.downcast_ref::<gatehouse::admin::AdminError>() {
        Some(gatehouse::admin::AdminError::Store(store)) => store,
        _ => cause.downcast_ref::<gatehouse::store::StoreError>()?,
    };
    match store {
        gatehouse::store::StoreError::NotFound { kind, .. } => {
            Some(format!("`{}` shows what exists", kind_list_command(kind)?))
        }
        gatehouse::store::StoreError::Conflict { kind, .. } => {
            Some(match kind_list_command(kind) {
                Some(list) => {
                    format!("it exists already (`{list}` shows it): change it, or remove it first")
                }
                None => "it exists already: change it, or remove it first".into(),
            })
        }
        _ => None,
    }
}

/// The command that lists the records of a store error's `kind`.
fn kind_list_command(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "server" => "gatehouse servers list",
        "client" => "gatehouse clients list",
        "api_key" => "gatehouse keys list",
        "connection" => "gatehouse connections list",
        "policy" => "gatehouse policy list",
        "user" => "gatehouse users list",
        "group_connection" => "gatehouse groups list",
        "admin_token" => "gatehouse admin-tokens list",
        "signing_key" => "gatehouse signing-keys list",
        "client_secret" => "gatehouse clients secrets NAME",
        "upstream_grant" | "upstream grant" => "gatehouse users upstream-grants list",
        _ => return None,
    })
}

/// The command that lists what the request's path names.
fn list_command(path: &str) -> Option<String> {
    let mut segments = path.trim_start_matches('/').split(['/', '?']);
    let first = segments.next()?;
    let command = match first {
        "servers" if path.contains("/tool-pins") => {
            let name = segments.next().unwrap_or("NAME");
            return Some(format!("gatehouse servers tools {name}"));
        }
        "clients" if path.contains("/secrets") => {
            let name = segments.next().unwrap_or("NAME");
            return Some(format!("gatehouse clients secrets {name}"));
        }
        "servers" => "servers list",
        "clients" => "clients list",
        "keys" => "keys list",
        "connections" => "connections list",
        "policies" | "policy" => "policy list",
        "users" => "users list",
        "group-connections" => "groups list",
        "admin-tokens" => "admin-tokens list",
        "signing-keys" => "signing-keys list",
        "client-secrets" => "clients secrets NAME",
        _ => return None,
    };
    Some(format!("gatehouse {command}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_gets_its_code_and_a_hint_naming_the_fix() {
        let problem = |status: u16, code: &str, detail: &str, path: &str| {
            remote_failure(&RemoteError::Problem {
                status,
                code: code.into(),
                detail: detail.into(),
                path: path.into(),
            })
        };
        let unauthenticated = problem(401, "token_not_recognised", "x", "/servers");
        assert_eq!(unauthenticated.code, AUTH);
        assert!(
            unauthenticated
                .hint
                .unwrap()
                .contains("admin-tokens create")
        );
        let forbidden = problem(
            403,
            "forbidden",
            "this operation needs the admin role",
            "/keys",
        );
        assert_eq!(forbidden.code, AUTH);
        assert!(forbidden.hint.unwrap().contains("--role admin"));
        let missing = problem(404, "not_found", "server \"x\" not found", "/servers/x");
        assert_eq!(missing.code, REFUSED);
        assert_eq!(
            missing.hint.unwrap(),
            "`gatehouse servers list` shows what exists"
        );
        let pins = problem(404, "not_found", "x", "/servers/demo/tool-pins/approve");
        assert!(pins.hint.unwrap().contains("gatehouse servers tools demo"));
        let exists = problem(409, "conflict", "exists", "/clients");
        assert!(exists.hint.unwrap().contains("gatehouse clients list"));
        assert_eq!(problem(503, "unavailable", "x", "/keys").code, UNREACHABLE);
        assert_eq!(problem(422, "invalid", "bad", "/keys").hint, None);
        let refused = remote_failure(&RemoteError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            why: "Connection refused".into(),
        });
        assert_eq!(refused.code, UNREACHABLE);
        assert!(refused.hint.unwrap().contains("admin_listen"));
    }
}
