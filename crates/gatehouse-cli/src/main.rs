//! `gatehouse`: run the gateway, try the demo, and manage servers, clients, keys,
//! connections and the audit trail. Thin over the `gatehouse` library.
#![forbid(unsafe_code)]

#[cfg(unix)]
mod arenas;
mod commands;
mod demo;
mod output;

use clap::{Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

use output::Format;

/// mimalloc rather than glibc malloc: per-thread heaps without arena locks or
/// `malloc_consolidate` (BENCHMARKS.md, "allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authentication and governance gateway for MCP servers"
)]
struct Cli {
    /// Configuration file (default: ./gatehouse.toml if present).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database and master key); overrides the configuration.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Who makes the changes, as the audit trail records it (default: the account running
    /// the command).
    #[arg(long, global = true, env = "GATEHOUSE_ACTOR")]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(commands::serve::ServeArgs),
    /// Start a throw-away Gatehouse with an example MCP server, a client and a key.
    Demo(demo::DemoArgs),
    /// Upstream MCP servers.
    #[command(subcommand)]
    Servers(Box<commands::servers::ServersCommand>),
    /// Client identities (applications and agents).
    #[command(subcommand)]
    Clients(commands::clients::ClientsCommand),
    /// API keys of clients.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Connections: which client may use which server, and which tools.
    #[command(subcommand)]
    Connections(commands::connections::ConnectionsCommand),
    /// Policies: rate limits, quotas, IP rules, schedules, argument constraints.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// People who sign in so that agents act on their behalf.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Tokens of the admin API (`/admin/api/v1` on the admin listener), with their role.
    #[command(subcommand)]
    AdminTokens(commands::admin_tokens::AdminTokensCommand),
    /// What user groups may reach (through agents their members authorize).
    #[command(subcommand)]
    Groups(commands::users::GroupsCommand),
    /// Access-token signing keys of the OAuth authorization server.
    #[command(subcommand)]
    SigningKeys(commands::oauth::SigningKeysCommand),
    /// What the store holds and what each running server (replica) applied (generation,
    /// reload errors).
    Status,
    /// Apply pending schema migrations (SQLite or PostgreSQL), or with --check only list them.
    Migrate(commands::migrate::MigrateArgs),
    /// Write the configuration as a state document (YAML; secrets as references) to keep in
    /// git and `apply` elsewhere.
    Export,
    /// Make the configuration what a state document declares, showing the diff.
    Apply(commands::state::ApplyArgs),
    /// Move a whole store (every record and the audit trail) to another database.
    #[command(subcommand)]
    Database(commands::transfer::DatabaseCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(cli.command, Command::Serve(_)) {
        arenas::bound();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let format = cli.output;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", output::error_text(format, &err));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = gatehouse::Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let format = cli.output;
    let command = match cli.command {
        Command::Serve(args) => return commands::serve::run(config, args).await,
        Command::Demo(args) => return demo::run(config, args, format).await,
        Command::Migrate(args) => return commands::migrate::run(config, args, format).await,
        Command::Database(cmd) => return commands::transfer::run(config, cmd).await,
        Command::Audit(cmd) if cmd.is_offline() => return cmd.run_offline(format),
        command => command,
    };
    let ctx = commands::Ctx::open(config, format, cli.actor).await?;
    let done = match command {
        // Run above, without an operator context.
        Command::Serve(_) | Command::Demo(_) | Command::Migrate(_) | Command::Database(_) => {
            Ok(ExitCode::SUCCESS)
        }
        Command::Export => commands::state::export(&ctx).await,
        Command::Apply(args) => commands::state::apply(&ctx, args).await,
        Command::Servers(cmd) => cmd.run(&ctx).await,
        Command::Clients(cmd) => cmd.run(&ctx).await,
        Command::Keys(cmd) => cmd.run(&ctx).await,
        Command::Connections(cmd) => cmd.run(&ctx).await,
        Command::Policy(cmd) => cmd.run(&ctx).await,
        Command::Audit(cmd) => cmd.run(&ctx).await,
        Command::Users(cmd) => cmd.run(&ctx).await,
        Command::AdminTokens(cmd) => cmd.run(&ctx).await,
        Command::Groups(cmd) => cmd.run(&ctx).await,
        Command::SigningKeys(cmd) => cmd.run(&ctx).await,
        Command::Status => commands::status::run(&ctx).await,
    };
    ctx.close().await;
    done
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                missing.push(path.clone());
            }
            undocumented(sub, &path, missing);
        }
    }

    #[test]
    fn every_subcommand_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "gatehouse", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
