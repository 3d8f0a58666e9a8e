//! Which deployment a command works on. `--server URL` (or `GATEHOUSE_SERVER`) or a profile
//! (`--profile NAME`, `GATEHOUSE_PROFILE`) of the CLI configuration file selects a running
//! server; neither, the local database. Precedence, for each of the server and the token:
//! the flag or its environment variable, then the profile.
//!
//! The CLI configuration file (`$XDG_CONFIG_HOME/gatehouse/cli.toml`, else
//! `~/.config/gatehouse/cli.toml`, or `GATEHOUSE_CLI_CONFIG`):
//! ```toml
//! [profiles.prod]
//! server = "https://gatehouse-admin.internal:9091"
//! token_file = "/home/me/.config/gatehouse/prod.token"   # or token_env = "PROD_TOKEN"
//! ca_file = "/etc/ssl/internal-ca.pem"                   # optional
//! ```

use serde::Deserialize;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// The environment variable holding the admin token (it wins over a profile's).
pub const TOKEN_ENV: &str = "GATEHOUSE_ADMIN_TOKEN";

/// `--server` without a token: the exit code says so as for a token the server refuses.
#[derive(Debug, thiserror::Error)]
#[error(
    "--server needs an admin token: set {TOKEN_ENV} or use a profile (--profile) with \
     token_file or token_env"
)]
pub struct NoToken;

/// A running server to talk to, and the admin token to present.
#[derive(Debug)]
pub struct Target {
    /// `scheme://authority` of the admin listener.
    pub server: String,
    pub token: String,
    /// CA certificates to trust beside the system's (an internal CA's admin listener).
    pub ca_files: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CliFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    /// A file holding the token (readable by its owner only).
    token_file: Option<PathBuf>,
    /// An environment variable holding the token.
    token_env: Option<String>,
    /// The token itself: only in a file readable by its owner only.
    token: Option<String>,
    ca_file: Option<PathBuf>,
}

/// What the command line and the environment asked for.
pub struct Asked<'a> {
    pub server: Option<&'a str>,
    pub profile: Option<&'a str>,
}

/// The remote target, or `None` for the local database.
pub fn select(
    asked: &Asked<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Target>> {
    if asked.server.is_none() && asked.profile.is_none() {
        return Ok(None);
    }
    let profile = match asked.profile {
        Some(name) => {
            let path = config_path(env).ok_or_else(|| {
                anyhow::anyhow!(
                    "--profile {name}: no CLI configuration file (set XDG_CONFIG_HOME or HOME, \
                     or GATEHOUSE_CLI_CONFIG)"
                )
            })?;
            let file = read_file(&path)?;
            let profile = file.profiles.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
                anyhow::anyhow!(
                    "no profile {name:?} in {} (it has: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })?;
            if profile.token.is_some() {
                private(&path, "holds a token")?;
            }
            Some((name, profile))
        }
        None => None,
    };
    let server = match (
        asked.server,
        profile.as_ref().and_then(|(_, p)| p.server.as_deref()),
    ) {
        (Some(server), _) | (None, Some(server)) => base_url(server)?,
        (None, None) => anyhow::bail!(
            "profile {:?} names no server: add `server = \"https://…\"` or pass --server",
            profile.as_ref().map_or("", |(name, _)| *name)
        ),
    };
    let token = match env(TOKEN_ENV).filter(|t| !t.trim().is_empty()) {
        Some(token) => token,
        None => match &profile {
            Some((name, profile)) => profile_token(name, profile, env)?,
            None => return Err(NoToken.into()),
        },
    };
    warn_if_plain_http(&server);
    Ok(Some(Target {
        server,
        token: token.trim().to_owned(),
        ca_files: profile.and_then(|(_, p)| p.ca_file).into_iter().collect(),
    }))
}

fn profile_token(
    name: &str,
    profile: &Profile,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    if let Some(token) = &profile.token {
        return Ok(token.clone());
    }
    if let Some(var) = &profile.token_env {
        return env(var)
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("profile {name:?}: its token_env {var} is not set"));
    }
    if let Some(path) = &profile.token_file {
        private(path, "holds a token")?;
        return std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("profile {name:?}: token_file {}: {e}", path.display()));
    }
    anyhow::bail!("profile {name:?} has no token: add token_file or token_env, or set {TOKEN_ENV}")
}

fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = env("GATEHOUSE_CLI_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("gatehouse").join("cli.toml"))
}

fn read_file(path: &Path) -> anyhow::Result<CliFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("CLI configuration {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("CLI configuration {}: {e}", path.display()))
}

