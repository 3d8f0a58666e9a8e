//! OAuth commands: registering clients for the authorization server, their secrets, and the
//! access-token signing keys.

use clap::Subcommand;
use gatehouse::admin::oauth as admin;
use gatehouse_model::duration;
use std::{process::ExitCode, time::Duration};

use super::{Ctx, print, say};
use crate::deployment::SigningLead;
use crate::output::{Table, print_data, time};

/// Registers an existing client for OAuth (and prints its first secret once).
#[derive(clap::Args)]
pub struct RegisterArgs {
    pub name: String,
    /// Grant type the client may use (repeatable): client_credentials, authorization_code,
    /// refresh_token, urn:ietf:params:oauth:grant-type:jwt-bearer (redeeming an enterprise
    /// IdP's ID-JAGs). Default: client_credentials.
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt (with --jwks-file),
    /// or none (a public client).
    #[arg(long)]
    pub auth_method: Option<String>,
    /// Exact redirect URI for authorization_code (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A native app: loopback redirect URIs match on any port (RFC 8252).
    #[arg(long)]
    pub native: bool,
    /// The client's public keys (a JWKS file), with `--auth-method private_key_jwt`.
    #[arg(long)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Every token request of this client must carry a DPoP proof, so each of its access
    /// tokens is bound to its key (RFC 9449).
    #[arg(long)]
    pub require_dpop: bool,
}

pub async fn register(ctx: &Ctx, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let jwks = match &args.jwks_file {
        Some(path) => Some(serde_json::from_str(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )?),
        None => None,
    };
    let registered = ctx
        .ops
        .register_oauth(
            &args.name,
            admin::OAuthRegistration {
                grant_types: args.grants,
                auth_method: args.auth_method,
                redirect_uris: args.redirect_uris,
                native: args.native,
                jwks,
                require_dpop: args.require_dpop,
            },
        )
        .await?;
    if ctx.format.is_data() {
        print_data(ctx.format, &registered)?;
        return Ok(ExitCode::SUCCESS);
    }
    let grants: Vec<&str> = registered.metadata["grant_types"]
        .as_array()
        .map(|all| all.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    say(
        ctx.format,
        &format!(
            "client {} registered for OAuth: grants {}, authentication {}",
            registered.client_id,
            grants.join(", "),
            registered.metadata["token_endpoint_auth_method"]
                .as_str()
                .unwrap_or("-")
        ),
    );
    if let Some(secret) = &registered.client_secret {
        say(
            ctx.format,
            &format!("client_secret (shown once, store it now): {secret}"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rotate_secret(ctx: &Ctx, name: &str, overlap: Duration) -> anyhow::Result<ExitCode> {
    let rotated = ctx.ops.rotate_client_secret(name, overlap).await?;
    if ctx.format.is_data() {
        print_data(
            ctx.format,
            &serde_json::json!({
                "client_id": name,
                "secret_id": rotated.secret.id,
                "client_secret": rotated.client_secret,
                "previous_secrets_valid_for_secs": overlap.as_secs(),
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    say(
        ctx.format,
        &format!(
            "new secret {} for {name}; the previous secrets stay valid for {}s",
            rotated.secret.id,
            overlap.as_secs()
        ),
    );
    say(
        ctx.format,
        &format!(
            "client_secret (shown once, store it now): {}",
            rotated.client_secret
        ),
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list_secrets(ctx: &Ctx, name: &str) -> anyhow::Result<ExitCode> {
    let secrets = ctx.ops.list_client_secrets(name).await?;
    if ctx.format.is_data() {
        print_data(ctx.format, &secrets)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["ID", "CREATED", "EXPIRES", "REVOKED"]);
    for s in &secrets {
        table.row(vec![
            s.id.clone(),
            time(Some(s.created_at)),
            time(s.expires_at),
            time(s.revoked_at),
        ]);
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke_secret(ctx: &Ctx, id: &str) -> anyhow::Result<ExitCode> {
    ctx.ops.revoke_client_secret(id).await?;
    if ctx.format.is_data() {
        print_data(ctx.format, &serde_json::json!({ "revoked": id }))?;
    }
    say(ctx.format, &format!("client secret {id} revoked"));
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum SigningKeysCommand {
    /// Published access-token signing keys and which one signs.
    List,
    /// Create a new signing key. By default it is published now and signs after the
    /// configured `oauth.key_publish_lead`; `--now` makes it sign at once.
    Rotate {
        /// EdDSA, ES256 or RS256 (default: `oauth.signing_alg`).
        #[arg(long)]
        alg: Option<String>,
        #[arg(long)]
        now: bool,
        /// Publish this long before it signs (overrides the configuration).
        #[arg(long, value_parser = duration::parse, conflicts_with = "now")]
        lead: Option<Duration>,
    },
}

impl SigningKeysCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            SigningKeysCommand::List => {
                let keys = ctx.ops.list_signing_keys().await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &keys)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let now = gatehouse::now_ms();
                let mut table = Table::new(&["KID", "ALG", "STATUS", "SIGNS FROM", "RETIRED"]);
                for k in &keys {
                    let status = if k.retired_at.is_some_and(|at| at <= now) {
                        "retired (published)"
                    } else if k.active_at > now {
                        "next (published)"
                    } else {
                        "signing"
                    };
                    table.row(vec![
                        k.kid.clone(),
                        k.alg.clone(),
                        status.into(),
                        time(Some(k.active_at)),
                        time(k.retired_at),
                    ]);
                }
                print(&table.render());
                Ok(ExitCode::SUCCESS)
            }
            SigningKeysCommand::Rotate { alg, now, lead } => {
                let lead = match (now, lead) {
                    (true, _) => SigningLead::Now,
                    (false, Some(lead)) => SigningLead::After(lead),
                    (false, None) => SigningLead::Configured,
                };
                let record = ctx.ops.rotate_signing_key(alg, lead).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &record)?;
                } else {
                    say(
                        ctx.format,
                        &format!(
                            "signing key {} ({}) published; signs from {}",
                            record.kid,
                            record.alg,
                            time(Some(record.active_at))
                        ),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
