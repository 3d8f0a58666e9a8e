//! Syslog for SIEMs: RFC 5424 messages (facility 13, log audit) with the event's key fields as
//! structured data and its JSON as the message; over UDP (a datagram each) or TCP with
//! octet-counting framing (RFC 6587: `LEN SP MSG`).

use std::sync::Arc;

use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpStream, UdpSocket},
};

use super::{Sink, row_json};
use crate::config::audit_sinks::SyslogTransport;
use gatehouse_model::audit::{AuditRow, Decision};

/// The private enterprise number the structured data is named under (`gatehouse@32473`:
/// 32473 is the number RFC 5612 reserves for documentation).
const SD_ID: &str = "gatehouse@32473";
/// Facility 13: log audit.
const FACILITY: u8 = 13;

pub struct SyslogSink {
    address: String,
    transport: SyslogTransport,
    host: String,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
}

impl SyslogSink {
    pub fn new(address: String, transport: SyslogTransport) -> Self {
        let writer = crate::audit::registry::this_writer();
        let host = writer.split(' ').next().unwrap_or("-").to_owned();
        SyslogSink {
            address,
            transport,
            host,
            udp: None,
            tcp: None,
        }
    }

    async fn send(&mut self, message: &str) -> std::io::Result<()> {
        match self.transport {
            SyslogTransport::Udp => {
                if self.udp.is_none() {
                    let socket = UdpSocket::bind(("0.0.0.0", 0)).await?;
                    socket.connect(&self.address).await?;
                    self.udp = Some(socket);
                }
                if let Some(socket) = &self.udp {
                    socket.send(message.as_bytes()).await?;
                }
            }
            SyslogTransport::Tcp => {
                if self.tcp.is_none() {
                    self.tcp = Some(TcpStream::connect(&self.address).await?);
                }
                if let Some(stream) = &mut self.tcp {
                    let frame = format!("{} {message}", message.len());
                    if let Err(e) = stream.write_all(frame.as_bytes()).await {
                        self.tcp = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Sink for SyslogSink {
    async fn deliver(&mut self, rows: &[Arc<AuditRow>]) -> Result<(), String> {
        for row in rows {
            let message = format_5424(row, &self.host);
            self.send(&message)
                .await
                .map_err(|e| format!("{}: {e}", self.address))?;
        }
        Ok(())
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG`.
pub fn format_5424(row: &AuditRow, host: &str) -> String {
    let event = &row.event;
    let severity = match event.decision {
        Decision::Allow => 6,
        Decision::Deny => 4,
        Decision::Error => 3,
    };
    let timestamp = jiff::Timestamp::from_millisecond(event.ts_ms)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| "-".to_owned());
    let msgid = if event.operator.is_some() {
        "operator"
    } else {
        "request"
    };
    let mut data = format!("[{SD_ID}");
    let mut param = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            data.push_str(&format!(" {name}=\"{}\"", escape_param(value)));
        }
    };
    param("decision", Some(event.decision.as_str()));
    param("reason", event.reason.as_deref());
    param("rule", event.rule.as_deref());
    param("client", event.client.as_deref());
    param("user", event.user.as_deref());
    param("server", event.server.as_deref());
    param("tool", event.tool.as_deref());
    param("ip", event.ip.as_deref());
    param("requestId", Some(&event.request_id));
    param(
        "chain",
        Some(&format!("{}:{}", row.chain_id, row.chain_seq)),
    );
    if let Some(operator) = &event.operator {
        param("actor", Some(&operator.actor));
        param("action", Some(&operator.action));
    }
    data.push(']');
    format!(
        "<{}>1 {timestamp} {} gatehouse {} {msgid} {data} {}",
        FACILITY * 8 + severity,
        header_field(host),
        std::process::id(),
        row_json(row)
    )
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII without spaces, at most 255 characters; `-` if empty.
fn header_field(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_data_values_escape_quotes_backslashes_and_brackets() {
        assert_eq!(escape_param(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("my host"), "myhost");
        assert_eq!(header_field(""), "-");
    }
}