/// Refuses a file that group or others may read: a token in it would be theirs too.
#[cfg(unix)]
fn private(path: &Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} {what} but group or others may read it (mode {:o}); make it private with \
             `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn private(_: &Path, _: &str) -> anyhow::Result<()> {
    Ok(())
}

/// `scheme://authority` from what the operator typed (a trailing `/` or the API's own path
/// are dropped).
fn base_url(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim().trim_end_matches('/');
    let trimmed = trimmed
        .strip_suffix("/admin/api/v1")
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|e| anyhow::anyhow!("--server {text:?}: not a URL ({e})"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri
        .path_and_query()
        .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
    if !scheme_ok || uri.authority().is_none() || !bare {
        anyhow::bail!(
            "--server {text:?}: give the admin listener as http(s)://host:port \
             (the server's `admin_listen`)"
        );
    }
    Ok(trimmed.to_owned())
}

/// An admin token sent in the clear to another machine can be read on the way.
fn warn_if_plain_http(server: &str) {
    let Ok(uri) = server.parse::<http::Uri>() else {
        return;
    };
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if uri.scheme_str() == Some("http") && !loopback {
        eprintln!(
            "warning: the admin token goes to {server} unencrypted; serve the admin listener \
             behind TLS and use https://"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn no_server_and_no_profile_is_the_local_database() {
        let asked = Asked {
            server: None,
            profile: None,
        };
        assert!(
            select(&asked, &env_of(&[(TOKEN_ENV, "t")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_server_url_is_reduced_to_its_origin_and_other_urls_are_refused() {
        assert_eq!(
            base_url("http://127.0.0.1:9091/").unwrap(),
            "http://127.0.0.1:9091"
        );
        assert_eq!(
            base_url("https://gw.example:9091/admin/api/v1/").unwrap(),
            "https://gw.example:9091"
        );
        for bad in [
            "127.0.0.1:9091",
            "ftp://h:1",
            "http://h:1/other",
            "not a url",
        ] {
            let err = base_url(bad).unwrap_err().to_string();
            assert!(
                err.contains("admin_listen") || err.contains("not a URL"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_token_comes_from_the_environment_before_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cli.toml");
        std::fs::write(
            &file,
            "[profiles.prod]\nserver = \"http://127.0.0.1:1\"\ntoken_env = \"PROD_TOKEN\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let asked = Asked {
            server: None,
            profile: Some("prod"),
        };
        let from_profile = select(
            &asked,
            &env_of(&[("GATEHOUSE_CLI_CONFIG", path), ("PROD_TOKEN", "gta_p")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_profile.token, "gta_p");
        assert_eq!(from_profile.server, "http://127.0.0.1:1");
        let overridden = select(
            &asked,
            &env_of(&[
                ("GATEHOUSE_CLI_CONFIG", path),
                ("PROD_TOKEN", "gta_p"),
                (TOKEN_ENV, "gta_env"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(overridden.token, "gta_env");
        let missing = select(&asked, &env_of(&[("GATEHOUSE_CLI_CONFIG", path)])).unwrap_err();
        assert!(
            missing.to_string().contains("PROD_TOKEN is not set"),
            "{missing}"
        );
        let unknown = Asked {
            server: None,
            profile: Some("staging"),
        };
        let err = select(&unknown, &env_of(&[("GATEHOUSE_CLI_CONFIG", path)])).unwrap_err();
        assert!(err.to_string().contains("it has: prod"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_token_in_a_file_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cli.toml");
        std::fs::write(
            &file,
            "[profiles.prod]\nserver = \"http://127.0.0.1:1\"\ntoken = \"gta_inline\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = file.to_str().unwrap();
        let asked = Asked {
            server: None,
            profile: Some("prod"),
        };
        let env = env_of(&[("GATEHOUSE_CLI_CONFIG", path)]);
        let err = select(&asked, &env).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && err.contains("mode 644"),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(select(&asked, &env).unwrap().unwrap().token, "gta_inline");

        let token_file = dir.path().join("prod.token");
        std::fs::write(&token_file, "gta_from_file\n").unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(
            &file,
            format!(
                "[profiles.prod]\nserver = \"http://127.0.0.1:1\"\ntoken_file = {:?}\n",
                token_file.to_str().unwrap()
            ),
        )
        .unwrap();
        let err = select(&asked, &env).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            select(&asked, &env).unwrap().unwrap().token,
            "gta_from_file"
        );
    }
}
