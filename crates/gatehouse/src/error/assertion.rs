//! Why a JWT presented as an authorization grant or a client assertion (RFC 7523) was refused:
//! an ID-JAG (enterprise-managed authorization) or a workload token. Each reason maps once to
//! the RFC error the request gets, which depends on what the JWT was presented as.

use super::OAuthError;

/// What the JWT was presented as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionRole {
    /// The `assertion` of `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: refusals
    /// are `invalid_grant` (RFC 7523 §3.1).
    Grant,
    /// A `client_assertion`: refusals are `invalid_client` (RFC 7523 §3.2).
    ClientAuthentication,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionRefusal {
    #[error("the assertion is not a signed JWT (or is signed with alg none)")]
    Malformed,
    /// Explicit typing (RFC 8725 §3.11): an access token is not a workload's credential.
    #[error("the assertion's typ says it is not a workload token")]
    WrongType,
    #[error("the assertion's issuer is not trusted here")]
    UntrustedIssuer,
    #[error("the assertion's signature does not verify with its issuer's keys")]
    BadSignature,
    #[error("the assertion is meant for another audience")]
    WrongAudience,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet")]
    NotYetValid,
    #[error("the assertion lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("the assertion was already used")]
    Replayed,
    #[error("no rule of its issuer maps this workload to a client")]
    UnmappedSubject,
    #[error("the workload maps to a client that does not exist or is disabled here")]
    UnknownClient,
    #[error("the assertion was issued to another client")]
    WrongClient,
    #[error("the assertion's resource is not an MCP server behind this authorization server")]
    WrongResource,
    /// The request's `resource` differs from the one the ID-JAG names (RFC 8707).
    #[error("resource differs from the assertion's resource")]
    ResourceMismatch,
    /// Neither the ID-JAG nor the request names the MCP server.
    #[error("name the MCP server: the assertion has no resource claim, so send resource")]
    NoResource,
    #[error("the assertion's scope is not a scope of its resource here")]
    ForeignScope,
    #[error("the person is not an active user here")]
    InactiveUser,
    #[error("the user has no access to this server")]
    NoAccess,
    /// The issuer's keys could not be fetched, or single use could not be checked: the
    /// assertion may be fine, so the client should retry rather than give up.
    #[error("the assertion cannot be checked right now; try again")]
    Unavailable,
}

impl AssertionRefusal {
    pub fn into_oauth(self, role: AssertionRole) -> OAuthError {
        match (self, role) {
            (AssertionRefusal::Unavailable, _) => OAuthError::TemporarilyUnavailable,
            (refusal @ (AssertionRefusal::ResourceMismatch | AssertionRefusal::NoResource), _) => {
                OAuthError::InvalidTarget(refusal.to_string())
            }
            (_, AssertionRole::ClientAuthentication) => OAuthError::InvalidClient { basic: false },
            (
                refusal @ (AssertionRefusal::Malformed
                | AssertionRefusal::WrongType
                | AssertionRefusal::UntrustedIssuer
                | AssertionRefusal::BadSignature
                | AssertionRefusal::WrongAudience
                | AssertionRefusal::Expired
                | AssertionRefusal::NotYetValid
                | AssertionRefusal::MissingClaim(_)
                | AssertionRefusal::Replayed
                | AssertionRefusal::UnmappedSubject
                | AssertionRefusal::UnknownClient
                | AssertionRefusal::WrongClient
                | AssertionRefusal::WrongResource
                | AssertionRefusal::ForeignScope
                | AssertionRefusal::InactiveUser
                | AssertionRefusal::NoAccess),
                AssertionRole::Grant,
            ) => OAuthError::InvalidGrant(refusal.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refusal_two_roles() {
        let replay = AssertionRefusal::Replayed;
        assert_eq!(
            replay.clone().into_oauth(AssertionRole::Grant).code(),
            "invalid_grant"
        );
        assert_eq!(
            replay
                .into_oauth(AssertionRole::ClientAuthentication)
                .code(),
            "invalid_client"
        );
        assert_eq!(
            AssertionRefusal::ResourceMismatch
                .into_oauth(AssertionRole::Grant)
                .code(),
            "invalid_target"
        );
        assert_eq!(
            AssertionRefusal::Unavailable
                .into_oauth(AssertionRole::ClientAuthentication)
                .code(),
            "temporarily_unavailable"
        );
    }
}
