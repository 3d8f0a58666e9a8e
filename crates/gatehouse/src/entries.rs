//! Snapshot entries that stay small and are shared from one generation to the next.
//!
//! Every configuration change rebuilds the snapshot while the previous one is still in use.
//! Compiling every client, connection and key afresh each time made a rebuild allocate a whole
//! second copy (hundreds of MB at 100,000 clients), which the allocator then kept. So a rebuild
//! starts from the previous snapshot: an entry whose inputs are unchanged is the previous
//! entry (the same `Arc`), and only what changed is compiled. "Unchanged" compares everything
//! the entry is compiled from, field by field against the stored record, plus the identity
//! (`Arc::ptr_eq`) of the compiled rules it embeds: a rule whose record changed is compiled
//! anew, so every entry that embeds it is too. When anything differs the entry is rebuilt.
//!
//! Within one generation, identical grants and identical rule lists are built once and shared
//! (most clients have the same connection shape), and the maps are keyed by the same `Arc<str>`
//! names the entries hold.

use std::{
    cell::RefCell,
    collections::HashMap,
    hash::Hash,
    sync::{Arc, atomic::AtomicI64},
};

use crate::{
    grants::Grant,
    guardrails::Guardrail,
    identity::api_keys::{KeyEntry, KeyTable},
    policy::CompiledPolicy,
};
use gatehouse_model::{
    records::{ApiKeyRecord, ClientRecord, ConnectionRecord, PolicyRecord, RecordIssue},
    tool_pattern::ToolPattern,
};

/// One enabled client's connections, sorted by server name. Most clients have one or a few,
/// so a binary search over a boxed slice is as fast as a hash map and a fraction of its size.
#[derive(Debug, Default)]
pub struct ClientEntry {
    connections: Box<[(Arc<str>, Arc<Grant>)]>,
}

impl ClientEntry {
    pub fn connection(&self, server: &str) -> Option<&Arc<Grant>> {
        self.connections
            .binary_search_by(|(name, _)| (**name).cmp(server))
            .ok()
            .map(|at| &self.connections[at].1)
    }

    /// The servers the client is connected to, in name order.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.connections.iter().map(|(name, _)| &**name)
    }

    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }
}

pub type ClientMap = HashMap<Arc<str>, Arc<ClientEntry>>;

/// A policy or guardrail as compiled from its record.
#[derive(Debug, Clone)]
pub enum CompiledRule {
    Policy(Arc<CompiledPolicy>),
    Guardrail(Arc<Guardrail>),
}

/// The records behind the rules that compiled, so the next generation can reuse a rule whose
/// record is unchanged (and with it its counters and every grant that embeds it). A rule that
/// failed is not kept: its deny-all stand-in is built again each time.
#[derive(Debug, Default)]
pub struct CompiledRules {
    by_id: HashMap<String, (PolicyRecord, CompiledRule)>,
}

impl CompiledRules {
    /// The previous generation's rule for `record`, when the record is exactly the same.
    pub fn reuse(&self, record: &PolicyRecord) -> Option<CompiledRule> {
        let (previous, rule) = self.by_id.get(&record.id)?;
        (previous == record).then(|| rule.clone())
    }

    pub fn keep(&mut self, record: &PolicyRecord, rule: CompiledRule) {
        self.by_id.insert(record.id.clone(), (record.clone(), rule));
    }
}

/// Builds each distinct value once per generation (looked up by `K`).
struct Interner<K, V: ?Sized> {
    built: RefCell<HashMap<K, Arc<V>>>,
}

impl<K: Eq + Hash, V: ?Sized> Interner<K, V> {
    fn new() -> Self {
        Self {
            built: RefCell::new(HashMap::new()),
        }
    }

    fn get_or(&self, key: K, build: impl FnOnce() -> Arc<V>) -> Arc<V> {
        self.built
            .borrow_mut()
            .entry(key)
            .or_insert_with(build)
            .clone()
    }
}

/// Where an `Arc` points: the identity of a compiled rule while this build holds it.
fn address<T>(item: &Arc<T>) -> usize {
    Arc::as_ptr(item) as *const () as usize
}

