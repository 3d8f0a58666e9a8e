use super::*;

fn observed<'a>(
    server: Option<&'a Arc<str>>,
    tool: Option<&'a str>,
    decision: &'static str,
    reason: &'static str,
) -> Observed<'a> {
    Observed {
        server,
        method: if tool.is_some() { "tools/call" } else { "-" },
        tool,
        forwarded: decision == "allow",
        decision,
        reason,
        head: Duration::from_micros(300),
        upstream: (decision == "allow").then(|| Duration::from_micros(200)),
    }
}

#[test]
fn counts_and_buckets_render() {
    let metrics = Metrics::default();
    let demo: Arc<str> = Arc::from("demo");
    metrics.record(&observed(Some(&demo), Some("echo"), "allow", "-"));
    metrics.record(&observed(
        Some(&demo),
        Some("echo"),
        "deny",
        "tool_not_granted",
    ));
    metrics.record(&observed(None, None, "deny", "unknown_server"));
    let text = metrics.render(
        &[Scraped::Value {
            name: "gatehouse_snapshot_generation",
            help: "Applied store generation.",
            value: 7.0,
        }],
        "",
    );
    assert!(text.contains("gatehouse_requests_total{server=\"demo\",method=\"tools/call\",tool=\"echo\",decision=\"deny\",reason=\"tool_not_granted\"} 1"), "{text}");
    assert!(text.contains(
        "gatehouse_requests_total{server=\"-\",method=\"-\",tool=\"\",decision=\"deny\",reason=\"unknown_server\"} 1"
    ), "{text}");
    assert!(
        text.contains("gatehouse_request_duration_seconds_bucket{le=\"0.0005\",server=\"demo\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "gatehouse_upstream_duration_seconds_bucket{le=\"0.00025\",server=\"demo\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("gatehouse_snapshot_generation 7"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn a_tool_gets_a_label_only_once_a_call_to_it_was_allowed_and_the_set_is_capped() {
    let metrics = Metrics::default();
    let demo: Arc<str> = Arc::from("demo");
    metrics.record(&observed(
        Some(&demo),
        Some("made-up"),
        "deny",
        "tool_not_granted",
    ));
    for i in 0..MAX_TOOLS_PER_SERVER + 5 {
        let name = format!("tool{i}");
        metrics.record(&observed(Some(&demo), Some(&name), "allow", "-"));
    }
    let text = metrics.render(&[], "");
    assert!(!text.contains("tool=\"made-up\""), "{text}");
    assert!(text.contains("tool=\"tool0\""), "{text}");
    assert!(
        !text.contains(&format!("tool=\"tool{MAX_TOOLS_PER_SERVER}\"")),
        "{text}"
    );
    assert!(
        text.contains("tool=\"other\",decision=\"allow\",reason=\"-\"} 5"),
        "{text}"
    );
}

#[test]
fn guardrail_notes_count_by_detector_and_action() {
    let metrics = Metrics::default();
    metrics.guardrail_note("guardrail:pii:email:redact");
    metrics.guardrail_note("guardrail:pii:email:redact");
    metrics.guardrail_note("not-a-finding");
    let text = metrics.render(&[], "");
    assert!(
        text.contains("gatehouse_guardrail_findings_total{detector=\"email\",action=\"redact\"} 2"),
        "{text}"
    );
}

#[test]
fn tokens_are_counted_by_their_grant_including_jwt_bearer() {
    let metrics = Metrics::default();
    metrics.token_outcome("jwt-bearer", None);
    metrics.token_outcome("jwt-bearer", Some("invalid_grant"));
    metrics.token_outcome("something-else", None);
    let text = metrics.render(&[], "");
    assert!(
        text.contains(r#"gatehouse_oauth_tokens_issued_total{grant="jwt_bearer"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"gatehouse_oauth_token_failures_total{grant="jwt_bearer",error="invalid_grant"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"gatehouse_oauth_tokens_issued_total{grant="-"} 1"#));
}
