//! test-connection for a stdio server: `tools/list` asked of the server's shared child (started
//! if it is not running yet, as the first call would), never as any caller.

use serde_json::{Value, json};

use super::probe_outcome::{Outcome, Unreachable};
use crate::{
    context::AppState,
    snapshot::stdio::compile_stdio,
    state::Owner,
    upstream::stdio::supervisor::{FromChild, Supervisor},
};
use gatehouse_model::records::ServerRecord;

/// Pages of tools at most: a child that keeps handing out cursors is not followed forever.
const MAX_PAGES: usize = 100;

pub async fn list_tools(state: &AppState, server: &ServerRecord) -> Outcome {
    // From the stored record, as the next snapshot will compile it: a server just added is
    // probed before every replica has loaded it.
    let launch = match compile_stdio(server, &state.keyring) {
        Ok(Some(launch)) => launch,
        Ok(None) => return Outcome::Unreachable("not a stdio server".into()),
        Err(why) => return Outcome::Unreachable(why),
    };
    let name = server.name.as_str();
    // The probe is no caller: a per-principal server's probe runs in a child of its own.
    let nobody = Owner {
        client: None,
        subject: None,
    };
    let child = match state.stdio.child(name, &launch, nobody) {
        Ok(child) => child,
        Err(refused) => return Outcome::Unreachable(refused.to_string()),
    };
    let gateway = &state.config.gateway;
    if child.wait_ready(gateway.stdio_start_timeout).await.is_err() {
        return Outcome::Unreachable(format!(
            "the program did not start and initialise within {:?}",
            gateway.stdio_start_timeout
        ));
    }
    match pages(&child, gateway.upstream_timeout).await {
        Ok(tools) => Outcome::Tools(tools),
        Err(why) => why.into(),
    }
}

async fn pages(
    child: &Supervisor,
    timeout: std::time::Duration,
) -> Result<Vec<Value>, Unreachable> {
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.take().map_or(json!({}), |c| json!({ "cursor": c }));
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
        let mut call = child
            .request(request, &[])
            .map_err(|e| Unreachable(e.to_string()))?;
        let answer = loop {
            match tokio::time::timeout(timeout, call.messages.recv()).await {
                Err(_) => return Err(Unreachable("tools/list: no answer in time".into())),
                Ok(None) => return Err(Unreachable("tools/list: no answer".into())),
                Ok(Some(FromChild::Crashed(_))) => {
                    return Err(Unreachable("the program exited during tools/list".into()));
                }
                Ok(Some(FromChild::Message(m))) if m.get("method").is_none() => break m,
                Ok(Some(FromChild::Message(_))) => {}
            }
        };
        if let Some(error) = answer.get("error") {
            return Err(Unreachable(format!("tools/list: {error}")));
        }
        let result = &answer["result"];
        tools.extend(result["tools"].as_array().cloned().unwrap_or_default());
        match result.get("nextCursor") {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => return Ok(tools),
        }
    }
    Ok(tools)
}
