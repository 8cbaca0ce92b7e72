//! The broker's security stores in the data directory: SCRAM credentials (`users`,
//! `__users.meta`). Each is a record log (`metadata::record_log`) with its own file kind,
//! openable without a `Broker` (the offline `thorstream users` command does).

pub mod users;
