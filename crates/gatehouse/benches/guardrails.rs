//! Guardrail scan throughput on realistic tool results: bytes per second through the default
//! detector set plus PII redaction, for clean payloads (the common case: one RegexSet pass
//! finds nothing) and for payloads full of findings (every span located, validated, redacted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, counter::BytesCount};
use gatehouse::guardrails::{self, Direction, Guardrail, GuardrailSpec};
use serde_json::{Value, json};
use std::sync::Arc;

fn main() {
    divan::main();
}

fn guardrail(spec: Value) -> Arc<Guardrail> {
    let spec: GuardrailSpec = serde_json::from_value(spec).unwrap();
    Arc::new(Guardrail::compile("bench", None, None, None, &spec).unwrap())
}

fn rules() -> Vec<Arc<Guardrail>> {
    vec![
        guardrail(json!({ "action": "block", "detectors": [
            "aws_access_key", "gcp_api_key", "github_token", "slack_token", "openai_key",
            "private_key", "gatehouse_key", "prompt_injection"
        ] })),
        guardrail(
            json!({ "action": "redact", "detectors": ["email", "phone", "iban", "credit_card"] }),
        ),
    ]
}

const PROSE: &str = "Quarterly revenue grew in all regions except the north, where the \
    distribution centre closed for renovation. Operating costs were in line with the plan; \
    the board approved the new pricing model effective next month. ";

/// A tool result of about `size` bytes: `rows` records with prose, numbers and (optionally)
/// PII in every fifth row.
fn payload(size: usize, with_pii: bool) -> Value {
    let mut rows = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let note = if with_pii && i % 5 == 0 {
            format!(
                "{PROSE} Contact jane.doe{i}@example.com or +33 1 23 45 67 89, IBAN DE89 3704 0044 0532 0130 00, card 4111 1111 1111 1111."
            )
        } else {
            PROSE.to_owned()
        };
        let row = json!({ "id": i, "account": format!("ACC-{i:06}"), "amount": 1234.5 + i as f64, "note": note });
        total += row.to_string().len();
        rows.push(row);
        i += 1;
    }
    json!({ "content": [{ "type": "text", "text": "report" }], "structuredContent": { "rows": rows } })
}

fn scan(bencher: Bencher<'_, '_>, size: usize, with_pii: bool) {
    let rules = rules();
    let value = payload(size, with_pii);
    let bytes = value.to_string().len();
    bencher
        .counter(BytesCount::new(bytes))
        .with_inputs(|| value.clone())
        .bench_local_values(|mut v| guardrails::apply(&rules, Direction::Response, None, &mut v));
}

#[divan::bench(args = [4 * 1024, 64 * 1024, 1024 * 1024])]
fn clean(bencher: Bencher<'_, '_>, size: usize) {
    scan(bencher, size, false);
}

#[divan::bench(args = [4 * 1024, 64 * 1024, 1024 * 1024])]
fn with_pii(bencher: Bencher<'_, '_>, size: usize) {
    scan(bencher, size, true);
}
