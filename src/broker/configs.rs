//! Dynamic configs: replacing the configs set on a topic, and the broker's dynamic defaults
//! that topics inherit, while the broker runs (AlterConfigs / IncrementalAlterConfigs).
//!
//! Invariants:
//! - a new config is validated by the same function as at creation (`TopicConfig::resolve`
//!   then `TopicConfig::validate`, which `admit_topic` runs); `validate_only` stops after it,
//!   so it answers what the real call would and changes nothing;
//! - a change is persisted (fsynced record in `__topics.meta`) before any partition sees it;
//!   a broker default that would make some topic's config invalid is refused whole;
//! - applying a config to a live partition replaces its settings, then its `LogConfig` under
//!   the log lock (`PartitionLog::set_config`), then tells waiters if that moved the high
//!   watermark and marks the flusher, so a switch of fsync policy neither strands a parked
//!   acks=all produce nor leaves written bytes unsynced under the new policy.
//!
//! Lock order as everywhere: `partition_admission`, then a topic's `meta` / `dynamic`, then
//! the topic store, then a partition's log.

use std::collections::BTreeMap;
use std::time::Instant;

use super::partition::PartitionSettings;
use super::topic::Topic;
use super::wait::WaitKey;
use super::{Broker, TopicRecord};
use crate::config::FsyncPolicy;
use crate::config::TopicConfig;
use crate::config::broker_dynamic::{BrokerScope, DynamicBrokerConfigs, topic_defaults};
use crate::config::cleaner::check_broker_config;
use crate::error::{Error, Result};

impl Broker {
    /// The defaults a topic without a setting of its own follows now: the static default
    /// config with the dynamic broker configs applied.
    pub(crate) fn topic_defaults(&self) -> TopicConfig {
        topic_defaults(
            &self.inner.config.default_topic_config,
            &self.dynamic_configs(),
        )
    }

