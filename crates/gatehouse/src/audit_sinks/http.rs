//! The HTTP sinks, over the gateway's outbound client (TLS with the system roots and
//! `gateway.upstream_ca_files`): OTLP/HTTP logs in the JSON encoding, and signed webhooks.

use std::{
    io::Write as _,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::json;

use super::{Sink, SinkCounters, row_json};
use crate::{secrets::HmacSha256, upstream::client::UpstreamClient};
use gatehouse_model::audit::{AuditRow, Decision};

fn parse_uri(url: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!("{url:?} is not an absolute http(s) URL"));
    }
    Ok(uri)
}

/// POSTs `body`; whether the answer was 2xx, within `timeout`.
async fn post(
    client: &UpstreamClient,
    uri: &hyper::Uri,
    headers: &[(&str, String)],
    body: String,
    timeout: Duration,
) -> Result<(), String> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, client.send(request)).await {
        Err(_) => Err("no answer in time".into()),
        Ok(Err(err)) => Err(err.to_string()),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status())),
    }
}

pub struct OtlpSink {
    client: UpstreamClient,
    uri: hyper::Uri,
    timeout: Duration,
}

impl OtlpSink {
    pub fn new(client: UpstreamClient, endpoint: &str, timeout: Duration) -> Result<Self, String> {
        Ok(OtlpSink {
            client,
            uri: parse_uri(endpoint)?,
            timeout,
        })
    }
}

impl Sink for OtlpSink {
    async fn deliver(&mut self, rows: &[Arc<AuditRow>]) -> Result<(), String> {
        let body = otlp_logs(rows).to_string();
        post(&self.client, &self.uri, &[], body, self.timeout).await
    }
}

/// An `ExportLogsServiceRequest` in OTLP's JSON encoding: one log record per event, its JSON as
/// the body and its key fields as attributes.
pub fn otlp_logs(rows: &[Arc<AuditRow>]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let event = &row.event;
            let (number, text) = match event.decision {
                Decision::Allow => (9, "INFO"),
                Decision::Deny => (13, "WARN"),
                Decision::Error => (17, "ERROR"),
            };
            let mut attributes = vec![
                attribute("gatehouse.decision", Some(event.decision.as_str())),
                attribute("gatehouse.request_id", Some(&event.request_id)),
                attribute(
                    "gatehouse.chain",
                    Some(&format!("{}:{}", row.chain_id, row.chain_seq)),
                ),
            ];
            for (key, value) in [
                ("gatehouse.reason", event.reason.as_deref()),
                ("gatehouse.rule", event.rule.as_deref()),
                ("gatehouse.client", event.client.as_deref()),
                ("gatehouse.server", event.server.as_deref()),
                ("gatehouse.tool", event.tool.as_deref()),
                ("client.address", event.ip.as_deref()),
            ] {
                if value.is_some() {
                    attributes.push(attribute(key, value));
                }
            }
            json!({
                "timeUnixNano": (i128::from(event.ts_ms) * 1_000_000).to_string(),
                "severityNumber": number,
                "severityText": text,
                "body": {"stringValue": row_json(row)},
                "attributes": attributes,
            })
        })
        .collect();
    json!({
        "resourceLogs": [{
            "resource": {"attributes": [attribute("service.name", Some("gatehouse"))]},
            "scopeLogs": [{
                "scope": {"name": "gatehouse.audit"},
                "logRecords": records,
            }],
        }],
    })
}

fn attribute(key: &str, value: Option<&str>) -> serde_json::Value {
    json!({"key": key, "value": {"stringValue": value.unwrap_or_default()}})
}

/// How a webhook retries.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub retries: u32,
    pub backoff: Duration,
    pub timeout: Duration,
}

pub struct WebhookSink {
    client: UpstreamClient,
    uri: hyper::Uri,
    key: Vec<u8>,
    retries: Retries,
    dead_letter: PathBuf,
    counters: Arc<SinkCounters>,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl WebhookSink {
    pub fn new(
        client: UpstreamClient,
        url: &str,
        secret: &str,
        retries: Retries,
        dead_letter: PathBuf,
        counters: Arc<SinkCounters>,
    ) -> Result<Self, String> {
        Ok(WebhookSink {
            client,
            uri: parse_uri(url)?,
            key: signing_key(secret)?,
            retries,
            dead_letter,
            counters,
        })
    }

    async fn deliver_one(&self, row: &AuditRow) -> Result<(), String> {
        // Stable across retries, so a receiver can drop a second delivery.
        let id = format!("gh_{}_{}", row.chain_id, row.chain_seq);
        let body = row_json(row);
        let mut last = String::new();
        for attempt in 0..=self.retries.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff(self.retries.backoff, attempt)).await;
            }
            let timestamp = jiff::Timestamp::now().as_second().to_string();
            let signature = sign(&self.key, &id, &timestamp, &body);
            let headers = [
                ("webhook-id", id.clone()),
                ("webhook-timestamp", timestamp),
                ("webhook-signature", signature),
            ];
            match post(
                &self.client,
                &self.uri,
                &headers,
                body.clone(),
                self.retries.timeout,
            )
            .await
            {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            }
        }
        self.dead_letter(&id, row, &last);
        Err(last)
    }

    fn dead_letter(&self, id: &str, row: &AuditRow, why: &str) {
        let line = json!({
            "webhook_id": id,
            "url": self.uri.to_string(),
            "attempts": self.retries.retries + 1,
            "error": why,
            "event": row,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_letter)
            .and_then(|mut file| writeln!(file, "{line}"));
        match written {
            Ok(()) => {
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(
                file = %self.dead_letter.display(),
                error = %e,
                "could not write a webhook's dead letter; the event is in the audit trail"
            ),
        }
    }
}

impl Sink for WebhookSink {
    async fn deliver(&mut self, rows: &[Arc<AuditRow>]) -> Result<(), String> {
        let mut failed = None;
        for row in rows {
            match self.deliver_one(row).await {
                Ok(()) => {}
                Err(why) => failed = Some(why),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// `backoff · 2^(attempt-1)` plus up to `backoff` of jitter, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(1 << (attempt - 1).min(16));
    let jitter = crate::secrets::random_array::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    (exponential + Duration::from_millis(jitter % base_ms)).min(MAX_BACKOFF)
}

/// Standard Webhooks: a `whsec_` secret is base64 of the key; any other text is the key.
fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "the whsec_ secret is not base64".to_owned())?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 {
        return Err("the webhook secret is shorter than 16 bytes".into());
    }
    Ok(key)
}

/// `v1,` and base64 of HMAC-SHA256(key, `id.timestamp.body`).
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &str) -> String {
    use hmac::{KeyInit, Mac as _};
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference implementations.
    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..5 {
            let wait = backoff(base, attempt);
            let floor = base * (1 << (attempt - 1));
            assert!(wait >= floor && wait < floor + base, "{attempt}: {wait:?}");
        }
        assert_eq!(backoff(Duration::from_secs(10), 10), MAX_BACKOFF);
    }
}
