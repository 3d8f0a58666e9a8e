//! What the 2026-07-28 revision asks of an intermediary in results it relays: a list Gatehouse
//! filtered for one principal is that principal's alone (`cacheScope: "private"`), fresh no
//! longer than the snapshot that filtered it; and `server/discover` names the extensions
//! Gatehouse itself implements in front of the server.

use serde_json::{Map, Value};

/// Extensions Gatehouse implements whatever the upstream does: its authorization server
/// issues client-credentials tokens (client secrets and `private_key_jwt` assertions).
pub const GATEWAY_EXTENSIONS: &[&str] = &["io.modelcontextprotocol/oauth-client-credentials"];
/// Named only while an identity provider's ID-JAGs are accepted (`accept_id_jag`).
pub const ENTERPRISE_MANAGED_AUTHORIZATION: &str =
    "io.modelcontextprotocol/enterprise-managed-authorization";

/// Which of Gatehouse's optional extensions its configuration turns on.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayExtensions {
    pub enterprise_managed: bool,
}

impl GatewayExtensions {
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            enterprise_managed: config.oauth.providers.iter().any(|p| p.accept_id_jag),
        }
    }
}

/// How a filtered list result is marked for caches.
#[derive(Debug, Clone, Copy)]
pub struct PrivateLists {
    /// The longest `ttlMs` a filtered list keeps: a grant change reaches the request path
    /// within one snapshot poll, so a client must not trust the old list longer.
    pub max_ttl_ms: u64,
    /// Whether the request is in the 2026-07-28 era, whose results carry the cache fields;
    /// earlier eras' results get them only if the upstream already sent them.
    pub stateless_era: bool,
}

impl PrivateLists {
    /// Marks `message`'s result private and caps its `ttlMs`; whether it changed. Only a
    /// complete result: an `input_required` one is a step of a multi-round-trip request,
    /// which the specification says is never cached, so it passes untouched.
    pub fn mark(&self, message: &mut Value) -> bool {
        let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
            return false;
        };
        if result
            .get("resultType")
            .is_some_and(|t| t.as_str() != Some("complete"))
        {
            return false;
        }
        let has_hints = result.contains_key("ttlMs") || result.contains_key("cacheScope");
        if !self.stateless_era && !has_hints {
            return false;
        }
        let mut changed = false;
        if result.get("cacheScope").and_then(Value::as_str) != Some("private") {
            result.insert("cacheScope".into(), Value::from("private"));
            changed = true;
        }
        let ttl = result
            .get("ttlMs")
            .and_then(Value::as_u64)
            .map_or(self.max_ttl_ms, |ttl| ttl.min(self.max_ttl_ms));
        if result.get("ttlMs").and_then(Value::as_u64) != Some(ttl) {
            result.insert("ttlMs".into(), Value::from(ttl));
            changed = true;
        }
        changed
    }
}

/// Adds Gatehouse's extensions to a `server/discover` result's `capabilities.extensions`,
/// keeping the upstream's; whether it changed.
pub fn advertise_extensions(message: &mut Value, optional: GatewayExtensions) -> bool {
    let Some(capabilities) = message
        .get_mut("result")
        .filter(|r| r.get("supportedVersions").is_some())
        .and_then(|r| r.get_mut("capabilities"))
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    let extensions = capabilities
        .entry("extensions")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(extensions) = extensions.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    let enterprise = optional
        .enterprise_managed
        .then_some(ENTERPRISE_MANAGED_AUTHORIZATION);
    for name in GATEWAY_EXTENSIONS.iter().copied().chain(enterprise) {
        if !extensions.contains_key(name) {
            extensions.insert(name.to_owned(), Value::Object(Map::new()));
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LISTS: PrivateLists = PrivateLists {
        max_ttl_ms: 250,
        stateless_era: true,
    };

    #[test]
    fn a_filtered_list_is_private_and_short_lived() {
        let mut public = json!({"id":1,"result":{"tools":[],"ttlMs":60000,"cacheScope":"public"}});
        assert!(LISTS.mark(&mut public));
        assert_eq!(public["result"]["cacheScope"], "private");
        assert_eq!(public["result"]["ttlMs"], 250);
        let mut short = json!({"id":1,"result":{"tools":[],"ttlMs":0,"cacheScope":"private"}});
        assert!(!LISTS.mark(&mut short), "a shorter ttl and private stay");
        assert_eq!(short["result"]["ttlMs"], 0);
        let mut bare = json!({"id":1,"result":{"tools":[]}});
        assert!(
            LISTS.mark(&mut bare),
            "a 2026-07-28 result without hints gets them"
        );
        assert_eq!(bare["result"]["cacheScope"], "private");
        let legacy = PrivateLists {
            stateless_era: false,
            ..LISTS
        };
        let mut old = json!({"id":1,"result":{"tools":[]}});
        assert!(
            !legacy.mark(&mut old),
            "earlier eras' results gain no fields"
        );
        let mut input = json!({"id":1,"result":{"resultType":"input_required","inputRequests":{},"requestState":"s"}});
        let before = input.clone();
        assert!(!LISTS.mark(&mut input));
        assert_eq!(
            input, before,
            "a multi-round-trip step is never given cache hints"
        );
    }

    #[test]
    fn discovery_names_the_gateways_extensions_beside_the_upstreams() {
        let mut discover = json!({"id":1,"result":{"supportedVersions":["2026-07-28"],
            "capabilities":{"tools":{},"extensions":{"io.modelcontextprotocol/tasks":{}}}}});
        assert!(advertise_extensions(
            &mut discover,
            GatewayExtensions::default()
        ));
        let extensions = &discover["result"]["capabilities"]["extensions"];
        assert!(extensions.get("io.modelcontextprotocol/tasks").is_some());
        assert!(
            extensions
                .get("io.modelcontextprotocol/oauth-client-credentials")
                .is_some()
        );
        assert!(
            extensions.get(ENTERPRISE_MANAGED_AUTHORIZATION).is_none(),
            "named only when an IdP's ID-JAGs are accepted"
        );
        assert!(
            !advertise_extensions(&mut discover, GatewayExtensions::default()),
            "once"
        );
        let enterprise = GatewayExtensions {
            enterprise_managed: true,
        };
        assert!(advertise_extensions(&mut discover, enterprise));
        assert!(
            discover["result"]["capabilities"]["extensions"]
                .get(ENTERPRISE_MANAGED_AUTHORIZATION)
                .is_some()
        );
        let mut other = json!({"id":1,"result":{"capabilities":{}}});
        assert!(
            !advertise_extensions(&mut other, enterprise),
            "only a discover result"
        );
    }
}
