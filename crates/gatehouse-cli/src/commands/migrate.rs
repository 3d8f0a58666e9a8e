//! `gatehouse migrate [--check]`: applies (or only lists) the schema migrations this build
//! carries, on either backend. `serve` and every other command migrate when they open the
//! store; this runs them ahead of a rolling upgrade, or checks that none is pending.

use gatehouse::{Config, store};
use serde::Serialize;
use std::process::ExitCode;

use crate::output::{Format, print_data};

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Only report pending migrations (change nothing); exit 1 when one is pending.
    #[arg(long)]
    check: bool,
}

#[derive(Serialize)]
struct Report {
    backend: &'static str,
    /// The schema version this build migrates to.
    schema: i64,
    /// Versions the database had applied before this command.
    applied: Vec<i64>,
    /// Versions that were pending: applied now, or (with `--check`) still to apply.
    pending: Vec<Pending>,
    check: bool,
}

#[derive(Serialize)]
struct Pending {
    version: i64,
    name: String,
}

pub async fn run(config: Config, args: MigrateArgs, format: Format) -> anyhow::Result<ExitCode> {
    let url = config.database_url();
    let backend = store::Backend::of(&url)?;
    if backend == store::Backend::Sqlite {
        super::create_data_dir(&config)?;
    }
    let status = store::migrate(&url, args.check).await?;
    let report = Report {
        backend: backend.name(),
        schema: store::schema_version(),
        applied: status.applied,
        pending: status
            .pending
            .into_iter()
            .map(|(version, name)| Pending { version, name })
            .collect(),
        check: args.check,
    };
    let pending = !report.pending.is_empty();
    match format {
        Format::Json | Format::Yaml => print_data(format, &report)?,
        Format::Table => {
            let verb = if args.check { "pending" } else { "applied" };
            for m in &report.pending {
                println!("{verb} {:04} {}", m.version, m.name);
            }
            match (pending, args.check) {
                (false, _) => println!(
                    "{} schema at version {}: nothing to migrate",
                    report.backend, report.schema
                ),
                (true, true) => println!(
                    "{} schema: {} migration(s) pending (run `gatehouse migrate`)",
                    report.backend,
                    report.pending.len()
                ),
                (true, false) => {
                    println!("{} schema now at version {}", report.backend, report.schema)
                }
            }
        }
    }
    Ok(if pending && args.check {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
