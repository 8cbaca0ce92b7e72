// Used by the ACL work (every handler checks); until then only declared.
#![allow(dead_code)]

//! The authorization checks handlers make (`allowed`), against the ACL authorizer when
//! `--authorizer acl` is on, else everything is allowed (Kafka without an authorizer).
//!
//! (The authorizer itself is filled in by the ACL work.)

use super::Ctx;
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

/// Whether `caller` may perform `op` on the resource (`resource`, `name`); for the Cluster
/// resource the name is `kafka-cluster`.
pub fn allowed(
    _ctx: &Ctx,
    _caller: &Caller,
    _op: AclOperation,
    _resource: ResourceType,
    _name: &str,
) -> bool {
    true
}

/// The Cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
