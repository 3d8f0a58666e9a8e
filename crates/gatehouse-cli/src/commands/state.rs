//! `gatehouse export` and `gatehouse apply`: the deployment's configuration as a state
//! document teams keep in git (docs/gitops.md). Secret references (`env:NAME`, `file:PATH`)
//! are resolved here, from this process's environment and files.

use anyhow::Context;
use gatehouse::admin::declarative::{self, Options};
use std::{io::Read, path::PathBuf, process::ExitCode};

use super::{Ctx, print};
use crate::output::{Format, print_data};

/// `--exit-code` with `--dry-run`: the plan is not empty.
const CHANGES_PENDING: u8 = 3;

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The state document (`-`: standard input).
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Show the changes, make none.
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the file's sections no longer name (clients and users are disabled,
    /// admin tokens revoked). Sections the file leaves out are never touched.
    #[arg(long)]
    prune: bool,
    /// With --dry-run: exit 3 when there are changes to make, 0 when there are none.
    #[arg(long, requires = "dry_run")]
    exit_code: bool,
}

/// Writes the state document: YAML, or JSON with `-o json`.
pub async fn export(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let state = ctx.ops.export_state().await?;
    if ctx.format == Format::Table {
        print(&declarative::to_yaml(&state).map_err(anyhow::Error::msg)?);
    } else {
        print_data(ctx.format, &state)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.file)?;
    let state =
        declarative::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let options = Options {
        dry_run: args.dry_run,
        prune: args.prune,
        // Through the admin API the server decides by the token's role.
        programs: true,
    };
    let outcome = ctx
        .ops
        .apply_state(state, options)
        .await
        .map_err(|err| err.context(format!("applying {}", args.file.display())))?;
    if ctx.format == Format::Table {
        print(&declarative::render(&outcome.plan));
        let count = outcome.plan.changes.len();
        let summary = if count == 0 {
            "no changes".to_owned()
        } else if args.dry_run {
            format!("dry run: {count} change(s) planned, none made")
        } else {
            format!("applied {} change(s)", outcome.applied)
        };
        print(&format!("{summary}\n"));
    } else {
        print_data(ctx.format, &outcome)?;
    }
    if args.exit_code && !outcome.plan.is_empty() {
        return Ok(ExitCode::from(CHANGES_PENDING));
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
