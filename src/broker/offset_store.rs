//! Committed consumer-group offsets, persisted in `<data_dir>/__consumer_offsets.meta`.
//!
//! Invariant: the in-memory map equals the replay of the file's records; every commit a client
//! waits on is appended (and fsynced unless the broker runs with fsync `never`) before the map
//! changes and before the caller is answered. The file is compacted at startup to one record
//! per live (group, topic, partition). Its records are `metadata::offset_record::OffsetRecord`
//! (private, versioned; byte layout in `broker::metadata`), not this module's public
//! `CommittedOffset`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::metadata::offset_record::OffsetRecord;
use super::metadata::record_log::RecordLog;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

struct Inner {
    groups: BTreeMap<String, GroupOffsets>,
    file: RecordLog<OffsetRecord>,
}

pub struct OffsetStore {
    inner: Mutex<Inner>,
    sync: bool,
}

impl OffsetStore {
    pub fn open(path: &Path, sync: bool) -> Result<OffsetStore, Error> {
        let (mut file, records) = RecordLog::<OffsetRecord>::open(path)?;
        let mut groups: BTreeMap<String, GroupOffsets> = BTreeMap::new();
        let replayed = records.len();
        for r in records {
            apply(&mut groups, r);
        }
        let live: Vec<OffsetRecord> = groups
            .iter()
            .flat_map(|(g, offs)| {
                offs.iter().map(move |((t, p), v)| OffsetRecord::Commit {
                    group: g.clone(),
                    topic: t.clone(),
                    partition: *p,
                    value: v.clone(),
                })
            })
            .collect();
        if live.len() != replayed {
            file.rewrite(&live)?;
        }
        Ok(OffsetStore {
            inner: Mutex::new(Inner { groups, file }),
            sync,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::Metadata("offset store lock poisoned".into()))
    }

    pub fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        value: CommittedOffset,
    ) -> Result<(), Error> {
        let rec = OffsetRecord::Commit {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            value,
        };
        let mut inner = self.lock()?;
        inner.file.append(&rec, self.sync)?;
        apply(&mut inner.groups, rec);
        Ok(())
    }

    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let inner = self.lock().ok()?;
        inner
            .groups
            .get(group)?
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// All committed offsets of a group.
    pub fn group_offsets(&self, group: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.lock()
            .ok()
            .and_then(|inner| {
                inner
                    .groups
                    .get(group)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            })
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<String> {
        self.lock()
            .map(|i| i.groups.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn delete_group(&self, group: &str) -> Result<(), Error> {
        let rec = OffsetRecord::DeleteGroup {
            group: group.to_string(),
        };
        let mut inner = self.lock()?;
        inner.file.append(&rec, self.sync)?;
        apply(&mut inner.groups, rec);
        Ok(())
    }

    pub fn delete_offset(&self, group: &str, topic: &str, partition: i32) -> Result<(), Error> {
        let rec = OffsetRecord::DeleteOffset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        };
        let mut inner = self.lock()?;
        inner.file.append(&rec, self.sync)?;
        apply(&mut inner.groups, rec);
        Ok(())
    }

    /// Drops every offset of `topic` (after the topic is deleted).
    pub fn delete_topic(&self, topic: &str) -> Result<(), Error> {
        let doomed: Vec<(String, i32)> = {
            let inner = self.lock()?;
            inner
                .groups
                .iter()
                .flat_map(|(g, offs)| {
                    offs.keys()
                        .filter(|(t, _)| t == topic)
                        .map(move |(_, p)| (g.clone(), *p))
                })
                .collect()
        };
        for (g, p) in doomed {
            self.delete_offset(&g, topic, p)?;
        }
        Ok(())
    }
}

fn apply(groups: &mut BTreeMap<String, GroupOffsets>, rec: OffsetRecord) {
    match rec {
        OffsetRecord::Commit {
            group,
            topic,
            partition,
            value,
        } => {
            groups
                .entry(group)
                .or_default()
                .insert((topic, partition), value);
        }
        OffsetRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.remove(&(topic, partition));
                if g.is_empty() {
                    groups.remove(&group);
                }
            }
        }
        OffsetRecord::DeleteGroup { group } => {
            groups.remove(&group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(o: i64) -> CommittedOffset {
        CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp_ms: 0,
        }
    }

    #[test]
    fn commits_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("o.meta");
        {
            let s = OffsetStore::open(&path, true).expect("open");
            for i in 0..10 {
                s.commit("g", "t", 0, off(i)).expect("commit");
            }
            s.commit("g", "t", 1, off(5)).expect("commit");
            s.commit("h", "t", 0, off(1)).expect("commit");
            s.delete_group("h").expect("delete");
        }
        let s = OffsetStore::open(&path, true).expect("reopen");
        assert_eq!(s.fetch("g", "t", 0).map(|c| c.offset), Some(9));
        assert_eq!(s.fetch("g", "t", 1).map(|c| c.offset), Some(5));
        assert_eq!(s.fetch("h", "t", 0), None);
        assert_eq!(s.groups(), vec!["g".to_string()]);
    }
}