fn same_items<'a, T: 'a>(kept: &[Arc<T>], fresh: impl Iterator<Item = &'a Arc<T>> + Clone) -> bool {
    kept.len() == fresh.clone().count() && kept.iter().zip(fresh).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// What a grant is compiled from, as the interning key of a new one.
#[derive(PartialEq, Eq, Hash)]
struct GrantShape {
    tools: Vec<ToolPattern>,
    resources: bool,
    prompts: bool,
    policies: usize,
    guardrails: usize,
}

/// Compiles clients' connections into [`ClientEntry`]s, reusing the previous generation's.
pub struct ClientBuilder<'a> {
    previous: Option<&'a ClientMap>,
    policies: &'a [Arc<CompiledPolicy>],
    guardrails: &'a [Arc<Guardrail>],
    policy_lists: Interner<Box<[usize]>, [Arc<CompiledPolicy>]>,
    guardrail_lists: Interner<Box<[usize]>, [Arc<Guardrail>]>,
    grants: Interner<GrantShape, Grant>,
    server_names: Interner<String, str>,
}

impl<'a> ClientBuilder<'a> {
    /// `policies` and `guardrails` are every rule of the new generation, in evaluation order.
    pub fn new(
        previous: Option<&'a ClientMap>,
        policies: &'a [Arc<CompiledPolicy>],
        guardrails: &'a [Arc<Guardrail>],
    ) -> Self {
        Self {
            previous,
            policies,
            guardrails,
            policy_lists: Interner::new(),
            guardrail_lists: Interner::new(),
            grants: Interner::new(),
            server_names: Interner::new(),
        }
    }

    /// The entries of the enabled clients among `clients`, with their `connections`; a
    /// connection whose tool patterns do not parse is left out and reported.
    pub fn build(
        &self,
        clients: &[ClientRecord],
        connections: &[ConnectionRecord],
        issues: &mut Vec<RecordIssue>,
    ) -> ClientMap {
        let mut sorted: Vec<&ConnectionRecord> = connections.iter().collect();
        sorted.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        let by_client: HashMap<&str, &[&ConnectionRecord]> = sorted
            .chunk_by(|a, b| a.client == b.client)
            .map(|chunk| (chunk[0].client.as_str(), chunk))
            .collect();
        let mut map = ClientMap::with_capacity(clients.len());
        for client in clients.iter().filter(|c| c.disabled_at.is_none()) {
            let records = by_client.get(client.name.as_str()).copied().unwrap_or(&[]);
            let previous = self
                .previous
                .and_then(|map| map.get_key_value(client.name.as_str()));
            let name = previous.map_or_else(|| Arc::from(client.name.as_str()), |(n, _)| n.clone());
            let entry = match previous {
                Some((_, entry)) if self.unchanged(entry, records) => entry.clone(),
                _ => Arc::new(self.compile(previous.map(|(_, e)| &**e), records, issues)),
            };
            map.insert(name, entry);
        }
        map
    }

    /// Whether `grant` is what `record` compiles to now (rules compared by identity).
    fn same_grant(&self, grant: &Grant, record: &ConnectionRecord) -> bool {
        let (policies, guardrails) = self.rules_for_record(record);
        grant.resources == record.resources
            && grant.prompts == record.prompts
            && grant.tools.len() == record.tools.len()
            && grant
                .tools
                .iter()
                .zip(&record.tools)
                .all(|(kept, stored)| kept.as_str() == stored)
            && same_items(&grant.policies, policies)
            && same_items(&grant.guardrails, guardrails)
    }

