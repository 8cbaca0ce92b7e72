// Used by the ACL work (authorizer, handlers); until then only declared.
#![allow(dead_code)]

//! ACLs as Kafka's StandardAuthorizer, sans-IO: Kafka's resource, pattern, operation and
//! permission types (with their wire codes), bindings and filters, and the decision.
//!
//! (The decision, bindings and filters are filled in by the ACL work.)

/// Kafka's `ResourceType` with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Unknown = 0,
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

/// Kafka's `AclOperation` with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclOperation {
    Unknown = 0,
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

/// Kafka's `PatternType` with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    Unknown = 0,
    Any = 1,
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

/// Kafka's `AclPermissionType` with its wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclPermission {
    Unknown = 0,
    Any = 1,
    Deny = 2,
    Allow = 3,
}
