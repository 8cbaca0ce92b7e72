//! One partition: its log behind a mutex and the settings in force for it (fsync policy and
//! the produce rules of its topic's config), which AlterConfigs replaces while it runs.
//!
//! Invariant: `settings` and the log's `LogConfig` are replaced together by
//! `Broker::apply_topic_config` (settings first, then the log under its lock); an append reads
//! the settings once, before it locks the log, and uses that one reading throughout.

use std::sync::{Mutex, MutexGuard, RwLock};

use crate::config::{Compression, FsyncPolicy, TimestampType, TopicConfig};
use crate::error::Error;
use crate::storage::PartitionLog;
use crate::storage::validator::{ProduceRules, TargetCodec};

/// What an append to this partition must follow, taken from its topic's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSettings {
    pub fsync: FsyncPolicy,
    pub rules: ProduceRules,
}

impl PartitionSettings {
    pub fn of(config: &TopicConfig, broker_fsync: FsyncPolicy) -> PartitionSettings {
        let codec = match config.compression {
            Compression::Producer => TargetCodec::Producer,
            Compression::Uncompressed => TargetCodec::None,
            Compression::Gzip { level } => TargetCodec::Gzip(level),
            Compression::Snappy => TargetCodec::Snappy,
            Compression::Lz4 { level } => TargetCodec::Lz4(level),
            Compression::Zstd { level } => TargetCodec::Zstd(level),
        };
        PartitionSettings {
            fsync: config.fsync.unwrap_or(broker_fsync),
            rules: ProduceRules {
                codec,
                log_append_time: config.timestamp_type == TimestampType::LogAppendTime,
                timestamp_before_max_ms: config.timestamp_before_max_ms,
                timestamp_after_max_ms: config.timestamp_after_max_ms,
                max_batch_bytes: config.max_message_bytes as usize,
            },
        }
    }
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    settings: RwLock<PartitionSettings>,
    log: Mutex<PartitionLog>,
}

impl Partition {
    pub fn new(
        topic: String,
        index: i32,
        settings: PartitionSettings,
        log: PartitionLog,
    ) -> Partition {
        Partition {
            topic,
            index,
            settings: RwLock::new(settings),
            log: Mutex::new(log),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> PartitionSettings {
        match self.settings.read() {
            Ok(s) => *s,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The fsync policy in force now.
    pub fn fsync(&self) -> FsyncPolicy {
        self.settings().fsync
    }

    pub(crate) fn set_settings(&self, settings: PartitionSettings) {
        match self.settings.write() {
            Ok(mut s) => *s = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
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
