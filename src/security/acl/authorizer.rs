//! The StandardAuthorizer's decision over a set of ACL bindings, as a pure function.
//!
//! Rules (Kafka's `StandardAuthorizerData`), in order:
//! 1. a super user is allowed everything;
//! 2. the bindings that apply to the resource are those of its type whose pattern is the
//!    literal name, the literal `*`, or a prefix of the name (PREFIXED);
//! 3. of those, one applies to the request if its principal is the caller's or `User:*`, its
//!    host is `*` or the caller's address, and its operation is the requested one or `All`; an
//!    `Allow` of Read, Write, Delete or Alter also grants Describe, and an `Allow` of
//!    AlterConfigs grants DescribeConfigs (a `Deny` implies nothing);
//! 4. any applying `Deny` denies (deny wins); else any applying `Allow` allows;
//! 5. if no binding at all names the resource (rule 2, any principal), the request is allowed
//!    iff `allow_everyone_if_no_acl_found`; otherwise denied.
//!
//! Invariants: `AclSet` holds each binding once; its index (by resource type, then literal
//! name or prefix, with the count of prefixes of each length) always holds exactly the
//! bindings of `bindings()`. A decision allocates
//! nothing and reads each applying list once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::binding::{AclBinding, WILDCARD};
use super::{AclOperation, AclPermission, PatternType, ResourceType};
use crate::security::Principal;

/// What is asked: may `principal`, connected from `host`, perform `operation` on the resource
/// (`resource_type`, `name`)?
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a Principal,
    pub host: IpAddr,
    pub operation: AclOperation,
    pub resource_type: ResourceType,
    pub name: &'a str,
}

/// The authorizer's settings (Kafka's `super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub super_users: &'a [Principal],
    pub allow_everyone_if_no_acl_found: bool,
}

/// A binding's host as the decision compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Ip(IpAddr),
    /// Not an address: Kafka compares it with the caller's address text, which never equals it.
    Never,
}

/// One binding's entry, in the index under its resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    binding: AclBinding,
    host: HostMatch,
}

#[derive(Debug, Clone, Default)]
struct TypeIndex {
    literal: BTreeMap<String, Vec<Entry>>,
    prefixed: BTreeMap<String, Vec<Entry>>,
    /// Byte length of the prefixed patterns → how many there are: a name is looked up only
    /// at the lengths some prefix has.
    prefix_lengths: BTreeMap<usize, usize>,
}

/// The ACL bindings, indexed for the decision.
#[derive(Debug, Clone, Default)]
pub struct AclSet {
    bindings: BTreeSet<AclBinding>,
    by_type: BTreeMap<ResourceType, TypeIndex>,
}

impl AclSet {
    #[cfg(test)]
    pub fn new(bindings: impl IntoIterator<Item = AclBinding>) -> AclSet {
        let mut set = AclSet::default();
        for b in bindings {
            set.insert(b);
        }
        set
    }

    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn contains(&self, b: &AclBinding) -> bool {
        self.bindings.contains(b)
    }

    /// Adds a binding; false if it was already there.
    pub fn insert(&mut self, b: AclBinding) -> bool {
        if self.bindings.contains(&b) {
            return false;
        }
        let host = match b.host.as_str() {
            WILDCARD => HostMatch::Any,
            h => h.parse().map_or(HostMatch::Never, HostMatch::Ip),
        };
        let index = self.by_type.entry(b.resource_type).or_default();
        let map = match b.pattern_type {
            PatternType::Prefixed => {
                *index.prefix_lengths.entry(b.name.len()).or_default() += 1;
                &mut index.prefixed
            }
            _ => &mut index.literal,
        };
        map.entry(b.name.clone()).or_default().push(Entry {
            binding: b.clone(),
            host,
        });
        self.bindings.insert(b);
        true
    }

    /// Removes a binding; false if it was not there.
    pub fn remove(&mut self, b: &AclBinding) -> bool {
        if !self.bindings.remove(b) {
            return false;
        }
        if let Some(index) = self.by_type.get_mut(&b.resource_type) {
            let map = match b.pattern_type {
                PatternType::Prefixed => {
                    let len = b.name.len();
                    match index.prefix_lengths.get_mut(&len) {
                        Some(n) if *n > 1 => *n -= 1,
                        _ => {
                            index.prefix_lengths.remove(&len);
                        }
                    }
                    &mut index.prefixed
                }
                _ => &mut index.literal,
            };
            if let Some(list) = map.get_mut(&b.name) {
                list.retain(|e| e.binding != *b);
                if list.is_empty() {
                    map.remove(&b.name);
                }
            }
        }
        true
    }

