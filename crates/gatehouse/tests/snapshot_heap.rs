//! Heap bytes a snapshot holds per client (with its connection and key), and what a rebuild
//! after one small change allocates while the previous snapshot is still live: a fraction,
//! since unchanged entries are shared (`gatehouse::entries`).
//!
//! A binary of its own because it installs a counting global allocator (stats_alloc's), which would count
//! every concurrent test in `it`. `cargo test -p gatehouse --test snapshot_heap -- --nocapture`
//! prints the figures (BENCHMARKS.md, "Memory across configuration changes"); the sizes do not
//! depend on the build profile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse::{
    policy::PolicyRuntime,
    secrets::Keyring,
    snapshot::{Snapshot, UsageTracker},
};
use gatehouse_model::records::{
    ApiKeyRecord, ClientRecord, ConnectionRecord, ServerRecord, StoreContents,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes live on the heap now (requested sizes, not the allocator's rounding).
fn live() -> isize {
    let stats = ALLOCATOR.stats();
    // A reallocation's growth or shrinkage is already in these two.
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

const NOW: i64 = 1_700_000_000_000;

/// One server; `clients` clients, each with one connection and one key (the shape measured
/// by `gatehouse-cli/tests/reload_memory.rs`).
fn contents(clients: usize, generation: i64) -> StoreContents {
    let mut contents = StoreContents {
        generation,
        servers: vec![ServerRecord {
            name: "demo".into(),
            url: "http://127.0.0.1:9/mcp".into(),
            credential_header: None,
            credential_sealed: None,
            upstream_auth: Default::default(),
            allow_anonymous: false,
            allow_unknown_methods: false,
            pin_action: gatehouse_model::pin_action::PinAction::Block,
            created_at: NOW,
            stdio: None,
            members: Vec::new(),
        }],
        ..StoreContents::default()
    };
    for i in 0..clients {
        let name = format!("client-{i:06}");
        contents.clients.push(ClientRecord {
            name: name.clone(),
            description: String::new(),
            disabled_at: None,
            created_at: NOW,
            oauth: None,
        });
        contents.connections.push(ConnectionRecord {
            client: name.clone(),
            server: "demo".into(),
            tools: vec!["echo".into(), "search_*".into()],
            resources: false,
            prompts: false,
            created_at: NOW,
        });
        contents.api_keys.push(key(&format!("k{i:011}"), &name));
    }
    contents
}

fn key(id: &str, client: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        client: client.into(),
        label: "ci".into(),
        secret_hash: vec![7; 32],
        tools: None,
        created_at: NOW,
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
    }
}

struct Builder {
    keyring: Keyring,
    usage: UsageTracker,
    runtime: PolicyRuntime,
}

impl Builder {
    fn new() -> Self {
        Self {
            keyring: Keyring::from_master(&[7; 32]),
            usage: UsageTracker::default(),
            runtime: PolicyRuntime::default(),
        }
    }

    fn build(&self, previous: Option<&Snapshot>, contents: StoreContents) -> Snapshot {
        Snapshot::build_on(
            previous,
            contents,
            &self.keyring,
            "https://gw.example",
            &self.usage,
            &self.runtime,
        )
        .unwrap()
    }
}

#[test]
fn a_rebuild_after_one_change_allocates_a_fraction_of_the_snapshot() {
    const CLIENTS: usize = 10_000;
    let builder = Builder::new();
    let base = live();
    let first = builder.build(None, contents(CLIENTS, 1));
    let held = live() - base;
    assert_eq!(first.keys.len(), CLIENTS);

    // What the store hands over is dropped by the build: only what the new snapshot keeps
    // is counted.
    let before_rebuild = live();
    let mut changed = contents(CLIENTS, 2);
    let records = live() - before_rebuild;
    changed.api_keys.push(key("kchanged0001", "client-000000"));
    let second = builder.build(Some(&first), changed);
    let rebuilt = live() - before_rebuild;
    assert_eq!(second.keys.len(), CLIENTS + 1);
    drop(first);
    let settled = live() - base;

    // The new snapshot shares every entry the change left alone: what it adds beside the
    // live one is its maps and the changed entries, a small part of a whole copy.
    assert!(
        rebuilt * 4 < held,
        "a rebuild after one change kept {rebuilt} bytes beside a snapshot of {held}"
    );
    assert!(
        settled <= held + held / 100,
        "{settled} bytes held after the rebuild, {held} before"
    );
    let per_client = |bytes: isize| bytes / CLIENTS as isize;
    eprintln!(
        "snapshot heap: {CLIENTS} clients: {held} bytes held ({} per client with its connection \
         and key); a rebuild after one change keeps {rebuilt} more ({} per client) while the \
         previous snapshot is live; {settled} bytes held after it is dropped; the records read \
         from the store take {records} bytes ({} per client) during a rebuild",
        per_client(held),
        per_client(rebuilt),
        per_client(records),
    );
}
