//! ACL bindings (a resource pattern and an access-control entry, Kafka's `AclBinding`) and
//! the filters DescribeAcls and DeleteAcls select them with (`AclBindingFilter`).
//!
//! Invariants: a binding that passed `validate` has a concrete resource type (not `Any` or
//! `Unknown`), a pattern type of `Literal` or `Prefixed`, a concrete operation and an `Allow`
//! or `Deny` permission, a non-empty resource name (`kafka-cluster` for the Cluster), and a
//! principal of the form `Type:name`. Filters match as Kafka's `ResourcePatternFilter` and
//! `AccessControlEntryFilter` (`MATCH` selects the stored patterns that would apply to the
//! named resource: the literal name, the literal `*`, and every prefix of it).

use super::{AclOperation, AclPermission, PatternType, ResourceType};
use crate::security::Principal;

/// The Cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name, principal name and host that match everything.
pub const WILDCARD: &str = "*";

/// One ACL: who (`principal` from `host`) may or may not (`permission`) do `operation` on the
/// resources the pattern (`resource_type`, `name`, `pattern_type`) names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
    pub principal: Principal,
    /// `*` or a client IP address, compared as Kafka does (with the address's text).
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Kafka's checks of a new ACL (`AclControlManager.validateNewAcl`, and the broker's own:
    /// the Cluster resource is only ever `kafka-cluster`), with Kafka's messages.
    pub fn validate(&self) -> Result<(), String> {
        // The broker's checks first (Kafka's `AclApis`), then the controller's.
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if self.name.is_empty() {
            return Err("Invalid empty resource name".to_string());
        }
        if matches!(
            self.resource_type,
            ResourceType::Unknown | ResourceType::Any
        ) {
            return Err(format!("Invalid resourceType {}", self.resource_type));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(format!("Invalid patternType {}", self.pattern_type));
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(format!("Invalid operation {}", self.operation));
        }
        if !matches!(self.permission, AclPermission::Allow | AclPermission::Deny) {
            return Err(format!("Invalid permissionType {}", self.permission));
        }
        Ok(())
    }

    /// Whether the principal is `User:*` (every principal).
    pub fn principal_is_wildcard(&self) -> bool {
        self.principal.kind == Principal::USER_TYPE && self.principal.name == WILDCARD
    }
}

/// A selection of bindings; `None` strings and `Any` values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    /// `Type:name` as sent (compared with the binding's principal as text).
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBindingFilter {
    /// The filter that matches every binding.
    #[cfg(test)]
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// Refuses a filter with an `Unknown` field (an unknown code on the wire), as Kafka's
    /// request validation and `AclControlManager.validateFilter` do.
    pub fn validate(&self) -> Result<(), String> {
        if self.pattern_type == PatternType::Unknown || self.resource_type == ResourceType::Unknown
        {
            return Err("Unknown patternFilter.".to_string());
        }
        if self.operation == AclOperation::Unknown || self.permission == AclPermission::Unknown {
            return Err("Unknown entryFilter.".to_string());
        }
        Ok(())
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        self.matches_pattern(b) && self.matches_entry(b)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        let any_or_match = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_or_match && self.pattern_type != b.pattern_type {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == b.pattern_type {
            return *name == b.name;
        }
        // MATCH: the stored patterns that apply to the resource `name`.
        match b.pattern_type {
            PatternType::Literal => *name == b.name || b.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.name),
            _ => false,
        }
    }

    fn matches_entry(&self, b: &AclBinding) -> bool {
        if let Some(p) = &self.principal
            && !principal_text_is(p, &b.principal)
        {
            return false;
        }
        if let Some(h) = &self.host
            && *h != b.host
        {
            return false;
        }
        if self.operation != AclOperation::Any && self.operation != b.operation {
            return false;
        }
        self.permission == AclPermission::Any || self.permission == b.permission
    }
}

/// `text == principal.to_string()`, without allocating.
fn principal_text_is(text: &str, principal: &Principal) -> bool {
    text.split_once(':')
        .is_some_and(|(kind, name)| kind == principal.kind && name == principal.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn binding(rt: ResourceType, name: &str, pt: PatternType) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.to_string(),
            pattern_type: pt,
            principal: Principal::user("alice"),
            host: "*".to_string(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn validate_refuses_what_kafka_refuses() {
        let ok = binding(ResourceType::Topic, "t", PatternType::Literal);
        assert!(ok.validate().is_ok());
        let mut b = ok.clone();
        b.pattern_type = PatternType::Match;
        assert_eq!(b.validate().unwrap_err(), "Invalid patternType MATCH");
        let mut b = ok.clone();
        b.operation = AclOperation::Any;
        assert!(b.validate().is_err());
        let mut b = ok.clone();
        b.permission = AclPermission::Any;
        assert!(b.validate().is_err());
        let mut b = ok.clone();
        b.name.clear();
        assert!(b.validate().is_err());
        let mut b = binding(ResourceType::Cluster, "other", PatternType::Literal);
        assert!(b.validate().is_err());
        b.name = CLUSTER_NAME.to_string();
        assert!(b.validate().is_ok());
        assert!(
            binding(ResourceType::Any, "t", PatternType::Literal)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn match_filters_select_the_patterns_that_apply_to_a_name() {
        let lit = binding(ResourceType::Topic, "foo", PatternType::Literal);
        let star = binding(ResourceType::Topic, "*", PatternType::Literal);
        let pre = binding(ResourceType::Topic, "fo", PatternType::Prefixed);
        let other = binding(ResourceType::Topic, "bar", PatternType::Prefixed);
        let f = AclBindingFilter {
            resource_type: ResourceType::Topic,
            name: Some("foo".into()),
            pattern_type: PatternType::Match,
            ..AclBindingFilter::any()
        };
        assert!(f.matches(&lit) && f.matches(&star) && f.matches(&pre));
        assert!(!f.matches(&other));
        // ANY with a name: exact names of any pattern type.
        let f = AclBindingFilter {
            name: Some("fo".into()),
            ..AclBindingFilter::any()
        };
        assert!(f.matches(&pre) && !f.matches(&lit));
        // LITERAL: only literal patterns, and `*` is just a name.
        let f = AclBindingFilter {
            name: Some("foo".into()),
            pattern_type: PatternType::Literal,
            ..AclBindingFilter::any()
        };
        assert!(f.matches(&lit) && !f.matches(&star) && !f.matches(&pre));
    }

    #[test]
    fn entry_filters_compare_principal_host_operation_permission() {
        let b = binding(ResourceType::Group, "g", PatternType::Literal);
        let mut f = AclBindingFilter::any();
        assert!(f.matches(&b));
        f.principal = Some("User:alice".into());
        assert!(f.matches(&b));
        f.principal = Some("User:bob".into());
        assert!(!f.matches(&b));
        f.principal = None;
        f.host = Some("10.0.0.1".into());
        assert!(!f.matches(&b));
        f.host = Some("*".into());
        assert!(f.matches(&b));
        f.operation = AclOperation::Write;
        assert!(!f.matches(&b));
        f.operation = AclOperation::Read;
        f.permission = AclPermission::Deny;
        assert!(!f.matches(&b));
        let mut unknown = AclBindingFilter::any();
        unknown.operation = AclOperation::Unknown;
        assert!(unknown.validate().is_err());
    }
}
