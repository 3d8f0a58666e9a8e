//! test-connection for a virtual server: each member probed as it would be alone, at once,
//! and their tools merged under the names the gateway lists them by
//! (`gateway::virtual_names::exposed`), so the operator sees what a client will.

use futures_util::future::join_all;
use serde_json::Value;

use super::probe_outcome::{MemberReach, Outcome};
use super::problem::ApiError;
use crate::{context::AppState, gateway::virtual_names::exposed};
use gatehouse_model::records::ServerRecord;

pub async fn list_tools(state: &AppState, server: &ServerRecord) -> Result<Outcome, ApiError> {
    let probes = join_all(server.members.iter().map(|member| async move {
        let record = match state.store.get_server(member).await {
            Ok(record) => record,
            Err(crate::store::StoreError::NotFound { .. }) => {
                return Ok(Outcome::Unreachable("no such server".into()));
            }
            Err(err) => return Err(ApiError::from(err)),
        };
        if !record.members.is_empty() {
            // The gateway does not nest virtual servers either.
            return Ok(Outcome::Unreachable(
                "a virtual server cannot be a member".into(),
            ));
        }
        super::probe::list_tools(state, &record).await
    }))
    .await;
    let mut tools = Vec::new();
    let mut members = Vec::with_capacity(probes.len());
    for (member, probe) in server.members.iter().zip(probes) {
        let error = match probe? {
            Outcome::Tools(found) => {
                tools.extend(found.into_iter().map(|tool| renamed(member, tool)));
                None
            }
            Outcome::Unreachable(why) => Some(why),
            Outcome::Members { .. } => Some("a virtual server cannot be a member".into()),
        };
        members.push(MemberReach {
            server: member.clone(),
            error,
        });
    }
    Ok(Outcome::Members { tools, members })
}

/// The tool as the virtual server lists it: its name prefixed with the member's.
fn renamed(member: &str, mut tool: Value) -> Value {
    if let Some(name) = tool.get("name").and_then(Value::as_str) {
        let name = exposed(member, name);
        tool["name"] = Value::String(name);
    }
    tool
}
