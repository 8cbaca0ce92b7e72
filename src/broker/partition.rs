//! One partition: its log behind a mutex and the fsync policy in force for it.

use std::sync::{Mutex, MutexGuard};

use crate::config::FsyncPolicy;
use crate::error::Error;
use crate::storage::PartitionLog;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub fsync: FsyncPolicy,
    log: Mutex<PartitionLog>,
}

impl Partition {
    pub fn new(topic: String, index: i32, fsync: FsyncPolicy, log: PartitionLog) -> Partition {
        Partition {
            topic,
            index,
            fsync,
            log: Mutex::new(log),
        }
    }

    /// The log's mutex itself, for the log cleaner, which locks it only briefly around its
    /// snapshot and its swaps (`storage::cleaner::clean_log`).
    pub fn log_mutex(&self) -> &Mutex<PartitionLog> {
        &self.log
    }

    /// Locks the log. A poisoned mutex (a panic while holding it) is reported as a storage
    /// error rather than propagated as a panic.
    pub fn log(&self) -> Result<MutexGuard<'_, PartitionLog>, Error> {
        self.log.lock().map_err(|_| {
            Error::Metadata(format!("{}-{} log lock poisoned", self.topic, self.index))
        })
    }
}
