//! IP rules: allow and deny CIDR lists, IPv4 and IPv6. Deny wins; a non-empty allow list
//! admits only its networks. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are judged as the
//! IPv4 address they are.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Facts, Policy, Refusal};
use gatehouse_model::policy_kind::PolicyKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpSpec {
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

#[derive(Debug)]
pub struct IpRule {
    spec: IpSpec,
}

impl IpRule {
    pub fn new(spec: &IpSpec) -> Result<Self, String> {
        if spec.allow.is_empty() && spec.deny.is_empty() {
            return Err("an ip policy needs at least one allow or deny network".into());
        }
        Ok(Self { spec: spec.clone() })
    }
}

impl Policy for IpRule {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Ip
    }

    fn check(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        let ip = facts.ip.to_canonical();
        if self.spec.deny.iter().any(|net| net.contains(&ip)) {
            return Err(Refusal::new("the caller's address is in a denied network"));
        }
        if !self.spec.allow.is_empty() && !self.spec.allow.iter().any(|net| net.contains(&ip)) {
            return Err(Refusal::new(
                "the caller's address is not in an allowed network",
            ));
        }
        Ok(())
    }

    fn peek(&self, facts: &Facts<'_>) -> Result<(), Refusal> {
        self.check(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests_support::facts_at;
    use std::net::IpAddr;

    fn rule(allow: &[&str], deny: &[&str]) -> IpRule {
        IpRule::new(&IpSpec {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            deny: deny.iter().map(|n| n.parse().unwrap()).collect(),
        })
        .unwrap()
    }

    fn from(ip: &str) -> Result<(), Refusal> {
        let mut facts = facts_at(0);
        facts.ip = ip.parse::<IpAddr>().unwrap();
        RULE.with(|r| r.check(&facts))
    }

    thread_local! {
        static RULE: IpRule = rule(&["10.0.0.0/8", "2001:db8::/32"], &["10.66.0.0/16"]);
    }

    #[test]
    fn allow_and_deny_with_deny_winning() {
        assert!(from("10.1.2.3").is_ok());
        assert!(from("10.66.1.1").is_err());
        assert!(from("192.0.2.1").is_err());
        assert!(from("2001:db8::1").is_ok());
        assert!(from("2001:db9::1").is_err());
    }

    #[test]
    fn mapped_ipv4_is_judged_as_ipv4() {
        assert!(from("::ffff:10.1.2.3").is_ok());
        assert!(from("::ffff:10.66.0.1").is_err());
    }

    #[test]
    fn empty_rules_are_refused() {
        assert!(
            IpRule::new(&IpSpec {
                allow: vec![],
                deny: vec![]
            })
            .is_err()
        );
    }
}