    /// Calls `f` with every list of entries whose pattern applies to (`resource_type`,
    /// `name`) (rule 2); stops when `f` returns false.
    fn for_each_applying(
        &self,
        resource_type: ResourceType,
        name: &str,
        mut f: impl FnMut(&[Entry]) -> bool,
    ) {
        let Some(index) = self.by_type.get(&resource_type) else {
            return;
        };
        if let Some(list) = index.literal.get(name)
            && !f(list)
        {
            return;
        }
        if name != WILDCARD
            && let Some(list) = index.literal.get(WILDCARD)
            && !f(list)
        {
            return;
        }
        for &len in index.prefix_lengths.keys() {
            let Some(prefix) = name.get(..len) else {
                // Past the name's end (every longer length is too), or inside a character.
                if len > name.len() {
                    return;
                }
                continue;
            };
            if let Some(list) = index.prefixed.get(prefix)
                && !f(list)
            {
                return;
            }
        }
    }
}

/// Whether an entry applies to the action (rule 3), and if so with which permission.
fn applies(e: &Entry, a: &Action<'_>) -> Option<AclPermission> {
    let b = &e.binding;
    if b.principal != *a.principal && !b.principal_is_wildcard() {
        return None;
    }
    match &e.host {
        HostMatch::Any => {}
        HostMatch::Ip(ip) if *ip == a.host => {}
        _ => return None,
    }
    if b.operation != AclOperation::All && b.operation != a.operation {
        use AclOperation::*;
        let implied = b.permission == AclPermission::Allow
            && match a.operation {
                Describe => matches!(b.operation, Read | Write | Delete | Alter),
                DescribeConfigs => b.operation == AlterConfigs,
                _ => false,
            };
        if !implied {
            return None;
        }
    }
    Some(b.permission)
}

/// The decision: true iff `action` is allowed (the rules in the module doc).
pub fn authorize(set: &AclSet, rules: &Rules<'_>, action: &Action<'_>) -> bool {
    if rules.super_users.contains(action.principal) {
        return true;
    }
    let mut named = false;
    let mut allowed = false;
    let mut denied = false;
    set.for_each_applying(action.resource_type, action.name, |list| {
        named |= !list.is_empty();
        for e in list {
            match applies(e, action) {
                Some(AclPermission::Deny) => {
                    denied = true;
                    return false;
                }
                Some(AclPermission::Allow) => allowed = true,
                _ => {}
            }
        }
        true
    });
    if denied {
        return false;
    }
    allowed || (!named && rules.allow_everyone_if_no_acl_found)
}

