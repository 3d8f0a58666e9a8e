use clap::Subcommand;
use gatehouse::audit::chain;
use gatehouse_model::audit::{AuditFilter, AuditRow, Checkpoint, Decision, EventKind};
use std::{process::ExitCode, time::Duration};

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_data, time};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The most recent events, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Keep printing new events as they are written (with `-o json`, one JSON object per
        /// line).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only `request` events or only `operator` events (changes made by operators).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<EventKind>,
    },
    /// The newest events matching filters, oldest first.
    Query {
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        server: Option<String>,
        /// allow, deny or error.
        #[arg(long, value_parser = parse_decision)]
        decision: Option<Decision>,
        /// A duration back from now (`1h`, `7d`) or an RFC 3339 time.
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// Only `request` events or only `operator` events (changes made by operators).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<EventKind>,
        /// Only events with this reason (`tool_not_granted`, `rate_limit:<policy id>`, …;
        /// docs/audit.md), or a more specific one under it (`rate_limit` finds them all).
        #[arg(long)]
        reason: Option<String>,
        /// Only events this rule decided: `policy:<id>`, `guardrail:<name>`, `grant`, `scope`
        /// or `pin` (docs/audit.md, "Which rule decided").
        #[arg(long)]
        rule: Option<String>,
        /// How many of the newest matching events; 0 for all (read and printed a page at a
        /// time).
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Check every writer's hash chain, its checkpoint and the chain registry: reports
    /// edited and deleted rows (the newest included) and deleted chains, naming the chain;
    /// exit code 1 if any.
    Verify {
        /// Checkpoints exported earlier with `audit checkpoint`: each chain must still hold
        /// the row its checkpoint names, unchanged.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
        /// Check evidence bundles (`audit export`) offline instead of the database: no
        /// database and no master key needed. Several, in order, must be consecutive.
        #[arg(long, conflicts_with = "checkpoint")]
        bundle: Vec<std::path::PathBuf>,
        /// The bundle exported before the first `--bundle`: the first must continue it.
        #[arg(long, requires = "bundle")]
        previous: Option<std::path::PathBuf>,
        /// The evidence public key (`audit public-key`, obtained out of band) the bundles
        /// must be signed with; without it, the key each bundle names is trusted.
        #[arg(long, requires = "bundle")]
        public_key: Option<String>,
        /// Also check retention's archives (default `audit.archive_dir`): each archive, each
        /// as the continuation of the one before, and each chain's seal against the archive
        /// it names, so archives plus the live table prove the whole history.
        #[arg(long, conflicts_with = "bundle")]
        archive: Option<Option<std::path::PathBuf>>,
    },
    /// Write the events of a time range to an evidence bundle: the rows, each chain's
    /// checkpoints and registry entries, signed with the evidence key, to check offline with
    /// `audit verify --bundle`.
    Export {
        /// Rows recorded before this are left out: a duration back from now or an RFC 3339
        /// time (default: from the first row, or after `--previous`).
        #[arg(long, value_parser = parse_since, conflicts_with = "previous")]
        from: Option<i64>,
        /// The bundle ends before the first row recorded at or after this (default: the
        /// newest row).
        #[arg(long, value_parser = parse_since)]
        to: Option<i64>,
        /// The bundle exported before: this one starts where it ended and names it, so the
        /// two verify as consecutive.
        #[arg(long)]
        previous: Option<std::path::PathBuf>,
        /// The file to write (it must not exist).
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Print the evidence public key (hex, Ed25519) that signs bundles: give it to auditors
    /// out of band, for `audit verify --bundle … --public-key`.
    PublicKey,
    /// Print the signed checkpoint of every chain's head (a JSON array), to keep outside the
    /// database.
    Checkpoint,
}

fn parse_decision(text: &str) -> Result<Decision, String> {
    Decision::parse(text).ok_or_else(|| format!("{text:?} is not one of allow, deny, error"))
}

fn parse_kind(text: &str) -> Result<EventKind, String> {
    EventKind::parse(text).ok_or_else(|| format!("{text:?} is not one of request, operator"))
}

fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let back = gatehouse_model::duration::parse(text)
        .map_err(|e| format!("{e}; or give an RFC 3339 time such as 2026-11-25T09:00:00Z"))?;
    Ok(gatehouse::now_ms() - i64::try_from(back.as_millis()).unwrap_or(i64::MAX))
}

