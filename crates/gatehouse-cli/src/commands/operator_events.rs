//! How `gatehouse audit` shows operator events: in the request table (the actor where the
//! client goes, the action where the method goes), or with `--kind operator` in a table of
//! their own that says what changed.

use gatehouse_model::audit::{AuditRow, OperatorAction};
use serde_json::Value;

use super::audit::printable;
use crate::output::{Table, time};

/// The event as a row of the request table (`SEQ CHAIN TIME CLIENT KEY SERVER METHOD TOOL
/// DECISION REASON OUTCOME STATUS LATENCY`).
pub fn request_table_row(row: &AuditRow, op: &OperatorAction) -> Vec<String> {
    vec![
        row.seq.to_string(),
        format!("{}:{}", row.chain_id, row.chain_seq),
        time(Some(row.event.ts_ms)),
        format!("operator {}", printable(&op.actor)),
        "-".into(),
        "-".into(),
        printable(&op.action),
        printable(&op.target),
        row.event.decision.as_str().into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        format!("{:.1}ms", row.event.latency_us as f64 / 1000.0),
    ]
}

pub fn table(rows: &[AuditRow], headers: bool) -> String {
    let mut table = Table::new(&["SEQ", "TIME", "ACTOR", "FROM", "ACTION", "TARGET", "CHANGE"]);
    for row in rows {
        let Some(op) = &row.event.operator else {
            continue;
        };
        let from = match &op.host {
            Some(host) => format!("{}@{host}", op.origin),
            None => op.origin.clone(),
        };
        table.row(vec![
            row.seq.to_string(),
            time(Some(row.event.ts_ms)),
            printable(&op.actor),
            printable(&from),
            printable(&op.action),
            printable(&op.target),
            printable(&change(op.before.as_ref(), op.after.as_ref())),
        ]);
    }
    let text = table.render();
    if headers {
        text
    } else {
        text.lines().skip(1).map(|l| format!("{l}\n")).collect()
    }
}

/// The fields that differ, `field: before → after`; `-o json` has the whole summaries.
fn change(before: Option<&Value>, after: Option<&Value>) -> String {
    let fields = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
    let (old, new) = (fields(before), fields(after));
    let mut changes = Vec::new();
    for (name, value) in &new {
        match old.get(name) {
            Some(previous) if previous == value => {}
            Some(previous) if before.is_some() => {
                changes.push(format!("{name}: {previous} → {value}"));
            }
            _ if before.is_some() => changes.push(format!("{name}: → {value}")),
            _ => {}
        }
    }
    match (before, after) {
        (None, Some(_)) => "created".into(),
        (Some(_), None) => "removed".into(),
        _ if changes.is_empty() => "-".into(),
        _ => changes.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::change;
    use serde_json::json;

    #[test]
    fn the_change_names_the_fields_that_differ() {
        let before = json!({"url": "http://a", "revoked_at": null, "label": "x"});
        let after = json!({"url": "http://b", "revoked_at": 5, "label": "x"});
        assert_eq!(
            change(Some(&before), Some(&after)),
            "revoked_at: null → 5; url: \"http://a\" → \"http://b\""
        );
        assert_eq!(change(None, Some(&after)), "created");
        assert_eq!(change(Some(&before), None), "removed");
        assert_eq!(change(Some(&before), Some(&before)), "-");
    }
}
