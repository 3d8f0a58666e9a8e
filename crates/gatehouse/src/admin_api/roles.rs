//! Which role each operation needs: one table, read by the guard before any handler runs, so
//! no handler can forget the check. An operation missing here is refused to everyone (and
//! `tests/it/admin_api_roles.rs` fails for it, walking the OpenAPI document).

use axum::http::Method;

use gatehouse_model::records::AdminRole::{self, Admin, Auditor, Operator};

/// `(method, path as routed, minimum role)`.
pub const OPERATIONS: &[(&str, &str, AdminRole)] = &[
    ("GET", "/admin/api/v1/whoami", Auditor),
    ("GET", "/admin/api/v1/status", Auditor),
    // The effective configuration, secrets masked.
    ("GET", "/admin/api/v1/settings", Auditor),
    // Each server's circuit breaker on the answering replica.
    ("GET", "/admin/api/v1/upstream-health", Auditor),
    // Servers.
    ("GET", "/admin/api/v1/servers", Auditor),
    ("POST", "/admin/api/v1/servers", Operator),
    ("GET", "/admin/api/v1/servers/{name}", Auditor),
    ("PATCH", "/admin/api/v1/servers/{name}", Operator),
    ("DELETE", "/admin/api/v1/servers/{name}", Operator),
    (
        "POST",
        "/admin/api/v1/servers/{name}/test-connection",
        Operator,
    ),
    // Clients.
    ("GET", "/admin/api/v1/clients", Auditor),
    ("POST", "/admin/api/v1/clients", Operator),
    ("GET", "/admin/api/v1/clients/{name}", Auditor),
    ("DELETE", "/admin/api/v1/clients/{name}", Operator),
    ("POST", "/admin/api/v1/clients/{name}/disable", Operator),
    ("POST", "/admin/api/v1/clients/{name}/enable", Operator),
    // API keys: creating or rotating one shows its secret, so admin only.
    ("GET", "/admin/api/v1/keys", Auditor),
    ("POST", "/admin/api/v1/keys", Admin),
    ("GET", "/admin/api/v1/keys/{id}", Auditor),
    ("POST", "/admin/api/v1/keys/{id}/rotate", Admin),
    ("POST", "/admin/api/v1/keys/{id}/revoke", Operator),
    // Connections.
    ("GET", "/admin/api/v1/connections", Auditor),
    (
        "PUT",
        "/admin/api/v1/connections/{client}/{server}",
        Operator,
    ),
    (
        "DELETE",
        "/admin/api/v1/connections/{client}/{server}",
        Operator,
    ),
    // Policies and guardrails.
    ("GET", "/admin/api/v1/policies", Auditor),
    ("POST", "/admin/api/v1/policies", Operator),
    ("GET", "/admin/api/v1/policies/{id}", Auditor),
    ("PUT", "/admin/api/v1/policies/{id}", Operator),
    ("DELETE", "/admin/api/v1/policies/{id}", Operator),
    ("POST", "/admin/api/v1/policies/import", Operator),
    // Tool pins.
    ("GET", "/admin/api/v1/tool-pins", Auditor),
    (
        "POST",
        "/admin/api/v1/servers/{name}/tool-pins/approve",
        Operator,
    ),
    (
        "POST",
        "/admin/api/v1/servers/{name}/tool-pins/reject",
        Operator,
    ),
    // Admin tokens: role changes, admin only.
    ("GET", "/admin/api/v1/admin-tokens", Admin),
    ("POST", "/admin/api/v1/admin-tokens", Admin),
    ("POST", "/admin/api/v1/admin-tokens/{id}/revoke", Admin),
    // Users and their groups' connections.
    ("GET", "/admin/api/v1/users", Auditor),
    ("POST", "/admin/api/v1/users", Operator),
    ("GET", "/admin/api/v1/users/{username}", Auditor),
    ("PATCH", "/admin/api/v1/users/{username}", Operator),
    // A password is a credential: whoever sets it can sign in as the user.
    ("PUT", "/admin/api/v1/users/{username}/password", Admin),
    ("PUT", "/admin/api/v1/users/{username}/groups", Operator),
    ("POST", "/admin/api/v1/users/{username}/disable", Operator),
    ("POST", "/admin/api/v1/users/{username}/enable", Operator),
    (
        "GET",
        "/admin/api/v1/users/{username}/upstream-grants",
        Auditor,
    ),
    (
        "DELETE",
        "/admin/api/v1/users/{username}/upstream-grants/{server}",
        Operator,
    ),
    ("GET", "/admin/api/v1/group-connections", Auditor),
    (
        "PUT",
        "/admin/api/v1/group-connections/{group}/{server}",
        Operator,
    ),
    (
        "DELETE",
        "/admin/api/v1/group-connections/{group}/{server}",
        Operator,
    ),
    // Signing keys: public parts for everyone; minting one is key material.
    ("GET", "/admin/api/v1/signing-keys", Auditor),
    ("POST", "/admin/api/v1/signing-keys/rotate", Admin),
    ("POST", "/admin/api/v1/policy/explain", Auditor),
    // OAuth registrations and client secrets: a registration or rotation shows a secret.
    ("POST", "/admin/api/v1/clients/{name}/oauth", Admin),
    ("GET", "/admin/api/v1/clients/{name}/secrets", Auditor),
    ("POST", "/admin/api/v1/clients/{name}/secrets/rotate", Admin),
    ("POST", "/admin/api/v1/client-secrets/{id}/revoke", Operator),
    // The audit trail.
    ("GET", "/admin/api/v1/audit/events", Auditor),
    ("GET", "/admin/api/v1/audit/export", Auditor),
    // Reads the whole trail: a POST so that no prefetch or crawler starts it.
    ("POST", "/admin/api/v1/audit/verify", Auditor),
    // Declarative state: reading it is an auditor's; applying can make, replace and revoke
    // anything, secrets included, so admin only (a dry run too: it compares secrets).
    ("GET", "/admin/api/v1/state", Auditor),
    ("POST", "/admin/api/v1/state/apply", Admin),
];

/// The role `method` on the routed `path` needs; `None` for an operation not in the table.
pub fn required(method: &Method, path: &str) -> Option<AdminRole> {
    OPERATIONS
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, role)| *role)
}
