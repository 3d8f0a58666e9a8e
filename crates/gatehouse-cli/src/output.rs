//! Tables for people, JSON or YAML for scripts (`--output json|yaml`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl Format {
    /// JSON or YAML: the same data, for scripts; stdout holds nothing else.
    pub fn is_data(self) -> bool {
        self != Format::Table
    }
}

/// A plain aligned table.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<width$}  "));
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(self.headers.clone());
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

/// `value` as pretty JSON or as YAML (a table-format caller gets JSON).
pub fn print_data<T: Serialize>(format: Format, value: &T) -> anyhow::Result<()> {
    let text = match format {
        Format::Yaml => crate::yaml::document(&serde_json::to_value(value)?),
        Format::Table | Format::Json => {
            let mut text = serde_json::to_string_pretty(value)?;
            text.push('\n');
            text
        }
    };
    write_stdout(&text);
    Ok(())
}

/// Writes to stdout. A reader that went away (`gatehouse … | head`) ends the command quietly,
/// as other Unix tools do, instead of a panic with a backtrace.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "error: writing the output: {err}");
        std::process::exit(1);
    }
}

/// How an error reaches the operator: one line and, where there is a fix, a `hint:` line;
/// or one JSON object (`error`, `hint`, and an admin API refusal's `status` and `code`) under
/// `--output json|yaml` (on stderr, so stdout holds only results).
pub fn error_text(format: Format, err: &anyhow::Error) -> String {
    let failure = crate::failure::classify(err);
    let mut message = error_chain(err);
    // A command's writes are one transaction each: one that could not reach the database
    // changed nothing, and the operator should know it may simply run it again.
    let unreachable = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<gatehouse::store::StoreError>())
        .any(gatehouse::store::StoreError::is_unreachable);
    if unreachable {
        message.push_str("; nothing was changed");
    }
    match format {
        Format::Table => match &failure.hint {
            Some(hint) => format!("error: {message}\nhint: {hint}"),
            None => format!("error: {message}"),
        },
        Format::Json | Format::Yaml => {
            let mut body = serde_json::json!({ "error": message });
            if let Some(hint) = failure.hint {
                body["hint"] = hint.into();
            }
            if let Some((status, code)) = failure.problem {
                body["status"] = status.into();
                body["code"] = code.into();
            }
            body.to_string()
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause the text already contains
/// (many errors repeat their source in their own message).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// `2026-11-25 14:03:07Z`-style UTC time, or `-`.
pub fn time(ms: Option<i64>) -> String {
    match ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(ts) => ts.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_repeating_its_source_is_printed_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "configuration: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Outer(std::io::Error::other("unknown field `x`")));
        assert_eq!(
            error_text(Format::Table, &err),
            "error: configuration: unknown field `x`"
        );
        let err = anyhow::Error::new(std::io::Error::other("inner")).context("outer");
        assert_eq!(
            error_text(Format::Json, &err),
            r#"{"error":"outer: inner"}"#
        );
    }
}