/// Whether the caller may perform `operation` on at least one resource of `resource_type`
/// (Kafka's `Authorizer.authorizeByResourceType`, used by InitProducerId without a
/// transactional id: Write on any topic stands in for IdempotentWrite on the cluster).
pub fn authorize_by_resource_type(set: &AclSet, rules: &Rules<'_>, action: &Action<'_>) -> bool {
    // As Kafka: a made-up name, so super users (and allow-everyone with no ACL on it) pass.
    if authorize(
        set,
        rules,
        &Action {
            name: "hardcode",
            ..*action
        },
    ) {
        return true;
    }
    let mut deny_literal = BTreeSet::new();
    let mut deny_prefix = BTreeSet::new();
    let mut allows = Vec::new();
    for b in set
        .bindings()
        .filter(|b| b.resource_type == action.resource_type)
    {
        let host_ok = b.host == WILDCARD || b.host.parse::<IpAddr>().ok() == Some(action.host);
        let principal_ok = b.principal == *action.principal || b.principal_is_wildcard();
        let op_ok = b.operation == action.operation || b.operation == AclOperation::All;
        if !(host_ok && principal_ok && op_ok) {
            continue;
        }
        match (b.permission, b.pattern_type) {
            (AclPermission::Deny, PatternType::Literal) if b.name == WILDCARD => return false,
            (AclPermission::Deny, PatternType::Literal) => {
                deny_literal.insert(b.name.as_str());
            }
            (AclPermission::Deny, PatternType::Prefixed) => {
                deny_prefix.insert(b.name.as_str());
            }
            (AclPermission::Allow, PatternType::Literal) if b.name == WILDCARD => return true,
            (AclPermission::Allow, pt) => allows.push((pt, b.name.as_str())),
            _ => {}
        }
    }
    allows.iter().any(|(pt, name)| {
        let literal_denied = *pt == PatternType::Literal && deny_literal.contains(name);
        let prefix_denied = name
            .char_indices()
            .any(|(end, c)| deny_prefix.contains(&name[..end + c.len_utf8()]));
        !literal_denied && !prefix_denied
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::CLUSTER_NAME;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        who: &str,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.to_string(),
            pattern_type: pt,
            principal: who.parse().unwrap(),
            host: "*".to_string(),
            operation: op,
            permission: perm,
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn ask(set: &AclSet, who: &str, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let p: Principal = who.parse().unwrap();
        let rules = Rules {
            super_users: &[],
            allow_everyone_if_no_acl_found: false,
        };
        authorize(
            set,
            &rules,
            &Action {
                principal: &p,
                host: LOCAL,
                operation: op,
                resource_type: rt,
                name,
            },
        )
    }

    use AclOperation::*;
    use AclPermission::*;
    use PatternType::*;
    use ResourceType::*;

    #[test]
    fn deny_wins_over_allow_and_describe_is_implied_only_by_allows() {
        let set = AclSet::new([
            acl(Topic, "t", Literal, "User:a", Read, Allow),
            acl(Topic, "*", Literal, "User:a", Write, Deny),
            acl(Topic, "t", Literal, "User:*", Write, Allow),
        ]);
        assert!(ask(&set, "User:a", Read, Topic, "t"));
        assert!(ask(&set, "User:a", Describe, Topic, "t"));
        assert!(!ask(&set, "User:a", Write, Topic, "t"));
        assert!(ask(&set, "User:b", Write, Topic, "t"));
        assert!(!ask(&set, "User:b", Read, Topic, "t"));
        let deny_read = AclSet::new([acl(Topic, "t", Literal, "User:a", Read, Deny)]);
        assert!(!ask(&deny_read, "User:a", Describe, Topic, "t"));
    }

    #[test]
    fn prefixed_patterns_match_names_that_start_with_them() {
        let set = AclSet::new([
            acl(Group, "app-", Prefixed, "User:a", Read, Allow),
            acl(Group, "app-secret", Prefixed, "User:a", All, Deny),
        ]);
        assert!(ask(&set, "User:a", Read, Group, "app-1"));
        assert!(!ask(&set, "User:a", Read, Group, "app-secret-2"));
        assert!(!ask(&set, "User:a", Read, Group, "app"));
    }

    #[test]
    fn super_users_and_allow_everyone_if_no_acl_found() {
        let set = AclSet::new([acl(Topic, "guarded", Literal, "User:x", Read, Allow)]);
        let admin = Principal::user("admin");
        let supers = [admin.clone()];
        let rules = Rules {
            super_users: &supers,
            allow_everyone_if_no_acl_found: true,
        };
        let action = |p, name| Action {
            principal: p,
            host: LOCAL,
            operation: Read,
            resource_type: Topic,
            name,
        };
        let other = Principal::user("o");
        assert!(authorize(&set, &rules, &action(&admin, "guarded")));
        assert!(authorize(&set, &rules, &action(&other, "free")));
        assert!(!authorize(&set, &rules, &action(&other, "guarded")));
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        let mut b = acl(Cluster, CLUSTER_NAME, Literal, "User:a", Alter, Allow);
        b.host = "10.1.1.1".to_string();
        let set = AclSet::new([b.clone()]);
        assert!(!ask(&set, "User:a", Alter, Cluster, CLUSTER_NAME));
        b.host = "127.0.0.1".to_string();
        assert!(ask(
            &AclSet::new([b]),
            "User:a",
            Alter,
            Cluster,
            CLUSTER_NAME
        ));
    }

    #[test]
    fn remove_takes_a_binding_out_of_the_index() {
        let b = acl(Topic, "t", Prefixed, "User:a", Read, Allow);
        let mut set = AclSet::new([b.clone()]);
        assert!(!set.insert(b.clone()));
        assert!(ask(&set, "User:a", Read, Topic, "tx"));
        assert!(set.remove(&b));
        assert!(!set.remove(&b));
        assert!(!ask(&set, "User:a", Read, Topic, "tx"));
        assert!(set.is_empty());
    }

    #[test]
    fn by_resource_type_needs_an_allow_not_shadowed_by_a_deny() {
        let p = Principal::user("a");
        let rules = Rules {
            super_users: &[],
            allow_everyone_if_no_acl_found: false,
        };
        let action = Action {
            principal: &p,
            host: LOCAL,
            operation: Write,
            resource_type: Topic,
            name: "",
        };
        let allow = acl(Topic, "t-1", Literal, "User:a", Write, Allow);
        assert!(authorize_by_resource_type(
            &AclSet::new([allow.clone()]),
            &rules,
            &action
        ));
        let deny = acl(Topic, "t-", Prefixed, "User:a", Write, Deny);
        assert!(!authorize_by_resource_type(
            &AclSet::new([allow, deny]),
            &rules,
            &action
        ));
        assert!(!authorize_by_resource_type(
            &AclSet::default(),
            &rules,
            &action
        ));
    }
}