    /// The rules of this generation attached to the record's client and server.
    fn rules_for_record<'r>(
        &self,
        record: &'r ConnectionRecord,
    ) -> (
        impl Iterator<Item = &'a Arc<CompiledPolicy>> + Clone + 'r,
        impl Iterator<Item = &'a Arc<Guardrail>> + Clone + 'r,
    )
    where
        'a: 'r,
    {
        let (client, server) = (record.client.as_str(), record.server.as_str());
        (
            self.policies
                .iter()
                .filter(move |p| p.attached_to(Some(client), server)),
            self.guardrails
                .iter()
                .filter(move |g| g.attached_to(Some(client), server)),
        )
    }

    fn unchanged(&self, entry: &ClientEntry, records: &[&ConnectionRecord]) -> bool {
        entry.connections.len() == records.len()
            && entry
                .connections
                .iter()
                .zip(records)
                .all(|((server, grant), record)| {
                    **server == *record.server && self.same_grant(grant, record)
                })
    }

    fn compile(
        &self,
        previous: Option<&ClientEntry>,
        records: &[&ConnectionRecord],
        issues: &mut Vec<RecordIssue>,
    ) -> ClientEntry {
        let mut connections = Vec::with_capacity(records.len());
        for record in records {
            let kept = previous.and_then(|entry| {
                let at = entry
                    .connections
                    .binary_search_by(|(name, _)| (**name).cmp(record.server.as_str()))
                    .ok()?;
                let (server, grant) = &entry.connections[at];
                self.same_grant(grant, record)
                    .then(|| (server.clone(), grant.clone()))
            });
            let connection = match kept {
                Some(connection) => connection,
                None => match self.compile_grant(record) {
                    Ok(grant) => (
                        self.server_names
                            .get_or(record.server.clone(), || Arc::from(record.server.as_str())),
                        grant,
                    ),
                    Err(reason) => {
                        issues.push(RecordIssue::new(
                            "connection",
                            format!("{} → {}", record.client, record.server),
                            reason,
                            "left out: the client has no connection to the server",
                        ));
                        continue;
                    }
                },
            };
            connections.push(connection);
        }
        // `records` are sorted by server, so `connections` are too.
        ClientEntry {
            connections: connections.into_boxed_slice(),
        }
    }

    fn compile_grant(&self, record: &ConnectionRecord) -> Result<Arc<Grant>, String> {
        let tools = record
            .tools
            .iter()
            .map(|t| ToolPattern::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| err.to_string())?;
        let (policies, guardrails) = self.rules_for_record(record);
        let policies = intern_list(&self.policy_lists, policies);
        let guardrails = intern_list(&self.guardrail_lists, guardrails);
        let shape = GrantShape {
            tools,
            resources: record.resources,
            prompts: record.prompts,
            policies: Arc::as_ptr(&policies) as *const () as usize,
            guardrails: Arc::as_ptr(&guardrails) as *const () as usize,
        };
        let grant = Grant {
            tools: shape.tools.clone(),
            resources: record.resources,
            prompts: record.prompts,
            policies,
            guardrails,
        };
        Ok(self.grants.get_or(shape, || Arc::new(grant)))
    }
}

fn intern_list<'r, T: 'r>(
    lists: &Interner<Box<[usize]>, [Arc<T>]>,
    items: impl Iterator<Item = &'r Arc<T>> + Clone,
) -> Arc<[Arc<T>]> {
    let key: Box<[usize]> = items.clone().map(address).collect();
    lists.get_or(key, || items.cloned().collect())
}

/// The key table of the new generation: keys of enabled clients only, each the previous
/// generation's entry when its record is unchanged. A key whose narrowing does not parse is
/// left out (refused) and reported.
pub fn key_table(
    previous: Option<&KeyTable>,
    api_keys: Vec<ApiKeyRecord>,
    clients: &ClientMap,
    last_used: impl Fn(&str, i64) -> Arc<AtomicI64>,
    issues: &mut Vec<RecordIssue>,
) -> KeyTable {
    let mut table = KeyTable::with_capacity(api_keys.len());
    for key in api_keys {
        let Some((client, _)) = clients.get_key_value(key.client.as_str()) else {
            continue;
        };
        let Ok(secret_hash) = <[u8; 32]>::try_from(key.secret_hash.as_slice()) else {
            tracing::error!(key_id = %key.id, "stored key hash has the wrong length; key ignored");
            continue;
        };
        let counter = last_used(&key.id, key.last_used_at.unwrap_or(0));
        if let Some((id, entry)) = previous.and_then(|t| t.entry(&key.id))
            && *entry.client == *key.client
            && entry.secret_hash == secret_hash
            && entry.expires_at == key.expires_at
            && same_narrowing(entry.narrowing.as_deref(), key.tools.as_deref())
            && Arc::ptr_eq(&entry.last_used, &counter)
        {
            table.insert(id.clone(), entry.clone());
            continue;
        }
        let narrowing = match key.tools {
            Some(patterns) => match patterns
                .iter()
                .map(|t| ToolPattern::parse(t))
                .collect::<Result<Arc<[_]>, _>>()
            {
                Ok(narrowing) => Some(narrowing),
                Err(err) => {
                    issues.push(RecordIssue::new(
                        "api_key",
                        key.id.clone(),
                        err.to_string(),
                        "left out: the key is refused",
                    ));
                    continue;
                }
            },
            None => None,
        };
        let entry = KeyEntry {
            client: client.clone(),
            secret_hash,
            expires_at: key.expires_at,
            narrowing,
            last_used: counter,
        };
        table.insert(Arc::from(key.id), Arc::new(entry));
    }
    table
}

