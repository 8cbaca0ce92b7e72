//! Topic administration on the broker: creating, growing, deleting and describing topics, and
//! the admission rules every creation passes.
//!
//! Invariants:
//! - a creation (CreateTopics, auto-creation, CreatePartitions) and its `validate_only` form
//!   run the same admission function (`admit_topic`, `admit_partitions`); `validate_only` stops
//!   after it, so it answers what the real call would have answered at that moment and
//!   creates nothing;
//! - an `Admission` holds the broker's `partition_admission` lock, which every creation,
//!   growth and deletion of a topic takes first: what admission checked (the name is free, the
//!   topic's partition count, the `max_partitions` budget) stays true until the admitted
//!   partitions exist or the admission is dropped. Lock order: `partition_admission`, then
//!   `topics` or a topic's `meta`, then the topic store.

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};

use super::topic::{self, Topic, TopicMeta, validate_topic_name};
use super::{Broker, PartitionInfo, TopicDescription, TopicRecord, open_topic, partition_dir};
use crate::config::{PARTITIONS_PER_TOPIC_MAX, TopicConfig};
use crate::error::{Error, Result};
use crate::storage::{PartitionLog, now_ms, sync_dir};

use super::partition::{Partition, PartitionSettings};

/// Proof that a creation passed every admission rule. Holding it keeps those rules' answers
/// valid (see the module invariants); dropping it without creating anything is the
/// `validate_only` path.
pub(crate) struct Admission<'a> {
    _lock: MutexGuard<'a, ()>,
}

