//! Startup: the topic records of `__topics.meta` replayed into live topics, each partition's
//! log opened (recovered unless the last shutdown was clean), and partition directories no
//! live topic owns cleaned up.
//!
//! Invariants:
//! - a topic is opened iff its latest record is an upsert whose name and config validate; a
//!   record with an invalid name is dropped, one with an invalid config stops the start;
//! - after replay the record file holds only live upserts when anything was superseded;
//! - a partition directory holding records that no topic names is renamed aside
//!   (`.orphaned`), never deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::metadata::record_log::RecordLog;
use super::partition::{Partition, PartitionSettings};
use super::topic::{self, Topic, TopicMeta, validate_topic_name};
use super::{TOPICS_FILE, TopicRecord};
use crate::config::broker_dynamic::{DynamicBrokerConfigs, topic_defaults};
use crate::config::cleaner::check_broker_config;
use crate::config::{BrokerConfig, TopicConfig};
use crate::error::{Error, Result};
use crate::storage::{PartitionLog, now_ms, sync_dir};

/// Live topics by name, as `Inner::topics` holds them.
type TopicMap = BTreeMap<String, Arc<Topic>>;

/// Replays `__topics.meta` in `dir` and opens every live topic's partitions.
/// Also returns the broker's dynamic configs (the latest record of each scope; a scope naming
/// another node id is kept on disk but not applied), against which every topic's config is
/// resolved.
pub(super) fn load_topics(
    config: &BrokerConfig,
    dir: &Path,
    clean: bool,
) -> Result<(RecordLog<TopicRecord>, TopicMap, DynamicBrokerConfigs)> {
    let (mut topic_store, records) = RecordLog::<TopicRecord>::open(&dir.join(TOPICS_FILE))?;
    let mut metas: BTreeMap<String, TopicMeta> = BTreeMap::new();
    let mut scopes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    // Topics with a recorded deletion: their leftover directories may be removed.
    let mut deleted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let replayed = records.len();
    for r in records {
        match r {
            TopicRecord::Upsert(m) => {
                // The name becomes a directory name: never trust it, even from our own
                // (CRC-framed) file. A record no CreateTopics could have written is dropped.
                if let Err(e) = topic::validate_topic_name(&m.name) {
                    log::error!("{TOPICS_FILE}: ignoring a topic record: {e}");
                    continue;
                }
                metas.insert(m.name.clone(), m);
            }
            TopicRecord::Delete { name } => {
                metas.remove(&name);
                deleted.insert(name);
            }
            TopicRecord::BrokerConfigs { scope, configs } => {
                scopes.insert(scope, configs);
            }
        }
    }
    scopes.retain(|_, c| !c.is_empty());
    if replayed != metas.len() + scopes.len() {
        let live: Vec<TopicRecord> = scopes
            .iter()
            .map(|(scope, configs)| TopicRecord::BrokerConfigs {
                scope: scope.clone(),
                configs: configs.clone(),
            })
            .chain(metas.values().cloned().map(TopicRecord::Upsert))
            .collect();
        topic_store.rewrite(&live)?;
    }
    let dynamic = dynamic_configs(&scopes, config.node_id)?;
    let defaults = topic_defaults(&config.default_topic_config, &dynamic);
    let now = now_ms();
    let mut topics = BTreeMap::new();
    for mut meta in metas.into_values() {
        let c = &meta.config;
        meta.config = TopicConfig::resolve(
            &defaults,
            c.num_partitions,
            c.replication_factor,
            &c.overrides,
        )
        .map_err(|e| {
            Error::Metadata(format!(
                "{TOPICS_FILE}: topic {} has an invalid configuration: {e}",
                meta.name
            ))
        })?;
        // Every config was validated when it was written; one that no longer validates
        // (damage past the CRC, or a rule tightened since) stops the start with the topic
        // named, as Kafka does, rather than serving the topic with settings it never had.
        meta.config.validate().map_err(|e| {
            Error::Metadata(format!(
                "{TOPICS_FILE}: topic {} has an invalid configuration: {e}",
                meta.name
            ))
        })?;
        let t = open_topic(config, meta, clean, now)?;
        topics.insert(t.0, t.1);
    }
    remove_orphan_partition_dirs(dir, &topics, &deleted);
    Ok((topic_store, topics, dynamic))
}

