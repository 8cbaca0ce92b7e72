//! The indexed decision (`authorize`) against a model that reads the rules straight off a
//! list of bindings, over random bindings, principals, hosts and resources; and the index
//! against the binding list after random inserts and removes.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::security::Principal;

const NAMES: &[&str] = &["a", "ab", "abc", "b", "*", "ba", "é", "éa", "a*"];
const USERS: &[&str] = &["alice", "bob", "*"];
const HOSTS: &[&str] = &["*", "10.0.0.1", "10.0.0.2", "nonsense"];
const OPS: &[AclOperation] = &[
    AclOperation::All,
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::Create,
];
const TYPES: &[ResourceType] = &[ResourceType::Topic, ResourceType::Group];

fn binding() -> impl Strategy<Value = AclBinding> {
    (
        0..TYPES.len(),
        0..NAMES.len(),
        any::<bool>(),
        0..USERS.len(),
        0..HOSTS.len(),
        0..OPS.len(),
        any::<bool>(),
    )
        .prop_map(|(t, n, prefixed, u, h, o, allow)| AclBinding {
            resource_type: TYPES[t],
            name: NAMES[n].to_string(),
            pattern_type: if prefixed {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            },
            principal: Principal::user(USERS[u]),
            host: HOSTS[h].to_string(),
            operation: OPS[o],
            permission: if allow {
                AclPermission::Allow
            } else {
                AclPermission::Deny
            },
        })
}

/// The rules as written in `authorizer.rs`'s module doc, over a plain list.
fn model(bindings: &[AclBinding], rules: &Rules<'_>, a: &Action<'_>) -> bool {
    if rules.super_users.iter().any(|s| s == a.principal) {
        return true;
    }
    let on_resource: Vec<&AclBinding> = bindings
        .iter()
        .filter(|b| b.resource_type == a.resource_type)
        .filter(|b| match b.pattern_type {
            PatternType::Literal => b.name == a.name || b.name == "*",
            PatternType::Prefixed => a.name.starts_with(b.name.as_str()),
            _ => false,
        })
        .collect();
    let applying = |perm: AclPermission| {
        on_resource.iter().any(|b| {
            let who = b.principal == *a.principal || b.principal == Principal::user("*");
            let host = b.host == "*" || b.host == a.host.to_string();
            let op = b.operation == AclOperation::All
                || b.operation == a.operation
                || (perm == AclPermission::Allow
                    && ((a.operation == AclOperation::Describe
                        && [
                            AclOperation::Read,
                            AclOperation::Write,
                            AclOperation::Delete,
                            AclOperation::Alter,
                        ]
                        .contains(&b.operation))
                        || (a.operation == AclOperation::DescribeConfigs
                            && b.operation == AclOperation::AlterConfigs)));
            b.permission == perm && who && host && op
        })
    };
    if applying(AclPermission::Deny) {
        return false;
    }
    applying(AclPermission::Allow)
        || (on_resource.is_empty() && rules.allow_everyone_if_no_acl_found)
}

proptest! {
    #[test]
    fn decision_matches_the_model(
        bindings in proptest::collection::vec(binding(), 0..12),
        user in 0..2usize,
        host in 1..3usize,
        op in 1..OPS.len(),
        t in 0..TYPES.len(),
        name in 0..NAMES.len(),
        super_alice in any::<bool>(),
        allow_if_none in any::<bool>(),
    ) {
        let set = AclSet::new(bindings.clone());
        let principal = Principal::user(USERS[user]);
        let supers = if super_alice { vec![Principal::user("alice")] } else { vec![] };
        let rules = Rules { super_users: &supers, allow_everyone_if_no_acl_found: allow_if_none };
        let ip: IpAddr = HOSTS[host].parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let action = Action {
            principal: &principal,
            host: ip,
            operation: OPS[op],
            resource_type: TYPES[t],
            name: NAMES[name],
        };
        prop_assert_eq!(authorize(&set, &rules, &action), model(&bindings, &rules, &action));
    }

    #[test]
    fn index_follows_inserts_and_removes(
        ops in proptest::collection::vec((any::<bool>(), binding()), 0..40),
    ) {
        let mut set = AclSet::default();
        let mut list: Vec<AclBinding> = Vec::new();
        for (insert, b) in ops {
            if insert {
                prop_assert_eq!(set.insert(b.clone()), !list.contains(&b));
                if !list.contains(&b) { list.push(b); }
            } else {
                prop_assert_eq!(set.remove(&b), list.contains(&b));
                list.retain(|x| *x != b);
            }
        }
        let fresh = AclSet::new(list.clone());
        let p = Principal::user("alice");
        let rules = Rules { super_users: &[], allow_everyone_if_no_acl_found: true };
        for name in NAMES {
            for op in OPS {
                let a = Action {
                    principal: &p, host: "10.0.0.1".parse().unwrap(), operation: *op,
                    resource_type: ResourceType::Topic, name,
                };
                prop_assert_eq!(authorize(&set, &rules, &a), authorize(&fresh, &rules, &a));
                prop_assert_eq!(authorize(&set, &rules, &a), model(&list, &rules, &a));
            }
        }
        prop_assert_eq!(set.len(), list.len());
    }
}
