//! `TopicConfig` by Kafka name: setting one config, resolving a topic's effective config from
//! the broker's defaults and the topic's overrides, validating, and describing.
//!
//! Invariants:
//! - every value that reaches a field went through `table::check` (by `set`), or is checked
//!   by `validate` (fields set directly by an embedded caller are rendered and checked the same
//!   way), so the wire, the embedded API and the metadata replay accept exactly the same values;
//! - `resolve(defaults, overrides)` gives every field its default unless an override names
//!   it; the result's `overrides` are exactly the given ones (nothing inherited is recorded as
//!   set on the topic).

use std::collections::BTreeMap;

use super::table::{self, Effect};
use super::{Compression, FsyncPolicy, LogIo, TimestampType, TopicConfig};
use crate::error::Error;
use crate::limits::RECOVERY_BATCH_BYTES_MAX;
use crate::storage::LogConfig;

pub use super::PARTITIONS_PER_TOPIC_MAX;

impl TopicConfig {
    pub fn with_partitions(num_partitions: u32) -> Self {
        TopicConfig {
            num_partitions,
            ..TopicConfig::default()
        }
    }

    /// Sets one Kafka-named config (as CreateTopics, AlterConfigs and the config file send
    /// them): checked by the table (`Unknown topic config name: x`, or Kafka's message for a bad
    /// value), applied to its field and recorded as set on this topic.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        // The name this setting had before it took Kafka's style.
        let key = if key == "flush.policy" {
            "thorstream.fsync"
        } else {
            key
        };
        let def = table::lookup_or_refuse(key)?;
        let canonical = table::check(def, key, value)?;
        self.apply(key, &canonical);
        self.overrides.insert(key.to_string(), canonical);
        Ok(())
    }

    /// Writes an already checked value into its field (nothing for `Reported` configs).
    fn apply(&mut self, key: &str, v: &str) {
        fn n<T: std::str::FromStr + Default>(v: &str) -> T {
            v.parse().unwrap_or_default()
        }
        match key {
            "cleanup.policy" => {
                let lower = v.to_ascii_lowercase();
                self.cleanup_compact = lower.split(',').any(|p| p == "compact");
                self.cleanup_delete = lower.split(',').any(|p| p == "delete");
            }
            "compression.type" => {
                self.compression = match v {
                    "uncompressed" => Compression::Uncompressed,
                    "gzip" => Compression::Gzip {
                        level: self.level("compression.gzip.level"),
                    },
                    "snappy" => Compression::Snappy,
                    "lz4" => Compression::Lz4 {
                        level: self.level("compression.lz4.level"),
                    },
                    "zstd" => Compression::Zstd {
                        level: self.level("compression.zstd.level"),
                    },
                    _ => Compression::Producer,
                }
            }
            "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                let level = n(v);
                match (&mut self.compression, key) {
                    (Compression::Gzip { level: l }, "compression.gzip.level")
                    | (Compression::Lz4 { level: l }, "compression.lz4.level")
                    | (Compression::Zstd { level: l }, "compression.zstd.level") => *l = level,
                    _ => {}
                }
            }
            "delete.retention.ms" => self.delete_retention_ms = n(v),
            "index.interval.bytes" => self.index_interval_bytes = n(v),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = n(v),
            "max.message.bytes" => self.max_message_bytes = n(v),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = n(v),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = n(v),
            "message.timestamp.type" => {
                self.timestamp_type = if v == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio = n(v),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = n(v),
            "retention.bytes" => self.retention_bytes = n(v),
            "retention.ms" => self.retention_ms = n(v),
            "segment.bytes" => self.segment_bytes = n(v),
            "segment.ms" => self.segment_ms = n(v),
            "segment.jitter.ms" => self.segment_jitter_ms = n(v),
            "thorstream.fsync" => self.fsync = v.parse().ok(),
            _ => {}
        }
    }

    /// The level this config's overrides (or the table) give `key`.
    fn level(&self, key: &str) -> i32 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The effective value of a Kafka-named config, rendered as DescribeConfigs reports it;
    /// `None` for a name not in the table and for `thorstream.fsync` when the topic follows
    /// the broker's policy.
    pub fn get(&self, key: &str) -> Option<String> {
        let def = table::lookup(key)?;
        let level = |c: Option<i32>, key: &str| {
            c.map(|l| l.to_string())
                .or_else(|| self.overrides.get(key).cloned())
                .unwrap_or_else(|| def.default.to_string())
        };
        Some(match key {
            "cleanup.policy" => {
                let mut p = Vec::new();
                if self.cleanup_compact {
                    p.push("compact");
                }
                if self.cleanup_delete {
                    p.push("delete");
                }
                // Keep the order the topic was given (`delete,compact` stays so).
                match self.overrides.get(key) {
                    Some(o) if o.to_ascii_lowercase().split(',').count() == p.len() => o.clone(),
                    _ => p.join(","),
                }
            }
            "compression.type" => match self.compression {
                Compression::Producer => "producer",
                Compression::Uncompressed => "uncompressed",
                Compression::Gzip { .. } => "gzip",
                Compression::Snappy => "snappy",
                Compression::Lz4 { .. } => "lz4",
                Compression::Zstd { .. } => "zstd",
            }
            .to_string(),
            "compression.gzip.level" => level(
                match self.compression {
                    Compression::Gzip { level } => Some(level),
                    _ => None,
                },
                key,
            ),
            "compression.lz4.level" => level(
                match self.compression {
                    Compression::Lz4 { level } => Some(level),
                    _ => None,
                },
                key,
            ),
            "compression.zstd.level" => level(
                match self.compression {
                    Compression::Zstd { level } => Some(level),
                    _ => None,
                },
                key,
            ),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "thorstream.fsync" => self.fsync?.to_string(),
            _ => self
                .overrides
                .get(key)
                .cloned()
                .unwrap_or_else(|| def.default.to_string()),
        })
    }

    /// The effective config of a topic with `overrides` under the broker's `defaults`. An
    /// override this build does not know is kept (written back) but not applied; a known one
    /// with a bad value is Kafka's error.
    pub fn resolve(
        defaults: &TopicConfig,
        num_partitions: u32,
        replication_factor: u16,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, Error> {
        // The defaults' own `overrides` (dynamic broker values by topic name) stay visible
        // while the topic's are applied, so a codec set here finds the broker's level.
        let mut c = TopicConfig {
            num_partitions,
            replication_factor,
            ..defaults.clone()
        };
        // compression.type after the levels it reads (BTreeMap order puts the levels first).
        for (k, v) in overrides {
            if table::lookup(k).is_some() {
                c.set(k, v)?;
            }
        }
        c.apply_deprecated_timestamp_difference();
        c.overrides = overrides.clone();
        Ok(c)
    }

    /// Kafka's rule for the deprecated `message.timestamp.difference.max.ms`: it bounds both
    /// sides where `before`/`after` are not set on the topic.
    fn apply_deprecated_timestamp_difference(&mut self) {
        let Some(d) = self
            .overrides
            .get("message.timestamp.difference.max.ms")
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return;
        };
        if !self
            .overrides
            .contains_key("message.timestamp.before.max.ms")
        {
            self.timestamp_before_max_ms = d;
        }
        if !self
            .overrides
            .contains_key("message.timestamp.after.max.ms")
        {
            self.timestamp_after_max_ms = d;
        }
    }

    /// `self` with every field that differs from `defaults` recorded as an override (a config
    /// built field by field by an embedded caller, whose intent is "set on this topic").
    pub fn with_implied_overrides(mut self, defaults: &TopicConfig) -> TopicConfig {
        for def in table::TOPIC_CONFIGS {
            if def.effect == Effect::Reported || self.overrides.contains_key(def.name) {
                continue;
            }
            if let Some(v) = self.get(def.name)
                && defaults.get(def.name).as_deref() != Some(v.as_str())
            {
                self.overrides.insert(def.name.to_string(), v);
            }
        }
        self
    }

    /// Every rule a topic config must pass, at creation, on AlterConfigs and at start-up: the
    /// partition and replica counts, each config's Kafka check (fields set directly are
    /// rendered and checked as if sent by name), Kafka's cross-config rule, and the
    /// crash-recovery bound on `max.message.bytes`.
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
        for def in table::TOPIC_CONFIGS {
            if let Some(v) = self.get(def.name) {
                table::check(def, def.name, &v)?;
            }
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(Error::InvalidConfig(format!(
                "conflict topic config setting min.compaction.lag.ms ({}) > \
                 max.compaction.lag.ms ({})",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            )));
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

    /// Storage settings for one partition under the broker's default fsync policy and log I/O.
    pub fn log_config(&self, broker_fsync: FsyncPolicy, log_io: LogIo) -> LogConfig {
        let fsync = self.fsync.unwrap_or(broker_fsync);
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            segment_jitter_ms: self.segment_jitter_ms,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            index_interval_bytes: u64::from(self.index_interval_bytes),
            max_batch_bytes: self.max_message_bytes as usize,
            durable_hw: fsync == FsyncPolicy::Always,
            cleanup_delete: self.cleanup_delete,
            cleanup_compact: self.cleanup_compact,
            delete_retention_ms: self.delete_retention_ms,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            direct_io: log_io == LogIo::Direct,
        }
    }

    /// Every config this topic reports (DescribeConfigs, CreateTopics v5+), in table order:
    /// name and effective value.
    pub fn entries(&self, broker_fsync: FsyncPolicy) -> Vec<(&'static str, String)> {
        table::TOPIC_CONFIGS
            .iter()
            .map(|d| {
                let v = self.get(d.name).unwrap_or_else(|| broker_fsync.to_string());
                (d.name, v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(c: &mut TopicConfig, k: &str, v: &str) {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }

    #[test]
    fn every_table_config_is_accepted_at_its_default_and_reported_back() {
        for def in table::TOPIC_CONFIGS {
            let mut c = TopicConfig::default();
            set(&mut c, def.name, def.default);
            assert_eq!(
                c.get(def.name).as_deref(),
                Some(def.default),
                "{}",
                def.name
            );
            assert!(c.validate().is_ok(), "{}", def.name);
        }
    }

    #[test]
    fn the_default_config_reports_kafkas_defaults() {
        let c = TopicConfig::default();
        for def in table::TOPIC_CONFIGS {
            if def.name == "thorstream.fsync" {
                assert_eq!(c.get(def.name), None);
                continue;
            }
            assert_eq!(
                c.get(def.name).as_deref(),
                Some(def.default),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn cleanup_policy_maps_onto_delete_and_compact() {
        let mut c = TopicConfig::default();
        set(&mut c, "cleanup.policy", "compact");
        assert!(c.cleanup_compact && !c.cleanup_delete);
        set(&mut c, "cleanup.policy", "delete,compact");
        assert!(c.cleanup_compact && c.cleanup_delete);
        assert_eq!(c.get("cleanup.policy").as_deref(), Some("delete,compact"));
        let lc = c.log_config(FsyncPolicy::Always, LogIo::Buffered);
        assert!(lc.cleanup_compact && lc.cleanup_delete);
    }

    #[test]
    fn compression_levels_apply_to_the_codec_whichever_comes_first() {
        let mut o = BTreeMap::new();
        o.insert("compression.type".to_string(), "zstd".to_string());
        o.insert("compression.zstd.level".to_string(), "7".to_string());
        let c = TopicConfig::resolve(&TopicConfig::default(), 1, 1, &o)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.compression, Compression::Zstd { level: 7 });
        let mut c = TopicConfig::default();
        set(&mut c, "compression.type", "gzip");
        assert_eq!(c.compression, Compression::Gzip { level: -1 });
        set(&mut c, "compression.gzip.level", "5");
        assert_eq!(c.compression, Compression::Gzip { level: 5 });
        assert_eq!(c.get("compression.gzip.level").as_deref(), Some("5"));
    }

    #[test]
    fn resolve_inherits_what_is_not_overridden() {
        let defaults = TopicConfig {
            retention_ms: 1000,
            segment_bytes: 4096,
            ..TopicConfig::default()
        };
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "8192".to_string());
        o.insert("some.future.config".to_string(), "x".to_string());
        let c = TopicConfig::resolve(&defaults, 3, 1, &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.retention_ms, c.segment_bytes, c.num_partitions),
            (1000, 8192, 3)
        );
        assert_eq!(
            c.overrides, o,
            "unknown names are kept, inherited ones not added"
        );
        o.insert("segment.bytes".to_string(), "1".to_string());
        assert!(TopicConfig::resolve(&defaults, 3, 1, &o).is_err());
    }

    #[test]
    fn the_deprecated_difference_bounds_both_sides_unless_they_are_set() {
        let mut o = BTreeMap::new();
        o.insert(
            "message.timestamp.difference.max.ms".to_string(),
            "5000".to_string(),
        );
        o.insert(
            "message.timestamp.after.max.ms".to_string(),
            "10".to_string(),
        );
        let c = TopicConfig::resolve(&TopicConfig::default(), 1, 1, &o)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.timestamp_before_max_ms, c.timestamp_after_max_ms),
            (5000, 10)
        );
    }

    #[test]
    fn fields_set_directly_become_overrides_and_are_checked() {
        let c = TopicConfig {
            retention_ms: 5,
            ..TopicConfig::default()
        }
        .with_implied_overrides(&TopicConfig::default());
        assert_eq!(
            c.overrides.get("retention.ms").map(String::as_str),
            Some("5")
        );
        assert_eq!(c.overrides.len(), 1);
        let bad = TopicConfig {
            retention_ms: -7,
            ..TopicConfig::default()
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
        let bad = TopicConfig {
            min_compaction_lag_ms: 10,
            max_compaction_lag_ms: 5,
            ..TopicConfig::default()
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(m)) if m.contains("conflict")));
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
        set(
            &mut cfg,
            "max.message.bytes",
            &(RECOVERY_BATCH_BYTES_MAX + 1).to_string(),
        );
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
