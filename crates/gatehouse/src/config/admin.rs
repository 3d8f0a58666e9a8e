//! `[admin]`: the admin listener's operator sign-in through an OpenID provider.

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};

use gatehouse_model::{duration::serde_human, records::AdminRole};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Operators sign in at `/admin/sign-in` through an `[[oauth.providers]]` entry; absent:
    /// the admin API takes admin tokens only.
    pub sign_in: Option<AdminSignInConfig>,
    /// The admin listener's URL as operators' browsers reach it (behind a TLS proxy, say);
    /// default `http://{admin_listen}`. With `https://` the console's session cookie is
    /// `__Host-` prefixed and `Secure`. `[admin.sign_in] admin_url` wins when both are set.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSignInConfig {
    /// The `[[oauth.providers]]` entry operators sign in through.
    pub provider: String,
    /// Provider group → admin role; a person in several gets the highest, in none is refused.
    pub group_roles: BTreeMap<String, AdminRole>,
    /// The ID-token claim carrying the groups (default: the provider's `groups_claim`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// How long a sign-in lasts (the session cookie and the session itself).
    #[serde(with = "serde_human", default = "default_session_lifetime")]
    pub session_lifetime: Duration,
    /// The admin listener's URL as operators' browsers reach it (the provider redirects to
    /// `{admin_url}/admin/callback`); default `http://{admin_listen}`. With `https://` the
    /// session cookie is `__Host-` prefixed and `Secure`.
    #[serde(default)]
    pub admin_url: Option<String>,
}

fn default_session_lifetime() -> Duration {
    Duration::from_secs(8 * 60 * 60)
}

impl AdminSignInConfig {
    /// The highest role any of `groups` maps to.
    pub fn role_for(&self, groups: &[String]) -> Option<AdminRole> {
        groups
            .iter()
            .filter_map(|g| self.group_roles.get(g).copied())
            .max()
    }
}

impl AdminConfig {
    pub(super) fn validate(
        &self,
        admin_listen: Option<std::net::SocketAddr>,
        providers: &[super::IdentityProviderConfig],
    ) -> Result<(), String> {
        if let Some(url) = &self.url {
            absolute_http_url("admin.url", url)?;
        }
        let Some(sign_in) = &self.sign_in else {
            return Ok(());
        };
        if admin_listen.is_none() {
            return Err("admin.sign_in needs admin_listen (the admin listener serves it)".into());
        }
        let Some(provider) = providers.iter().find(|p| p.name == sign_in.provider) else {
            return Err(format!(
                "admin.sign_in.provider {:?} names no [[oauth.providers]] entry",
                sign_in.provider
            ));
        };
        if sign_in.groups_claim.is_none() && provider.groups_claim.is_none() {
            return Err("admin.sign_in needs groups_claim (or the provider's groups_claim)".into());
        }
        if sign_in.group_roles.is_empty() {
            return Err("admin.sign_in.group_roles maps no group to a role".into());
        }
        if sign_in.session_lifetime.is_zero() {
            return Err("admin.sign_in.session_lifetime must be longer than zero".into());
        }
        if let Some(url) = &sign_in.admin_url {
            absolute_http_url("admin.sign_in.admin_url", url)?;
        }
        Ok(())
    }
}

fn absolute_http_url(field: &str, url: &str) -> Result<(), String> {
    let uri = http::Uri::try_from(url).map_err(|e| format!("{field} {url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!("{field} {url:?} must be an absolute http(s) URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_role_wins_and_no_mapped_group_gets_none() {
        let sign_in: AdminSignInConfig = serde_json::from_value(serde_json::json!({
            "provider": "corp",
            "group_roles": {"platform-admins": "admin", "sre": "operator", "security": "auditor"},
        }))
        .unwrap();
        assert_eq!(sign_in.session_lifetime, Duration::from_secs(8 * 3600));
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sign_in.role_for(&groups(&["security", "sre"])),
            Some(AdminRole::Operator)
        );
        assert_eq!(sign_in.role_for(&groups(&["eng"])), None);
        assert_eq!(sign_in.role_for(&[]), None);
    }
}
