//! The security stores of the data directory: ACL bindings (`acls.rs`, `__acls.meta`).

pub(crate) mod acl_record;
pub(crate) mod acls;