    /// The broker's dynamic configs now.
    pub(crate) fn dynamic_configs(&self) -> DynamicBrokerConfigs {
        self.inner
            .dynamic
            .read()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// The effective config of a new topic: `None` takes the defaults; a given config keeps
    /// what its caller set (its `overrides`, plus every field that differs from
    /// `TopicConfig::default()`) and inherits the rest.
    pub(crate) fn new_topic_config(&self, config: Option<TopicConfig>) -> Result<TopicConfig> {
        let defaults = self.topic_defaults();
        match config {
            None => TopicConfig::resolve(
                &defaults,
                defaults.num_partitions,
                defaults.replication_factor,
                &BTreeMap::new(),
            ),
            Some(c) => {
                let (partitions, replicas) = (c.num_partitions, c.replication_factor);
                let set = c.with_implied_overrides(&TopicConfig::default()).overrides;
                TopicConfig::resolve(&defaults, partitions, replicas, &set)
            }
        }
    }

    /// Replaces the configs set on topic `name` with `overrides` (Kafka names, e.g.
    /// `retention.ms`; what is not named follows the broker's defaults), as AlterConfigs does;
    /// in force on the live partitions when this returns, and persisted. `UnknownTopicOrPartition`, or Kafka's
    /// `InvalidConfig` for a bad name or value; with `validate_only`, nothing changes.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        overrides: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        for k in overrides.keys() {
            crate::config::table::lookup_or_refuse(k)?;
        }
        let _admission = self.admission_lock()?;
        let topic = self.topic(name)?;
        let mut meta = topic
            .meta
            .write()
            .map_err(|_| Error::Metadata("topic lock poisoned".into()))?;
        let c = &meta.config;
        let config = TopicConfig::resolve(
            &self.topic_defaults(),
            c.num_partitions,
            c.replication_factor,
            overrides,
        )?;
        config.validate()?;
        if validate_only {
            return Ok(());
        }
        let mut new_meta = meta.clone();
        new_meta.config = config;
        self.store_lock()?
            .append(&TopicRecord::Upsert(new_meta.clone()), true)?;
        self.apply_topic_config(&topic, &new_meta.config);
        log::info!("topic {name}: configs set to {overrides:?}");
        *meta = new_meta;
        Ok(())
    }

    /// Replaces the dynamic broker configs of `scope` with `configs` (broker names, e.g.
    /// `log.retention.ms`) and re-resolves every topic against the new defaults. Refused whole
    /// (`InvalidConfig` / `InvalidRequest`, Kafka's messages) if a name is unknown or static, a
    /// value is bad, or some topic's config would not validate.
    pub(crate) fn alter_broker_configs(
        &self,
        scope: BrokerScope,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let mut checked = BTreeMap::new();
        for (k, v) in configs {
            checked.insert(k.clone(), check_broker_config(k, v)?);
        }
        let _admission = self.admission_lock()?;
        let mut dynamic = self
            .inner
            .dynamic
            .write()
            .map_err(|_| Error::Metadata("dynamic config lock poisoned".into()))?;
        let mut next = dynamic.clone();
        *next.map_mut(scope) = checked.clone();
        let defaults = topic_defaults(&self.inner.config.default_topic_config, &next);
        defaults.validate()?;
        let topics = self.inner.topics_snapshot();
        let mut resolved = Vec::with_capacity(topics.len());
        for t in &topics {
            let meta = t
                .meta
                .read()
                .map_err(|_| Error::Metadata("topic lock poisoned".into()))?;
            let c = &meta.config;
            let config = TopicConfig::resolve(
                &defaults,
                c.num_partitions,
                c.replication_factor,
                &c.overrides,
            )
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| Error::InvalidConfig(format!("topic {}: {e}", meta.name)))?;
            resolved.push(config);
        }
        if validate_only {
            return Ok(());
        }
        self.store_lock()?.append(
            &TopicRecord::BrokerConfigs {
                scope: scope.key(self.node_id()),
                configs: checked,
            },
            true,
        )?;
        *dynamic = next;
        drop(dynamic);
        for (t, config) in topics.iter().zip(resolved) {
            if let Ok(mut meta) = t.meta.write() {
                if meta.config != config {
                    self.apply_topic_config(t, &config);
                }
                meta.config = config;
            }
        }
        log::info!("dynamic broker configs ({scope:?}) set to {configs:?}");
        // The cleaner (and housekeeping, harmlessly) re-read their settings now.
        if let Ok(_guard) = self.inner.stop_cv.0.lock() {
            self.inner.stop_cv.1.notify_all();
        }
        Ok(())
    }

    /// Puts `config` in force on every partition of `topic` (see the module invariants).
    fn apply_topic_config(&self, topic: &Topic, config: &TopicConfig) {
        let broker_fsync = self.inner.config.fsync;
        let settings = PartitionSettings::of(config, broker_fsync);
        let log_config = config.log_config(broker_fsync, self.inner.config.log_io);
        let parts = topic.partitions_snapshot();
        for p in parts {
            p.set_settings(settings);
            let moved = match p.log() {
                Ok(mut log) => log.set_config(log_config.clone()),
                Err(_) => false,
            };
            if settings.fsync != FsyncPolicy::Never {
                // Bytes written under the old policy are synced now under the new one.
                self.inner.flusher.mark(&p, Instant::now());
            }
            if moved {
                self.inner
                    .waits
                    .event(&WaitKey::partition(&p.topic, p.index));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn open(dir: &std::path::Path) -> Broker {
        Broker::new(BrokerConfig::with_data_dir(dir)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config(b: &Broker, topic: &str) -> TopicConfig {
        b.describe(topic).unwrap_or_else(|e| panic!("{e}")).config
    }

    #[test]
    fn topic_configs_apply_live_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let b = open(dir.path());
            b.create_topic("t", None).unwrap_or_else(|e| panic!("{e}"));
            let set = map(&[("retention.ms", "5000"), ("cleanup.policy", "compact")]);
            b.alter_topic_configs("t", &set, true)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                config(&b, "t").retention_ms,
                TopicConfig::default().retention_ms
            );
            b.alter_topic_configs("t", &set, false)
                .unwrap_or_else(|e| panic!("{e}"));
            let c = config(&b, "t");
            assert_eq!(
                (c.retention_ms, c.cleanup_compact, c.cleanup_delete),
                (5000, true, false)
            );
            let p = b.partition("t", 0).unwrap_or_else(|e| panic!("{e}"));
            let live = p.log().unwrap_or_else(|e| panic!("{e}")).config().clone();
            assert_eq!((live.retention_ms, live.cleanup_compact), (5000, true));
            let bad = map(&[("segment.ms", "0")]);
            assert!(matches!(
                b.alter_topic_configs("t", &bad, false),
                Err(Error::InvalidConfig(_))
            ));
            assert!(matches!(
                b.alter_topic_configs("nope", &set, false),
                Err(Error::UnknownTopicOrPartition(_))
            ));
            b.close().unwrap_or_else(|e| panic!("{e}"));
        }
        let b = open(dir.path());
        let c = config(&b, "t");
        assert_eq!((c.retention_ms, c.cleanup_compact), (5000, true));
        assert_eq!(c.overrides.len(), 2);
    }

    #[test]
    fn broker_defaults_reach_topics_without_their_own_live_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let b = open(dir.path());
            b.create_topic("inherits", None)
                .unwrap_or_else(|e| panic!("{e}"));
            let own = TopicConfig {
                retention_ms: 1000,
                ..TopicConfig::default()
            };
            b.create_topic("own", Some(own))
                .unwrap_or_else(|e| panic!("{e}"));
            let d = map(&[("log.retention.ms", "777"), ("compression.type", "zstd")]);
            b.alter_broker_configs(BrokerScope::Cluster, &d, false)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config(&b, "inherits").retention_ms, 777);
            assert_eq!(config(&b, "own").retention_ms, 1000);
            let p = b.partition("inherits", 0).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                p.settings().rules.codec,
                crate::storage::validator::TargetCodec::Zstd(3)
            );
            // A topic created now inherits it too.
            b.create_topic("later", None)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config(&b, "later").retention_ms, 777);
            b.close().unwrap_or_else(|e| panic!("{e}"));
        }
        let b = open(dir.path());
        assert_eq!(config(&b, "inherits").retention_ms, 777);
        assert_eq!(config(&b, "own").retention_ms, 1000);
        // Deleting the default gives the topics Kafka's default back.
        b.alter_broker_configs(BrokerScope::Cluster, &BTreeMap::new(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config(&b, "inherits").retention_ms,
            TopicConfig::default().retention_ms
        );
    }

    #[test]
    fn a_broker_default_that_would_break_a_topic_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b = open(dir.path());
        b.create_topic("t", None).unwrap_or_else(|e| panic!("{e}"));
        b.alter_topic_configs("t", &map(&[("max.compaction.lag.ms", "5")]), false)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = map(&[
            ("log.retention.ms", "1"),
            ("log.cleaner.min.compaction.lag.ms", "10"),
        ]);
        match b.alter_broker_configs(BrokerScope::Cluster, &d, false) {
            Err(Error::InvalidConfig(m)) => assert!(m.contains("topic t"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            config(&b, "t").retention_ms,
            TopicConfig::default().retention_ms
        );
        assert!(b.dynamic_configs().cluster.is_empty());
        assert!(matches!(
            b.alter_broker_configs(BrokerScope::Node, &map(&[("log.dirs", "/x")]), false),
            Err(Error::InvalidRequest(_))
        ));
    }
}
