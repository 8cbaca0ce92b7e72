//! Broker and topic configuration. Every quantity carries its unit in its name; defaults follow
//! Apache Kafka's where Kafka has one.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits::RECOVERY_BATCH_BYTES_MAX;
use crate::storage::LogConfig;

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

/// Per-topic settings. `None` fields inherit the broker's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub num_partitions: u32,
    /// Only 1 is accepted (replication is not implemented); kept for API compatibility.
    pub replication_factor: u16,
    pub fsync: Option<FsyncPolicy>,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// Negative: keep forever.
    pub retention_ms: i64,
    /// Negative: unlimited.
    pub retention_bytes: i64,
    /// Largest record batch accepted (Kafka's `max.message.bytes`).
    pub max_message_bytes: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            num_partitions: 1,
            replication_factor: 1,
            fsync: None,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: crate::limits::DEFAULT_MESSAGE_BYTES_MAX,
        }
    }
}

pub use crate::limits::PARTITIONS_PER_TOPIC_MAX;

impl TopicConfig {
    pub fn with_partitions(num_partitions: u32) -> Self {
        TopicConfig {
            num_partitions,
            ..TopicConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.num_partitions == 0 || self.num_partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(Error::InvalidPartitions(format!(
                "number of partitions must be in 1..={PARTITIONS_PER_TOPIC_MAX}, got {}",
                self.num_partitions
            )));
        }
        if self.replication_factor != 1 {
            return Err(Error::InvalidReplicationFactor(self.replication_factor));
        }
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return Err(Error::InvalidConfig(format!(
                "segment.bytes must be in 14..={}, got {}",
                i32::MAX,
                self.segment_bytes
            )));
        }
        if self.segment_ms < 1 {
            return Err(Error::InvalidConfig("segment.ms must be at least 1".into()));
        }
        // Crash recovery treats a batch over RECOVERY_BATCH_BYTES_MAX as a torn write and
        // truncates there, so a larger batch, once acknowledged, would be lost at the next
        // unclean start (with everything after it in its segment).
        if self.max_message_bytes == 0 || self.max_message_bytes as usize > RECOVERY_BATCH_BYTES_MAX
        {
            return Err(Error::InvalidConfig(format!(
                "max.message.bytes must be in 1..={RECOVERY_BATCH_BYTES_MAX} (the largest batch \
                 crash recovery accepts), got {}",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// Storage settings for one partition under the broker's default fsync policy.
    pub fn log_config(&self, broker_fsync: FsyncPolicy) -> LogConfig {
        let fsync = self.fsync.unwrap_or(broker_fsync);
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            index_interval_bytes: 4096,
            max_batch_bytes: self.max_message_bytes as usize,
            durable_hw: fsync == FsyncPolicy::Always,
            ..LogConfig::default()
        }
    }

    /// Applies one Kafka-named config key (as CreateTopics / the config file send them).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let bad = || Error::InvalidConfig(format!("invalid value {value:?} for {key}"));
        match key {
            "segment.bytes" => self.segment_bytes = value.parse().map_err(|_| bad())?,
            "segment.ms" => self.segment_ms = value.parse().map_err(|_| bad())?,
            "retention.ms" => self.retention_ms = value.parse().map_err(|_| bad())?,
            "retention.bytes" => self.retention_bytes = value.parse().map_err(|_| bad())?,
            "max.message.bytes" => self.max_message_bytes = value.parse().map_err(|_| bad())?,
            "flush.policy" | "thorstream.fsync" => self.fsync = Some(value.parse()?),
            // Accepted for compatibility; they describe behaviour we already have.
            "cleanup.policy" if value == "delete" => {}
            "min.insync.replicas" if value == "1" => {}
            "compression.type" if value == "producer" => {}
            "message.timestamp.type" if value == "CreateTime" => {}
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "unsupported topic config {key}={value}"
                )));
            }
        }
        Ok(())
    }

    /// The Kafka-named configs this topic reports in DescribeConfigs.
    pub fn entries(&self, broker_fsync: FsyncPolicy) -> Vec<(&'static str, String)> {
        vec![
            ("cleanup.policy", "delete".into()),
            ("compression.type", "producer".into()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("min.insync.replicas", "1".into()),
            ("message.timestamp.type", "CreateTime".into()),
            (
                "thorstream.fsync",
                self.fsync.unwrap_or(broker_fsync).to_string(),
            ),
        ]
    }
}

/// Broker settings shared by the embedded and the server face.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub default_topic_config: TopicConfig,
    pub fsync: FsyncPolicy,
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
    /// Most partitions (all topics together) this broker will hold; CreateTopics and
    /// CreatePartitions beyond it fail with INVALID_PARTITIONS. Each partition keeps about four
    /// open files per segment, so raise `ulimit -n` along with it.
    pub max_partitions: u32,
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
            node_id: 1,
            auto_create_topics: true,
            housekeeping_interval_ms: 1000,
            produce_timeout_ms: 30_000,
            offsets_retention_minutes: 7 * 24 * 60,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            max_partitions: crate::limits::DEFAULT_PARTITIONS_MAX,
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

    #[test]
    fn max_message_bytes_above_the_recovery_bound_is_refused() {
        let at = |max_message_bytes: usize| TopicConfig {
            max_message_bytes: u32::try_from(max_message_bytes).unwrap_or(u32::MAX),
            ..TopicConfig::default()
        };
        assert!(at(RECOVERY_BATCH_BYTES_MAX).validate().is_ok());
        for bad in [0, RECOVERY_BATCH_BYTES_MAX + 1, u32::MAX as usize] {
            let err = at(bad).validate().expect_err("refused");
            assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err}");
        }
        // The same rule for a topic's `max.message.bytes` config (CreateTopics).
        let mut cfg = TopicConfig::default();
        cfg.set(
            "max.message.bytes",
            &(RECOVERY_BATCH_BYTES_MAX + 1).to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(cfg.validate(), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn replication_factor_other_than_one_is_refused() {
        let cfg = TopicConfig {
            replication_factor: 3,
            ..TopicConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(Error::InvalidReplicationFactor(3))
        ));
    }
}