fn same_narrowing(kept: Option<&[ToolPattern]>, stored: Option<&[String]>) -> bool {
    match (kept, stored) {
        (None, None) => true,
        (Some(kept), Some(stored)) => {
            kept.len() == stored.len() && kept.iter().zip(stored).all(|(k, s)| k.as_str() == s)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        policy::PolicyRuntime,
        secrets::Keyring,
        snapshot::{Snapshot, UsageTracker},
    };
    use gatehouse_model::records::{ServerRecord, StoreContents};
    use serde_json::json;

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

        fn build(&self, previous: Option<&Snapshot>, contents: &StoreContents) -> Snapshot {
            let (keyring, usage, runtime) = (&self.keyring, &self.usage, &self.runtime);
            Snapshot::build_on(
                previous,
                contents.clone(),
                keyring,
                "https://gw",
                usage,
                runtime,
            )
            .unwrap()
        }
    }

    fn server(name: &str) -> ServerRecord {
        ServerRecord {
            name: name.into(),
            url: "http://127.0.0.1:9/mcp".into(),
            credential_header: None,
            credential_sealed: None,
            upstream_auth: Default::default(),
            allow_anonymous: false,
            allow_unknown_methods: false,
            pin_action: gatehouse_model::pin_action::PinAction::Block,
            created_at: 0,
            stdio: None,
            members: Vec::new(),
        }
    }

    fn connection(client: &str, server: &str, tools: &[&str]) -> ConnectionRecord {
        ConnectionRecord {
            client: client.into(),
            server: server.into(),
            tools: tools.iter().map(|t| t.to_string()).collect(),
            resources: false,
            prompts: false,
            created_at: 0,
        }
    }

    fn key(id: &str, client: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: id.into(),
            client: client.into(),
            label: String::new(),
            secret_hash: vec![1; 32],
            tools: None,
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            rotated_from: None,
            last_used_at: None,
        }
    }

    fn rate_limit(id: &str, client: Option<&str>, requests: u32) -> PolicyRecord {
        PolicyRecord {
            id: id.into(),
            kind: "rate_limit".into(),
            client: client.map(Into::into),
            server: None,
            tools: None,
            spec: json!({ "requests": requests, "period": "1m" }),
            created_at: 0,
        }
    }

    /// Clients a, b and c, each connected to `demo` with the same tools and holding one key.
    fn contents() -> StoreContents {
        let mut contents = StoreContents {
            generation: 1,
            servers: vec![server("demo"), server("other")],
            ..StoreContents::default()
        };
        for name in ["a", "b", "c"] {
            contents.clients.push(ClientRecord {
                name: name.into(),
                description: String::new(),
                disabled_at: None,
                created_at: 0,
                oauth: None,
            });
            contents
                .connections
                .push(connection(name, "demo", &["echo", "search_*"]));
            contents.api_keys.push(key(&format!("key-{name}"), name));
        }
        contents
    }

    fn same_client(first: &Snapshot, second: &Snapshot, name: &str) -> bool {
        Arc::ptr_eq(&first.clients[name], &second.clients[name])
    }

    fn same_key(first: &Snapshot, second: &Snapshot, id: &str) -> bool {
        Arc::ptr_eq(
            first.keys.entry(id).unwrap().1,
            second.keys.entry(id).unwrap().1,
        )
    }

    #[test]
    fn unchanged_entries_are_shared_with_the_previous_snapshot_and_changed_ones_are_not() {
        let builder = Builder::new();
        let mut contents = contents();
        let first = builder.build(None, &contents);

        contents.generation = 2;
        contents.connections[1].tools.push("add".into());
        contents
            .connections
            .push(connection("c", "other", &["echo"]));
        contents.api_keys[0].expires_at = Some(5);
        contents.api_keys[1].tools = Some(vec!["echo".into()]);
        contents.api_keys.push(key("key-new", "a"));
        let second = builder.build(Some(&first), &contents);

        assert!(same_client(&first, &second, "a"), "a did not change");
        assert!(!same_client(&first, &second, "b"), "b's tools changed");
        assert!(!same_client(&first, &second, "c"), "c has a new connection");
        assert!(second.grant("b", "demo").unwrap().allows_tool("add", None));
        assert!(second.grant("c", "other").is_some());
        assert!(
            Arc::ptr_eq(
                first.grant("c", "demo").unwrap(),
                second.grant("c", "demo").unwrap()
            ),
            "c's unchanged connection is kept inside its new entry"
        );
        assert!(!same_key(&first, &second, "key-a"), "expiry changed");
        assert!(!same_key(&first, &second, "key-b"), "narrowing changed");
        assert!(same_key(&first, &second, "key-c"));
        assert!(second.keys.entry("key-new").is_some());
        assert_eq!(
            second
                .keys
                .entry("key-b")
                .unwrap()
                .1
                .narrowing
                .as_ref()
                .unwrap()
                .len(),
            1
        );

        // Disabling a client removes its entry and its keys, whatever was shared before.
        contents.generation = 3;
        contents.clients[2].disabled_at = Some(1);
        let third = builder.build(Some(&second), &contents);
        assert!(!third.clients.contains_key("c"));
        assert!(third.keys.entry("key-c").is_none());
        assert!(same_client(&second, &third, "a"));
    }

    #[test]
    fn a_record_that_does_not_compile_is_reported_again_by_every_rebuild() {
        let builder = Builder::new();
        let mut contents = contents();
        contents.connections[1].tools = vec!["[bad]".into()];
        contents.api_keys[2].tools = Some(vec!["no spaces".into()]);
        let first = builder.build(None, &contents);
        contents.generation = 2;
        let second = builder.build(Some(&first), &contents);
        for snapshot in [&first, &second] {
            let reported: Vec<&str> = snapshot.issues.iter().map(|i| i.record.as_str()).collect();
            assert_eq!(reported, ["connection", "api_key"]);
            assert!(snapshot.grant("b", "demo").is_none());
            assert!(snapshot.keys.entry("key-c").is_none());
        }
        assert!(same_client(&first, &second, "a"));
    }

    #[test]
    fn identical_grants_are_built_once_per_generation() {
        let snapshot = Builder::new().build(None, &contents());
        let a = snapshot.grant("a", "demo").unwrap();
        assert!(Arc::ptr_eq(a, snapshot.grant("b", "demo").unwrap()));
        assert!(Arc::ptr_eq(a, snapshot.grant("c", "demo").unwrap()));
    }

    #[test]
    fn a_changed_rule_recompiles_the_entries_that_embed_it_and_only_those() {
        let builder = Builder::new();
        let mut contents = contents();
        contents.policies = vec![
            rate_limit("everyone", None, 100),
            rate_limit("for-a", Some("a"), 10),
        ];
        let first = builder.build(None, &contents);
        let policies =
            |s: &Snapshot, client: &str| s.grant(client, "demo").unwrap().policies.clone();
        assert_eq!(policies(&first, "a").len(), 2);
        assert_eq!(policies(&first, "b").len(), 1);

        contents.generation = 2;
        contents.policies[1] = rate_limit("for-a", Some("a"), 20);
        let second = builder.build(Some(&first), &contents);
        assert!(!same_client(&first, &second, "a"), "a's rule changed");
        assert!(
            same_client(&first, &second, "b"),
            "b's rules did not change"
        );
        assert!(
            same_key(&first, &second, "key-a"),
            "a key does not embed rules"
        );
        let (before, after) = (policies(&first, "a"), policies(&second, "a"));
        let of = |list: &[Arc<CompiledPolicy>], id: &str| {
            list.iter().find(|p| &*p.id == id).unwrap().clone()
        };
        assert!(
            Arc::ptr_eq(&of(&before, "everyone"), &of(&after, "everyone")),
            "unchanged rule kept"
        );
        assert!(
            !Arc::ptr_eq(&of(&before, "for-a"), &of(&after, "for-a")),
            "changed rule compiled"
        );

        // A new global rule reaches every grant.
        contents.generation = 3;
        contents.policies.push(rate_limit("new", None, 5));
        let third = builder.build(Some(&second), &contents);
        for client in ["a", "b", "c"] {
            assert!(!same_client(&second, &third, client), "{client}");
            assert!(
                policies(&third, client).iter().any(|p| &*p.id == "new"),
                "{client}"
            );
        }
    }
}
