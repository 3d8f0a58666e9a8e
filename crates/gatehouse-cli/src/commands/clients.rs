use clap::Subcommand;
use gatehouse_model::records::ClientRecord;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_json, time};

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
            ClientsCommand::Create { name, description } => {
                let generation = ctx
                    .admin
                    .create_client(ctx.by()?, &name, &description)
                    .await?;
                ctx.applied(generation).await?;
                (vec![ctx.store.get_client(&name).await?], "created")
            }
            ClientsCommand::List => (ctx.store.list_clients().await?, ""),
            ClientsCommand::Show { name } => (vec![ctx.store.get_client(&name).await?], ""),
            ClientsCommand::Disable { name } => {
                let generation = ctx
                    .admin
                    .set_client_enabled(ctx.by()?, &name, false)
                    .await?;
                ctx.applied(generation).await?;
                (vec![ctx.store.get_client(&name).await?], "disabled")
            }
            ClientsCommand::Enable { name } => {
                let generation = ctx.admin.set_client_enabled(ctx.by()?, &name, true).await?;
                ctx.applied(generation).await?;
                (vec![ctx.store.get_client(&name).await?], "enabled")
            }
        };
        show(ctx.format, &clients, verb, single)
    }
}

fn show(
    format: Format,
    clients: &[ClientRecord],
    verb: &str,
    single: bool,
) -> anyhow::Result<ExitCode> {
    if format == Format::Json {
        match clients {
            [one] if single => print_json(one)?,
            many => print_json(&many)?,
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
