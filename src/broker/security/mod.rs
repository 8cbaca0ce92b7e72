//! The broker's security stores in the data directory: SCRAM credentials (`users`,
//! `__users.meta`) and ACL bindings (`acls.rs`, `__acls.meta`). Each is a record log
//! (`metadata::record_log`) with its own file kind, openable without a `Broker` (the offline
//! `thorstream users` command does).

pub(crate) mod acl_record;
pub(crate) mod acls;
pub mod users;