impl AuditCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            AuditCommand::Tail {
                lines,
                follow,
                kind,
            } => {
                let filter = AuditFilter {
                    kind,
                    ..AuditFilter::default()
                };
                let mut out = Output::new(ctx.format, follow, kind);
                let printed = ctx
                    .ops
                    .audit_newest(filter, lines.max(1), &mut |rows| out.rows(rows))
                    .await?;
                if !follow {
                    return out.finish().map(|()| ExitCode::SUCCESS);
                }
                // Headers before the first event, even when there is none yet.
                out.rows(&[])?;
                let mut last = printed.unwrap_or(0);
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let rows = ctx.ops.audit_after(last, kind).await?;
                    if let Some(row) = rows.last() {
                        last = row.seq;
                        out.rows(&rows)?;
                    }
                }
            }
            AuditCommand::Query {
                client,
                server,
                decision,
                since,
                kind,
                reason,
                rule,
                limit,
            } => {
                let filter = AuditFilter {
                    client,
                    server,
                    decision,
                    since_ms: since,
                    kind,
                    reason,
                    rule,
                    ..AuditFilter::default()
                };
                let mut out = Output::new(ctx.format, false, kind);
                ctx.ops
                    .audit_newest(filter, limit, &mut |rows| out.rows(rows))
                    .await?;
                out.finish()?;
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify { bundle, .. } if !bundle.is_empty() => unreachable_online(),
            AuditCommand::Export {
                from,
                to,
                previous,
                file,
            } => {
                let local = ctx.local("audit export")?;
                let range = gatehouse::audit::evidence::ExportRange {
                    from_ms: from,
                    to_ms: to,
                    previous,
                    ..Default::default()
                };
                let exported = gatehouse::audit::evidence::export(
                    &*local.store,
                    &local.keyring,
                    &range,
                    &file,
                )
                .await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &exported.manifest)?;
                } else {
                    say(
                        ctx.format,
                        &format!(
                            "wrote {}: {} events in {} chain(s), sha256 {}",
                            file.display(),
                            exported.manifest.rows,
                            exported.manifest.chains.len(),
                            exported.digest
                        ),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::PublicKey => {
                let local = ctx.local("audit public-key")?;
                print(&format!(
                    "{}\n",
                    gatehouse::audit::evidence::public_key_hex(&local.keyring)
                ));
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify {
                archive: Some(dir), ..
            } => {
                let local = ctx.local("audit verify")?;
                let dir = dir.unwrap_or_else(|| ctx.config.audit_archive_dir());
                let report = gatehouse::audit::retention::verify_archive(
                    &*local.store,
                    &local.keyring,
                    &dir,
                )
                .await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({
                            "intact": report.is_intact(),
                            "archives": report.bundles.iter().map(|(path, r)| serde_json::json!({
                                "file": path.display().to_string(),
                                "report": r,
                            })).collect::<Vec<_>>(),
                            "live": report.live,
                            "problems": report.problems,
                        }),
                    )?;
                } else {
                    for (path, bundle) in &report.bundles {
                        if bundle.is_intact() {
                            say(
                                ctx.format,
                                &format!(
                                    "{}: intact: {} events",
                                    path.display(),
                                    bundle.rows_checked
                                ),
                            );
                        } else {
                            say(ctx.format, &format!("{}: BROKEN:", path.display()));
                            for problem in &bundle.problems {
                                say(ctx.format, &format!("  - {problem}"));
                            }
                        }
                    }
                    for problem in &report.problems {
                        say(ctx.format, &format!("archive: {problem}"));
                    }
                    for found in &report.live.problems {
                        say(ctx.format, &format!("live trail: {found}"));
                    }
                    say(
                        ctx.format,
                        &format!(
                            "{}: {} archive(s) and {} live events",
                            if report.is_intact() {
                                "audit history intact"
                            } else {
                                "audit history BROKEN"
                            },
                            report.bundles.len(),
                            report.live.rows_checked
                        ),
                    );
                }
                Ok(if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            AuditCommand::Verify { checkpoint, .. } => {
                let local = ctx.local("audit verify")?;
                let exported = match checkpoint {
                    Some(path) => read_checkpoints(&path)?,
                    None => Vec::new(),
                };
                let report = chain::verify_with(&*local.store, &local.keyring, &exported).await?;
                let chains = match report.chains.len() {
                    1 => "1 chain".to_owned(),
                    n => format!("{n} chains"),
                };
                if ctx.format.is_data() {
                    print_data(ctx.format, &report)?;
                } else if report.is_intact() {
                    say(
                        ctx.format,
                        &format!(
                            "audit trail intact: {} events verified in {chains}",
                            report.rows_checked
                        ),
                    );
                } else {
                    say(
                        ctx.format,
                        &format!(
                            "audit trail BROKEN ({} events read in {chains}):",
                            report.rows_checked
                        ),
                    );
                    for found in &report.problems {
                        say(ctx.format, &format!("  - {found}"));
                    }
                }
                Ok(if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            AuditCommand::Checkpoint => {
                let local = ctx.local("audit checkpoint")?;
                let checkpoints = local.store.audit_checkpoints().await?;
                if checkpoints.is_empty() {
                    anyhow::bail!("no checkpoint yet: the trail has had no event written");
                }
                // Always JSON: the file `audit verify --checkpoint` reads.
                print_data(Format::Json, &checkpoints)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Offline commands never reach [`AuditCommand::run`]: `main` runs them before opening a
/// database.
fn unreachable_online() -> anyhow::Result<ExitCode> {
    anyhow::bail!("audit verify --bundle runs without a database")
}

impl AuditCommand {
    /// Whether the command runs without the database and the master key.
    pub fn is_offline(&self) -> bool {
        matches!(self, AuditCommand::Verify { bundle, .. } if !bundle.is_empty())
    }

    /// `audit verify --bundle`: each bundle on its own and as the continuation of the one
    /// before it (`--previous` first); exit code 1 on any problem.
    pub fn run_offline(self, format: Format) -> anyhow::Result<ExitCode> {
        let AuditCommand::Verify {
            bundle,
            previous,
            public_key,
            ..
        } = self
        else {
            anyhow::bail!("only audit verify --bundle runs offline");
        };
        let paths: Vec<std::path::PathBuf> = previous.iter().cloned().chain(bundle).collect();
        let reports = gatehouse::audit::evidence::verify_sequence(&paths, public_key.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?;
        let intact = reports.iter().all(|r| r.is_intact());
        if format.is_data() {
            print_data(format, &reports)?;
        } else {
            for (path, report) in paths.iter().zip(&reports) {
                if report.is_intact() {
                    say(
                        format,
                        &format!(
                            "{}: intact: {} events in {} chain(s), signed by {}",
                            path.display(),
                            report.rows_checked,
                            report.manifest.chains.len(),
                            report.manifest.public_key
                        ),
                    );
                } else {
                    say(format, &format!("{}: BROKEN:", path.display()));
                    for problem in &report.problems {
                        say(format, &format!("  - {problem}"));
                    }
                }
            }
        }
        Ok(if intact {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Exported checkpoints: an array (one per chain), or the single object exported before
/// chains (chain 0's).
fn read_checkpoints(path: &std::path::Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let not_one = |e| anyhow::anyhow!("{}: not a checkpoint: {e}", path.display());
    if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(not_one)
    } else {
        serde_json::from_str(&text)
            .map(|one| vec![one])
            .map_err(not_one)
    }
}

/// Prints rows as they are read: a table (headers once), a JSON array written element by
/// element, or JSON lines (`tail -f`), so memory holds one page whatever the total.
struct Output {
    format: Format,
    lines: bool,
    started: bool,
    /// Operator events only: their own table (actor, action, target, what changed).
    operators: bool,
}

impl Output {
    fn new(format: Format, follow: bool, kind: Option<EventKind>) -> Self {
        Output {
            format,
            lines: follow,
            started: false,
            operators: kind == Some(EventKind::Operator),
        }
    }

    fn table(&self, rows: &[AuditRow], headers: bool) -> String {
        if self.operators {
            super::operator_events::table(rows, headers)
        } else {
            table(rows, headers)
        }
    }

    fn rows(&mut self, rows: &[AuditRow]) -> anyhow::Result<()> {
        let mut text = String::new();
        match (self.format, self.lines) {
            (Format::Json, true) => {
                for row in rows {
                    text.push_str(&serde_json::to_string(row)?);
                    text.push('\n');
                }
            }
            (Format::Json, false) => {
                for row in rows {
                    text.push_str(if self.started { ",\n" } else { "[\n" });
                    text.push_str(&serde_json::to_string(row)?);
                    self.started = true;
                }
            }
            (Format::Yaml, _) => {
                // A sequence, one item per row, whether or not it follows.
                for row in rows {
                    text.push_str(&crate::yaml::sequence_item(&serde_json::to_value(row)?));
                    self.started = true;
                }
            }
            (Format::Table, _) => {
                if rows.is_empty() && self.started {
                    return Ok(());
                }
                text = self.table(rows, !self.started);
                self.started = true;
            }
        }
        print(&text);
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match (self.format, self.started) {
            (Format::Json, true) if !self.lines => print("\n]\n"),
            (Format::Json, false) if !self.lines => print("[]\n"),
            (Format::Yaml, false) if !self.lines => print("[]\n"),
            (Format::Table, false) => print(&self.table(&[], true)),
            _ => {}
        }
        Ok(())
    }
}

fn table(rows: &[AuditRow], headers: bool) -> String {
    let mut table = Table::new(&[
        "SEQ", "CHAIN", "TIME", "CLIENT", "KEY", "SERVER", "METHOD", "TOOL", "DECISION", "REASON",
        "RULE", "OUTCOME", "STATUS", "LATENCY",
    ]);
    let or_dash = |text: &Option<String>| text.as_deref().map_or("-".into(), printable);
    for r in rows {
        let e = &r.event;
        if let Some(op) = &e.operator {
            table.row(super::operator_events::request_table_row(r, op));
            continue;
        }
        table.row(vec![
            r.seq.to_string(),
            // Where `audit verify` places the row: chain and row in the chain.
            format!("{}:{}", r.chain_id, r.chain_seq),
            time(Some(e.ts_ms)),
            or_dash(&e.client),
            or_dash(&e.credential_id),
            or_dash(&e.server),
            printable(e.rpc_method.as_deref().unwrap_or(&e.http_method)),
            if e.batch.is_empty() {
                or_dash(&e.tool)
            } else {
                let tools: Vec<&str> = e.batch.iter().filter_map(|m| m.tool.as_deref()).collect();
                if tools.is_empty() {
                    "-".into()
                } else {
                    printable(&tools.join(","))
                }
            },
            e.decision.as_str().into(),
            or_dash(&e.reason),
            or_dash(&e.rule),
            e.outcome.map_or("-", |o| o.as_str()).into(),
            e.status.to_string(),
            format!("{:.1}ms", e.latency_us as f64 / 1000.0),
        ]);
    }
    let text = table.render();
    if headers {
        text
    } else {
        text.lines().skip(1).map(|l| format!("{l}\n")).collect()
    }
}

/// Caller-chosen text (tool names, methods) as a terminal shows it safely: control
/// characters (newlines, escape sequences) and invisible or reordering format characters
/// are written as `\u{…}` escapes, so they can neither forge rows nor drive the terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if hidden {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn caller_text_cannot_break_lines_or_reach_the_terminal() {
        assert_eq!(printable("tools/call"), "tools/call");
        assert_eq!(printable("é-名前"), "é-名前");
        assert_eq!(printable("a\nb"), "a\\u{a}b");
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(printable("x\u{202e}y\r"), "x\\u{202e}y\\u{d}");
    }
}