/// The dynamic configs that apply to node `node_id`, each checked as AlterConfigs checked it;
/// one that no longer passes stops the start, naming it.
fn dynamic_configs(
    scopes: &BTreeMap<String, BTreeMap<String, String>>,
    node_id: i32,
) -> Result<DynamicBrokerConfigs> {
    let mut d = DynamicBrokerConfigs::default();
    for (scope, configs) in scopes {
        let target = if scope.is_empty() {
            &mut d.cluster
        } else if *scope == node_id.to_string() {
            &mut d.node
        } else {
            continue;
        };
        for (name, value) in configs {
            let v = check_broker_config(name, value).map_err(|e| {
                Error::Metadata(format!(
                    "{TOPICS_FILE}: dynamic broker config {name} ({scope:?}) is invalid: {e}"
                ))
            })?;
            target.insert(name.clone(), v);
        }
    }
    Ok(d)
}

pub(super) fn partition_dir(config: &BrokerConfig, topic: &str, partition: i32) -> PathBuf {
    config.data_dir.join(format!("{topic}-{partition}"))
}

pub(super) fn open_topic(
    config: &BrokerConfig,
    meta: TopicMeta,
    clean: bool,
    now: i64,
) -> Result<(String, Arc<Topic>)> {
    let settings = PartitionSettings::of(&meta.config, config.fsync);
    let log_config = meta.config.log_config(config.fsync, config.log_io);
    let mut parts = Vec::with_capacity(meta.config.num_partitions as usize);
    for i in 0..meta.config.num_partitions as i32 {
        let log = PartitionLog::open(
            &partition_dir(config, &meta.name, i),
            log_config.clone(),
            clean,
            now,
        )?;
        parts.push(Arc::new(Partition::new(
            meta.name.clone(),
            i,
            settings,
            log,
        )));
    }
    let name = meta.name.clone();
    Ok((
        name,
        Arc::new(Topic {
            meta: RwLock::new(meta),
            partitions: RwLock::new(parts),
        }),
    ))
}

/// Cleans up `<topic>-<n>` directories that belong to no live partition. A directory of a topic
/// whose deletion is recorded (deleted just before a crash), or holding no records (a
/// CreatePartitions cut short), is removed. Any other one holds data whose metadata was lost
/// (a damaged `__topics.meta`): it is renamed to `<topic>-<n>.orphaned[.k]`, out of the broker's
/// way (a new topic of that name starts empty) but kept for the operator, never deleted.
fn remove_orphan_partition_dirs(
    dir: &std::path::Path,
    topics: &BTreeMap<String, Arc<Topic>>,
    deleted: &std::collections::BTreeSet<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some((topic, part)) = name.rsplit_once('-') else {
            continue;
        };
        if part.is_empty()
            || !part.bytes().all(|b| b.is_ascii_digit())
            || validate_topic_name(topic).is_err()
        {
            continue;
        }
        let live = topics
            .get(topic)
            .is_some_and(|t| part.parse::<usize>().is_ok_and(|p| p < t.partition_count()));
        let path = e.path();
        if live || !path.is_dir() {
            continue;
        }
        if deleted.contains(topic) || !holds_records(&path) {
            log::warn!("removing orphaned partition directory {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let Some(aside) = (0..1000)
            .map(|k| match k {
                0 => dir.join(format!("{name}.orphaned")),
                k => dir.join(format!("{name}.orphaned.{k}")),
            })
            .find(|p| !p.exists())
        else {
            continue;
        };
        log::error!(
            "partition directory {} holds records but no topic metadata names it (damaged {}?); \
             keeping it as {}",
            path.display(),
            TOPICS_FILE,
            aside.display()
        );
        if let Err(err) = std::fs::rename(&path, &aside) {
            log::error!("renaming {}: {err}", path.display());
        }
    }
    let _ = sync_dir(dir);
}

/// Whether a partition directory has a non-empty segment file.
fn holds_records(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| n.ends_with(".log"))
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}