impl Broker {
    pub(super) fn admission_lock(&self) -> Result<MutexGuard<'_, ()>> {
        self.inner
            .partition_admission
            .lock()
            .map_err(|_| Error::Metadata("partition admission lock poisoned".into()))
    }

    /// Refuses `adding` partitions that would take the broker over `max_partitions`. Called
    /// with the admission lock held.
    fn check_partition_budget(&self, adding: u32) -> Result<()> {
        let max = self.inner.config.max_partitions;
        let total = self.total_partitions().saturating_add(adding as usize);
        if total > max as usize {
            return Err(Error::InvalidPartitions(format!(
                "{adding} more partitions would make {total} on this broker, over its limit of \
                 {max} (max_partitions, --max-partitions)"
            )));
        }
        Ok(())
    }

    /// Every rule a new topic `name` with `config` must pass, in the order the errors are
    /// reported: the name (`InvalidTopic`), the config (`InvalidPartitions`,
    /// `InvalidReplicationFactor`, `InvalidConfig`), that no topic has the name
    /// (`TopicAlreadyExists`), and the broker's `max_partitions` budget (`InvalidPartitions`).
    /// CreateTopics with `validate_only` runs this and nothing else.
    pub(crate) fn admit_topic(&self, name: &str, config: &TopicConfig) -> Result<Admission<'_>> {
        validate_topic_name(name)?;
        config.validate()?;
        let lock = self.admission_lock()?;
        if self.topic(name).is_ok() {
            return Err(Error::TopicAlreadyExists(name.to_string()));
        }
        self.check_partition_budget(config.num_partitions)?;
        Ok(Admission { _lock: lock })
    }

    /// Every rule growing topic `name` to `total` partitions must pass: the topic exists
    /// (`UnknownTopicOrPartition`), `total` is more than it has and at most the per-topic
    /// limit, and the added partitions fit the broker's `max_partitions` budget (all
    /// `InvalidPartitions`). Returns the topic and its current partition count, which stay
    /// so while the admission is held. CreatePartitions with `validate_only` runs this and
    /// nothing else.
    pub(crate) fn admit_partitions(
        &self,
        name: &str,
        total: u32,
    ) -> Result<(Admission<'_>, Arc<Topic>, u32)> {
        let lock = self.admission_lock()?;
        let topic = self.topic(name)?;
        let current = topic
            .meta
            .read()
            .map_err(|_| Error::Metadata("topic lock poisoned".into()))?
            .config
            .num_partitions;
        if total <= current {
            return Err(Error::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count {total} must be larger"
            )));
        }
        if total > PARTITIONS_PER_TOPIC_MAX {
            return Err(Error::InvalidPartitions(format!(
                "{total} partitions is more than the limit of {PARTITIONS_PER_TOPIC_MAX} per topic"
            )));
        }
        self.check_partition_budget(total - current)?;
        Ok((Admission { _lock: lock }, topic, current))
    }

    /// Total partitions of all topics.
    pub(crate) fn total_partitions(&self) -> usize {
        self.inner
            .topics
            .read()
            .map(|t| t.values().map(|t| t.partition_count()).sum())
            .unwrap_or(0)
    }

    /// Creates a topic; `None` uses the broker's default topic config. A given config's
    /// settings that differ from `TopicConfig::default()` (and its `overrides`) are set on the
    /// topic; the rest follows the broker's defaults, dynamic ones included. Refused, with
    /// nothing created, for a bad name (`InvalidTopic`), an invalid config
    /// (`InvalidPartitions`, `InvalidReplicationFactor`, `InvalidConfig`), a taken name
    /// (`TopicAlreadyExists`), or partitions beyond the broker's `max_partitions`
    /// (`InvalidPartitions`).
    pub fn create_topic(&self, name: &str, config: Option<TopicConfig>) -> Result<()> {
        validate_topic_name(name)?;
        let config = self.new_topic_config(config)?;
        let _admitted = self.admit_topic(name, &config)?;
        let mut topics = self.topics_write()?;
        let meta = TopicMeta {
            name: name.to_string(),
            id: topic::new_topic_id(),
            config,
        };
        let (name, topic) = open_topic(&self.inner.config, meta.clone(), true, now_ms())?;
        self.store_lock()?
            .append(&TopicRecord::Upsert(meta), true)?;
        log::info!(
            "created topic {name} ({} partitions)",
            topic.partition_count()
        );
        topics.insert(name, topic);
        Ok(())
    }

    /// Creates the topic with defaults if it does not exist and auto-creation is on.
    /// Returns whether the topic exists afterwards.
    pub(crate) fn ensure_topic(&self, name: &str) -> Result<bool> {
        if self.topic(name).is_ok() {
            return Ok(true);
        }
        if !self.inner.config.auto_create_topics {
            return Ok(false);
        }
        match self.create_topic(name, None) {
            Ok(()) | Err(Error::TopicAlreadyExists(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic: its record, its partitions' directories and its committed offsets.
    /// `UnknownTopicOrPartition` if there is no such topic.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = {
            // Taken so that no admitted growth of this topic is under way (it would write the
            // topic's record again after its deletion record).
            let _admission = self.admission_lock()?;
            let mut topics = self.topics_write()?;
            let topic = topics
                .remove(name)
                .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_string()))?;
            self.store_lock()?.append(
                &TopicRecord::Delete {
                    name: name.to_string(),
                },
                true,
            )?;
            topic
        };
        let dirs: Vec<PathBuf> = topic
            .partitions
            .read()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.log().ok().map(|l| l.dir().to_path_buf()))
                    .collect()
            })
            .unwrap_or_default();
        for d in dirs {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                log::warn!("deleting {}: {e}", d.display());
            }
        }
        let _ = sync_dir(&self.inner.config.data_dir);
        self.inner.offsets.delete_topic(name)?;
        log::info!("deleted topic {name}");
        Ok(())
    }

    /// Grows a topic to `total` partitions (Kafka's CreatePartitions). Refused, with nothing
    /// created, for an unknown topic (`UnknownTopicOrPartition`), or (`InvalidPartitions`) a
    /// `total` not above the current count, above the per-topic limit, or beyond the broker's
    /// `max_partitions`.
    pub fn create_partitions(&self, name: &str, total: u32) -> Result<()> {
        let (_admitted, topic, current) = self.admit_partitions(name, total)?;
        let mut meta = topic
            .meta
            .write()
            .map_err(|_| Error::Metadata("topic lock poisoned".into()))?;
        let mut new_meta = meta.clone();
        new_meta.config.num_partitions = total;
        let settings = PartitionSettings::of(&new_meta.config, self.inner.config.fsync);
        let log_config = new_meta
            .config
            .log_config(self.inner.config.fsync, self.inner.config.log_io);
        let mut new_parts = Vec::new();
        for i in current..total {
            let dir = partition_dir(&self.inner.config, name, i as i32);
            let log = PartitionLog::open(&dir, log_config.clone(), true, now_ms())?;
            new_parts.push(Arc::new(Partition::new(
                name.to_string(),
                i as i32,
                settings,
                log,
            )));
        }
        self.store_lock()?
            .append(&TopicRecord::Upsert(new_meta.clone()), true)?;
        *meta = new_meta;
        if let Ok(mut parts) = topic.partitions.write() {
            parts.extend(new_parts);
        }
        Ok(())
    }
    /// Names of all topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The topic's id, config and each partition's leader and offsets.
    pub fn describe(&self, name: &str) -> Result<TopicDescription> {
        let topic = self.topic(name)?;
        let meta = topic
            .meta
            .read()
            .map_err(|_| Error::Metadata("topic lock poisoned".into()))?
            .clone();
        let parts = topic
            .partitions
            .read()
            .map_err(|_| Error::Metadata("topic lock poisoned".into()))?
            .clone();
        let mut partitions = Vec::with_capacity(parts.len());
        for p in parts {
            let o = p.log()?.offsets();
            partitions.push(PartitionInfo {
                partition: p.index,
                leader: self.node_id(),
                log_start_offset: o.log_start_offset,
                high_watermark: o.high_watermark,
                log_end_offset: o.log_end_offset,
            });
        }
        Ok(TopicDescription {
            name: meta.name,
            id: meta.id,
            config: meta.config,
            partitions,
        })
    }

    /// Looks a topic up by its id (Fetch v13+ and Metadata v10+ name topics by id).
    pub(crate) fn topic_name_by_id(&self, id: &[u8; 16]) -> Option<String> {
        let topics = self.inner.topics.read().ok()?;
        topics
            .values()
            .find(|t| &t.id() == id)
            .and_then(|t| t.meta.read().ok().map(|m| m.name.clone()))
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self, name: &str) -> Result<usize> {
        Ok(self.topic(name)?.partition_count())
    }
}
