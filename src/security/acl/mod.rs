//! ACLs as Kafka's StandardAuthorizer, sans-IO: Kafka's resource, pattern, operation and
//! permission types (with their wire codes), bindings and filters (`binding.rs`), the set of
//! bindings indexed for the decision and the decision itself (`authorizer.rs`).
//!
//! Invariants: a code read from the network that names no value of an enum is `Unknown`
//! (`from_code` never fails), as Kafka's `fromCode`; no `Unknown`, `Any` or `Match` value is
//! ever part of a stored binding (`AclBinding::validate`).

mod authorizer;
mod binding;
#[cfg(test)]
mod prop_tests;

pub use authorizer::{AclSet, Action, Rules, authorize, authorize_by_resource_type};
pub use binding::{AclBinding, AclBindingFilter, CLUSTER_NAME};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($v:ident = $code:literal => $kafka:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($v = $code),*
        }

        impl $name {
            /// The value of a wire code; an unknown code is `Unknown` (as Kafka's `fromCode`).
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$v,)*
                    _ => $name::Unknown,
                }
            }

            pub fn code(self) -> i8 {
                self as i8
            }

            /// Kafka's name of the value (`TOPIC`, `READ`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$v => $kafka),*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// Kafka's `ResourceType` with its wire code.
    ResourceType {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
);

wire_enum!(
    /// Kafka's `AclOperation` with its wire code.
    AclOperation {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
    }
);

wire_enum!(
    /// Kafka's `PatternType` with its wire code.
    PatternType {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType` with its wire code.
    AclPermission {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
);

impl ResourceType {
    /// The operations an ACL on this resource type can grant, as Kafka's
    /// `AclEntry.supportedOperations` (what the authorized-operations fields report).
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_unknown() {
        for code in 0..=7 {
            assert_eq!(ResourceType::from_code(code).code(), code);
        }
        for code in 0..=14 {
            assert_eq!(AclOperation::from_code(code).code(), code);
        }
        assert_eq!(AclOperation::from_code(15), AclOperation::Unknown);
        assert_eq!(ResourceType::from_code(-1), ResourceType::Unknown);
        assert_eq!(PatternType::from_code(4), PatternType::Prefixed);
        assert_eq!(AclPermission::from_code(3), AclPermission::Allow);
        assert_eq!(AclOperation::IdempotentWrite.name(), "IDEMPOTENT_WRITE");
    }
}
