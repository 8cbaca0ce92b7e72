//! Broker and topic configuration. Every quantity carries its unit in its name; defaults follow
//! Apache Kafka's where Kafka has one.
//!
//! Files: `mod.rs` (the structs: `FsyncPolicy`, `TopicConfig`, `BrokerConfig`), `table.rs`
//! (every topic config Kafka accepts: type, default, check, broker synonyms), `topic.rs`
//! (`TopicConfig` by Kafka name: set, resolve from defaults + overrides, validate, describe),
//! `broker_dynamic.rs` (the broker's dynamic settings and the defaults topics inherit),
//! `cleaner.rs` (the log cleaner's broker settings, static and dynamic).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub(crate) mod broker_dynamic;
pub(crate) mod cleaner;
pub(crate) mod table;
mod topic;

/// When appended bytes are forced to disk.
///
/// - `Always`: a record is acknowledged (acks=all) and visible to consumers only after an fsync
///   covers it; the flusher group-commits (one fsync for every append since the last one).
///   Survives power loss.
/// - `Interval(ms)`: the flusher fsyncs every `ms`; records are visible once written to the OS.
///   Survives a process crash; a power loss may take back up to `ms` of acknowledged writes.
/// - `Never`: fsync only on segment roll and clean shutdown. Survives a process crash; a power
///   loss may take back anything not yet written back by the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FsyncPolicy {
    #[default]
    Always,
    Interval(u64),
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = Error;

    /// Parses `always`, `never` or `<N>ms` (e.g. `100ms`).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => other
                .strip_suffix("ms")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n > 0)
                .map(FsyncPolicy::Interval)
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "fsync policy {other:?}: expected always, never or <N>ms"
                    ))
                }),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Never => write!(f, "never"),
            FsyncPolicy::Interval(ms) => write!(f, "{ms}ms"),
        }
    }
}

/// How segment appends and record reads reach the disk (`--log-io`).
///
/// - `Buffered`: through the page cache, as Kafka does: consumers of recent records read them
///   from memory, and each new cached page is the OS's to find and fill.
/// - `Direct`: around it (`O_DIRECT`, `storage/log_writer.rs`): appends go from one reused,
///   aligned buffer per active segment to the device and record bytes are read back from the
///   device into a reused buffer per thread. The broker then touches no new page per byte
///   written, which on a VM that returns freed memory to its host is most of a produce's CPU;
///   the price is that every fetch reads the device. File systems without `O_DIRECT` keep to
///   the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LogIo {
    #[default]
    Buffered,
    Direct,
}

impl std::str::FromStr for LogIo {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "buffered" => Ok(LogIo::Buffered),
            "direct" => Ok(LogIo::Direct),
            other => Err(Error::InvalidConfig(format!(
                "log I/O {other:?}: expected buffered or direct"
            ))),
        }
    }
}

impl std::fmt::Display for LogIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogIo::Buffered => "buffered",
            LogIo::Direct => "direct",
        })
    }
}

