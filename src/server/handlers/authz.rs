//! The authorization checks handlers make, against the ACL authorizer when `--authorizer acl`
//! is on (`security::acl::authorize` over the broker's persisted `AclSet`), else everything
//! is allowed (Kafka without an authorizer).
//!
//! Invariants: with no authorizer every check is one branch on `ServerConfig::authorizer`
//! and takes no lock, so Produce and Fetch cost what they did before ACLs existed. With one,
//! a check takes the ACL set's read lock (never a mutex) and allocates nothing; `Checks`
//! holds that lock across the many checks of one request, and handlers drop it before doing
//! the request's work (so a CreateAcls never waits behind an fsync).

use std::sync::RwLockReadGuard;

use super::Ctx;
pub use crate::security::acl::CLUSTER_NAME;
use crate::security::acl::{self, AclOperation, AclSet, Action, ResourceType, Rules};
use crate::server::session::Caller;

/// Whether `caller` may perform `op` on the resource (`resource`, `name`); for the Cluster
/// resource the name is `kafka-cluster`.
pub fn allowed(
    ctx: &Ctx,
    caller: &Caller,
    op: AclOperation,
    resource: ResourceType,
    name: &str,
) -> bool {
    if ctx.config.authorizer.is_none() {
        return true;
    }
    checks(ctx, caller).allows(op, resource, name)
}

/// The checks of one request, under one read lock of the ACL set (none when the authorizer is
/// off).
pub struct Checks<'a> {
    on: Option<On<'a>>,
}

struct On<'a> {
    set: RwLockReadGuard<'a, AclSet>,
    rules: Rules<'a>,
    caller: &'a Caller,
}

/// The checks of `caller`'s request.
pub fn checks<'a>(ctx: &'a Ctx, caller: &'a Caller) -> Checks<'a> {
    Checks {
        on: ctx.config.authorizer.as_ref().map(|a| On {
            set: ctx.broker.acls().read(),
            rules: Rules {
                super_users: &a.super_users,
                allow_everyone_if_no_acl_found: a.allow_everyone_if_no_acl_found,
            },
            caller,
        }),
    }
}

impl Checks<'_> {
    /// Whether an authorizer is on at all (off: every check passes).
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    pub fn allows(&self, op: AclOperation, resource: ResourceType, name: &str) -> bool {
        match &self.on {
            None => true,
            Some(on) => acl::authorize(&on.set, &on.rules, &on.action(op, resource, name)),
        }
    }

    /// `allows(op, Cluster, kafka-cluster)`.
    pub fn allows_cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether `op` is allowed on at least one resource of the type (Kafka's
    /// `authorizeByResourceType`).
    pub fn allows_any_of_type(&self, op: AclOperation, resource: ResourceType) -> bool {
        match &self.on {
            None => true,
            Some(on) => {
                acl::authorize_by_resource_type(&on.set, &on.rules, &on.action(op, resource, ""))
            }
        }
    }

    /// Kafka's authorized-operations bit field of the resource: bit `code` set for each
    /// operation the resource type supports that the caller may perform.
    pub fn operations(&self, resource: ResourceType, name: &str) -> i32 {
        resource
            .supported_operations()
            .iter()
            .filter(|op| self.allows(**op, resource, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

impl<'a> On<'a> {
    fn action<'b>(&'b self, op: AclOperation, resource: ResourceType, name: &'b str) -> Action<'b> {
        Action {
            principal: &self.caller.principal,
            host: self.caller.ip,
            operation: op,
            resource_type: resource,
            name,
        }
    }
}

/// DescribeConfigs, AlterConfigs and IncrementalAlterConfigs' check of one config resource
/// (`op` is DescribeConfigs or AlterConfigs), as Kafka's `ConfigHelper`/`KafkaApis`: a broker
/// (or broker logger) is the cluster, a topic and a group themselves. `None`: allowed, or a
/// resource type the handler refuses on its own.
pub fn config_refusal(
    checks: &Checks<'_>,
    op: AclOperation,
    config_resource_type: i8,
    name: &str,
) -> Option<crate::error::AuthzError> {
    use crate::error::AuthzError;
    /// Kafka's `ConfigResource.Type` codes.
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const BROKER_LOGGER: i8 = 8;
    const GROUP: i8 = 32;
    let (resource, name, error) = match config_resource_type {
        TOPIC => (
            ResourceType::Topic,
            name,
            AuthzError::TopicAuthorizationFailed,
        ),
        BROKER | BROKER_LOGGER => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            AuthzError::ClusterAuthorizationFailed,
        ),
        GROUP => (
            ResourceType::Group,
            name,
            AuthzError::GroupAuthorizationFailed,
        ),
        _ => return None,
    };
    (!checks.allows(op, resource, name)).then_some(error)
}
