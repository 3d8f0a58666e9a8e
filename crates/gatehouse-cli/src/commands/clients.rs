use clap::Subcommand;
use gatehouse::admin_api::views::Client;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_data, time};

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Create a client (an application or agent identity).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every client and whether it is enabled.
    List,
    /// One client: description, status and OAuth registration.
    Show { name: String },
    /// Disable a client: all its keys stop working at once.
    Disable { name: String },
    /// Enable a disabled client again.
    Enable { name: String },
    /// Delete a client with its keys, connections and OAuth secrets (refused while a policy
    /// is scoped to it).
    Delete { name: String },
    /// Let the client use the OAuth authorization server (prints its first secret once).
    Oauth(super::oauth::RegisterArgs),
    /// Issue a new client secret; the previous ones keep working for `--overlap`.
    RotateSecret {
        name: String,
        #[arg(long, value_parser = gatehouse_model::duration::parse, default_value = "1h")]
        overlap: std::time::Duration,
    },
    /// The client's secrets (ids and validity, never the secrets).
    Secrets { name: String },
    /// Revoke one client secret by id, effective on the next request.
    RevokeSecret { id: String },
}

impl ClientsCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let single = !matches!(self, ClientsCommand::List);
        let (clients, verb) = match self {
            ClientsCommand::Oauth(args) => return super::oauth::register(ctx, args).await,
            ClientsCommand::RotateSecret { name, overlap } => {
                return super::oauth::rotate_secret(ctx, &name, overlap).await;
            }
            ClientsCommand::Secrets { name } => {
                return super::oauth::list_secrets(ctx, &name).await;
            }
            ClientsCommand::RevokeSecret { id } => {
                return super::oauth::revoke_secret(ctx, &id).await;
            }
            ClientsCommand::Delete { name } => {
                ctx.ops.delete_client(&name).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &serde_json::json!({ "deleted": name }))?;
                } else {
                    say(ctx.format, &format!("client {name} deleted"));
                }
                return Ok(ExitCode::SUCCESS);
            }
            ClientsCommand::Create { name, description } => (
                vec![ctx.ops.create_client(&name, &description).await?],
                "created",
            ),
            ClientsCommand::List => (ctx.ops.list_clients().await?, ""),
            ClientsCommand::Show { name } => (vec![ctx.ops.get_client(&name).await?], ""),
            ClientsCommand::Disable { name } => (
                vec![ctx.ops.set_client_enabled(&name, false).await?],
                "disabled",
            ),
            ClientsCommand::Enable { name } => (
                vec![ctx.ops.set_client_enabled(&name, true).await?],
                "enabled",
            ),
        };
        show(ctx.format, &clients, verb, single)
    }
}

fn show(format: Format, clients: &[Client], verb: &str, single: bool) -> anyhow::Result<ExitCode> {
    if format.is_data() {
        match clients {
            [one] if single => print_data(format, one)?,
            many => print_data(format, &many)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["NAME", "STATUS", "DESCRIPTION", "CREATED"]);
    for c in clients {
        table.row(vec![
            c.name.clone(),
            if c.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }
            .into(),
            c.description.clone(),
            time(Some(c.created_at)),
        ]);
    }
    if !verb.is_empty() {
        say(format, &format!("client {verb}:"));
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}
