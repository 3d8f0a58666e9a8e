//! The supervisor against a real child process: a small MCP server in Python that answers
//! `initialize`, echoes calls, asks its caller for a sample, prints its environment, and
//! exits on request.

use super::*;

const CHILD: &str = r#"
import json, os, signal, sys, time
stubborn = False
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        out = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
               "serverInfo": {"name": "child", "version": "1"}}
    elif method == "tools/call":
        name = m["params"]["name"]
        if name == "crash":
            sys.exit(3)
        elif name == "env":
            out = {"env": dict(os.environ)}
        elif name == "limits":
            import resource
            out = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                   "as": resource.getrlimit(resource.RLIMIT_AS)[0]}
        elif name == "pid":
            out = {"pid": os.getpid()}
        elif name == "stubborn":
            stubborn = True
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            out = {}
        elif name == "sample":
            print(json.dumps({"jsonrpc": "2.0", "id": "s1",
                              "method": "sampling/createMessage", "params": {}}), flush=True)
            answer = json.loads(sys.stdin.readline())
            out = {"sampled": answer.get("result")}
        else:
            out = {"echo": m["params"].get("arguments")}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": out}), flush=True)
while stubborn:
    time.sleep(1)
"#;

fn child(env: &[(&str, &str)]) -> StdioCommand {
    StdioCommand {
        program: "python3".into(),
        args: vec!["-u".into(), "-c".into(), CHILD.into()],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        cwd: None,
        limits: None,
    }
}

fn quick() -> Lifecycle {
    Lifecycle {
        first: Duration::from_millis(50),
        max: Duration::from_millis(200),
        healthy_after: Duration::from_secs(60),
        stop_grace: Duration::from_millis(300),
    }
}

fn call(id: Value, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"id": id}}})
}

async fn next(call: &mut Call) -> Value {
    tokio::time::timeout(Duration::from_secs(10), call.messages.recv())
        .await
        .expect("the child answers within 10 s")
        .expect("the call's channel stays open until its response")
        .into_value()
}

async fn started(env: &[(&str, &str)]) -> Supervisor {
    let supervisor = Supervisor::start("child", child(env), quick());
    supervisor
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("the child initialises");
    supervisor
}

#[tokio::test]
async fn callers_with_the_same_id_get_their_own_responses() {
    let supervisor = started(&[]).await;
    assert_eq!(
        supervisor.initialize_result().unwrap()["serverInfo"]["name"],
        "child"
    );
    let mut a = supervisor.request(call(json!(1), "echo"), &[]).unwrap();
    let mut b = supervisor.request(call(json!(1), "echo"), &[]).unwrap();
    let (ra, rb) = (next(&mut a).await, next(&mut b).await);
    assert_eq!(ra["id"], json!(1));
    assert_eq!(rb["id"], json!(1));
    assert_ne!(a.key, b.key);
    supervisor.stop();
}

#[tokio::test]
async fn a_sampling_request_reaches_its_caller_and_the_answer_the_child() {
    let supervisor = started(&[]).await;
    let mut call = supervisor
        .request(call(json!("c1"), "sample"), &["sampling"])
        .unwrap();
    let ask = next(&mut call).await;
    assert_eq!(ask["method"], "sampling/createMessage");
    supervisor
        .send(
            call.key,
            json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"text": "hi"}}),
        )
        .unwrap();
    let done = next(&mut call).await;
    assert_eq!(done["id"], json!("c1"));
    assert_eq!(done["result"]["sampled"], json!({"text": "hi"}));
    supervisor.stop();
}

#[tokio::test]
async fn the_child_sees_only_its_own_environment() {
    let supervisor = started(&[("GREETING", "hello")]).await;
    let mut call = supervisor.request(call(json!(1), "env"), &[]).unwrap();
    let env = next(&mut call).await["result"]["env"].clone();
    assert_eq!(env["GREETING"], "hello");
    assert!(
        env.get("PATH").is_some(),
        "PATH is passed so programs are found"
    );
    // Cargo runs this test with CARGO_* and HOME set: none of it may reach the child (a
    // launcher such as a version manager's shim may add its own variables, which is fine).
    let names: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    assert!(
        !names.iter().any(|n| n.starts_with("CARGO") || *n == "HOME"),
        "nothing of Gatehouse's environment leaks: {names:?}"
    );
    supervisor.stop();
}

#[tokio::test]
async fn a_crash_fails_the_calls_in_flight_and_the_child_comes_back() {
    let supervisor = started(&[]).await;
    let mut crashing = supervisor.request(call(json!(9), "crash"), &[]).unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(10), crashing.messages.recv())
        .await
        .expect("the crash is told within 10 s");
    let Some(FromChild::Crashed(failed)) = failed else {
        panic!("a crash is told as a crash, not as the child's own answer: {failed:?}")
    };
    assert_eq!(failed["id"], json!(9));
    assert_eq!(failed["error"]["code"], json!(-32603));
    supervisor
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("restarted");
    let mut after = supervisor.request(call(json!(10), "echo"), &[]).unwrap();
    assert_eq!(next(&mut after).await["id"], json!(10));
    supervisor.stop();
}

/// Polls until the process `pid` is gone (or a zombie); false after 10 s.
async fn gone(pid: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.split(' ').nth(2) == Some("Z") => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

async fn pid_of(supervisor: &Supervisor) -> u64 {
    let mut call = supervisor.request(call(json!("pid"), "pid"), &[]).unwrap();
    next(&mut call).await["result"]["pid"].as_u64().unwrap()
}

#[tokio::test]
async fn stopping_ends_the_child_even_one_that_ignores_eof_and_sigterm() {
    for stubborn in [false, true] {
        let supervisor = started(&[]).await;
        let pid = pid_of(&supervisor).await;
        if stubborn {
            let mut call = supervisor.request(call(json!(1), "stubborn"), &[]).unwrap();
            next(&mut call).await;
        }
        supervisor.stop();
        assert!(
            gone(pid).await,
            "stubborn={stubborn}: the child is still running"
        );
    }
}

#[tokio::test]
async fn resource_limits_apply_to_the_child() {
    let limits = ResourceLimits {
        memory_bytes: Some(2 << 30),
        open_files: Some(64),
        ..ResourceLimits::default()
    };
    let supervisor = Supervisor::start(
        "limited",
        StdioCommand {
            limits: Some(limits),
            ..child(&[])
        },
        quick(),
    );
    supervisor
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("the limited child initialises");
    let mut call = supervisor.request(call(json!(1), "limits"), &[]).unwrap();
    let result = next(&mut call).await["result"].clone();
    assert_eq!(result["nofile"], json!(64));
    assert_eq!(result["as"], json!(2u64 << 30));
    supervisor.stop();
}