/// Per-topic settings: the effective value of every config that changes behaviour (the broker's
/// default where the topic sets none), plus `overrides`, the Kafka-named configs set on the
/// topic itself. `TopicConfig::resolve` derives the fields from defaults and overrides;
/// `config/topic.rs` holds the methods, `config/table.rs` the names, types and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub num_partitions: u32,
    /// Only 1 is accepted (replication is not implemented); kept for API compatibility.
    pub replication_factor: u16,
    pub fsync: Option<FsyncPolicy>,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// `segment.jitter.ms` (0: segments roll at `segment_ms` exactly).
    pub segment_jitter_ms: i64,
    /// Negative: keep forever.
    pub retention_ms: i64,
    /// Negative: unlimited.
    pub retention_bytes: i64,
    /// Largest record batch accepted (Kafka's `max.message.bytes`).
    pub max_message_bytes: u32,
    /// `cleanup.policy` contains `delete`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`.
    pub cleanup_compact: bool,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    /// `compression.type` and the level of the codec it names (KIP-390).
    pub compression: Compression,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` / `after.max.ms`: bounds on CreateTime timestamps.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// The configs set on this topic, by Kafka name, in canonical form (CreateTopics,
    /// AlterConfigs). Everything else follows the broker's (dynamic) defaults. A name this
    /// build does not know, read from disk, is kept here and written back, never applied.
    pub overrides: std::collections::BTreeMap<String, String>,
}

/// Codec a topic stores batches with (`compression.type`); `Producer` keeps the producer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Compression {
    #[default]
    Producer,
    Uncompressed,
    Gzip {
        level: i32,
    },
    Snappy,
    Lz4 {
        level: i32,
    },
    Zstd {
        level: i32,
    },
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            num_partitions: 1,
            replication_factor: 1,
            fsync: None,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: crate::limits::DEFAULT_MESSAGE_BYTES_MAX,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            compression: Compression::Producer,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            index_interval_bytes: 4096,
            overrides: std::collections::BTreeMap::new(),
        }
    }
}

pub use crate::limits::PARTITIONS_PER_TOPIC_MAX;

/// Broker settings shared by the embedded and the server face.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub default_topic_config: TopicConfig,
    pub fsync: FsyncPolicy,
    /// Page cache or direct I/O for segment files (see `LogIo`).
    pub log_io: LogIo,
    pub node_id: i32,
    pub auto_create_topics: bool,
    /// How often housekeeping checks segment age, retention and offset expiry.
    pub housekeeping_interval_ms: u64,
    /// How long an embedded `Producer::send` waits for its record to become durable.
    pub produce_timeout_ms: u64,
    /// Committed offsets of a group that has stayed empty this long are dropped.
    pub offsets_retention_minutes: u64,
    /// An idempotent producer idle this long (by its newest batch timestamp) is forgotten
    /// (Kafka's `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: u64,
    /// The longest `transaction.timeout.ms` a transactional producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`); InitProducerId over it is INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: u32,
    /// A transactional id with no transaction for this long is forgotten (Kafka's
    /// `transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: u64,
    /// Most partitions (all topics together) this broker will hold; CreateTopics and
    /// CreatePartitions beyond it fail with INVALID_PARTITIONS. Each partition keeps one open
    /// file per segment, so raise `ulimit -n` along with it.
    pub max_partitions: u32,
    /// How long the log cleaner sleeps between passes when it found nothing to clean
    /// (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// Whether the log cleaner runs (Kafka's `log.cleaner.enable`; static): without it
    /// compacted topics are not compacted and grow.
    pub log_cleaner_enable: bool,
    /// Memory of the cleaner's key → offset map (Kafka's `log.cleaner.dedupe.buffer.size`;
    /// dynamic), capped at `limits::CLEANER_DEDUPE_BUFFER_BYTES_MAX`.
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// Bound on the cleaner's read + write bytes per second (Kafka's
    /// `log.cleaner.io.max.bytes.per.second`; dynamic); `f64::MAX`: unthrottled.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// How long the first rebalance of an empty consumer group waits for more members,
    /// extended while they keep arriving, bounded by the rebalance timeout (Kafka's
    /// `group.initial.rebalance.delay.ms`). 0 here, so an embedded consumer alone in its group
    /// gets its partitions at its first `poll`; the server binary uses Kafka's default,
    /// 3000, and so should an embedder serving Kafka clients that start several members of
    /// one group.
    pub group_initial_rebalance_delay_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./data"),
            default_topic_config: TopicConfig::default(),
            fsync: FsyncPolicy::Always,
            log_io: LogIo::Buffered,
            node_id: 1,
            auto_create_topics: true,
            housekeeping_interval_ms: 1000,
            produce_timeout_ms: 30_000,
            offsets_retention_minutes: 7 * 24 * 60,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
            max_partitions: crate::limits::DEFAULT_PARTITIONS_MAX,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_bytes: crate::limits::CLEANER_DEDUPE_BUFFER_BYTES,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            group_initial_rebalance_delay_ms: 0,
        }
    }
}

impl BrokerConfig {
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            data_dir: data_dir.into(),
            ..BrokerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_io_parses_its_two_names_and_refuses_others() {
        for io in [LogIo::Buffered, LogIo::Direct] {
            assert_eq!(io.to_string().parse::<LogIo>().ok(), Some(io));
        }
        assert_eq!(BrokerConfig::default().log_io, LogIo::Buffered);
        let err = "odirect".parse::<LogIo>().expect_err("not a mode");
        assert!(
            err.to_string().contains("expected buffered or direct"),
            "{err}"
        );
    }

    #[test]
    fn fsync_policy_parses_kafka_style_strings() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().ok(),
            Some(FsyncPolicy::Always)
        );
        assert_eq!(
            "never".parse::<FsyncPolicy>().ok(),
            Some(FsyncPolicy::Never)
        );
        assert_eq!(
            "250ms".parse::<FsyncPolicy>().ok(),
            Some(FsyncPolicy::Interval(250))
        );
        assert!("0ms".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
