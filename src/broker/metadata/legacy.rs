//! The legacy (format 0) record layouts, frozen: what commit `839f29d` and earlier wrote,
//! bincode of the then-public `TopicRecord(TopicMeta { TopicConfig })` and `OffsetRecord`.
//!
//! These types are copies, not the live structs: the live ones may change, these must not.
//! They are only read (and written by tests, to make legacy files); a legacy file is rewritten
//! in the current format as soon as it is opened. Decoding options are the ones the old code
//! used: fixed-width little-endian integers, trailing bytes allowed, allocation bounded by the
//! payload length.

use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use super::offset_record::OffsetRecord;
use super::topic_record::TopicRecord;
use crate::broker::TopicMeta;
use crate::broker::offset_store::CommittedOffset;
use crate::config::{FsyncPolicy, TopicConfig};

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum LegacyFsyncPolicy {
    Always,
    Interval(u64),
    Never,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyTopicConfig {
    num_partitions: u32,
    replication_factor: u16,
    fsync: Option<LegacyFsyncPolicy>,
    segment_bytes: u64,
    segment_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
    max_message_bytes: u32,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyTopicMeta {
    name: String,
    id: [u8; 16],
    config: LegacyTopicConfig,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum LegacyTopicRecord {
    Upsert(LegacyTopicMeta),
    Delete { name: String },
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyCommittedOffset {
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    commit_timestamp_ms: i64,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum LegacyOffsetRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: LegacyCommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(payload.len() as u64)
        .deserialize::<T>(payload)
        .map_err(|e| format!("legacy record: {e}"))
}

pub(super) fn decode_topic_record(payload: &[u8]) -> Result<TopicRecord, String> {
    Ok(match decode::<LegacyTopicRecord>(payload)? {
        LegacyTopicRecord::Upsert(m) => {
            let c = m.config;
            TopicRecord::Upsert(TopicMeta {
                name: m.name,
                id: m.id,
                config: TopicConfig {
                    num_partitions: c.num_partitions,
                    replication_factor: c.replication_factor,
                    fsync: c.fsync.map(|f| match f {
                        LegacyFsyncPolicy::Always => FsyncPolicy::Always,
                        LegacyFsyncPolicy::Interval(ms) => FsyncPolicy::Interval(ms),
                        LegacyFsyncPolicy::Never => FsyncPolicy::Never,
                    }),
                    segment_bytes: c.segment_bytes,
                    segment_ms: c.segment_ms,
                    retention_ms: c.retention_ms,
                    retention_bytes: c.retention_bytes,
                    max_message_bytes: c.max_message_bytes,
                },
            })
        }
        LegacyTopicRecord::Delete { name } => TopicRecord::Delete { name },
    })
}

pub(super) fn decode_offset_record(payload: &[u8]) -> Result<OffsetRecord, String> {
    Ok(match decode::<LegacyOffsetRecord>(payload)? {
        LegacyOffsetRecord::Commit {
            group,
            topic,
            partition,
            value: v,
        } => OffsetRecord::Commit {
            group,
            topic,
            partition,
            value: CommittedOffset {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                commit_timestamp_ms: v.commit_timestamp_ms,
            },
        },
        LegacyOffsetRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => OffsetRecord::DeleteOffset {
            group,
            topic,
            partition,
        },
        LegacyOffsetRecord::DeleteGroup { group } => OffsetRecord::DeleteGroup { group },
    })
}

/// The legacy payload of `r`, as the old code wrote it (`bincode::serialize`).
#[cfg(test)]
pub(crate) fn encode_topic_record_for_test(r: &TopicRecord) -> Vec<u8> {
    let legacy = match r.clone() {
        TopicRecord::Upsert(m) => LegacyTopicRecord::Upsert(LegacyTopicMeta {
            name: m.name,
            id: m.id,
            config: LegacyTopicConfig {
                num_partitions: m.config.num_partitions,
                replication_factor: m.config.replication_factor,
                fsync: m.config.fsync.map(|f| match f {
                    FsyncPolicy::Always => LegacyFsyncPolicy::Always,
                    FsyncPolicy::Interval(ms) => LegacyFsyncPolicy::Interval(ms),
                    FsyncPolicy::Never => LegacyFsyncPolicy::Never,
                }),
                segment_bytes: m.config.segment_bytes,
                segment_ms: m.config.segment_ms,
                retention_ms: m.config.retention_ms,
                retention_bytes: m.config.retention_bytes,
                max_message_bytes: m.config.max_message_bytes,
            },
        }),
        TopicRecord::Delete { name } => LegacyTopicRecord::Delete { name },
    };
    bincode::serialize(&legacy).unwrap_or_else(|e| panic!("{e}"))
}

/// The legacy payload of `r`, as the old code wrote it (`bincode::serialize`).
#[cfg(test)]
pub(crate) fn encode_offset_record_for_test(r: &OffsetRecord) -> Vec<u8> {
    let legacy = match r.clone() {
        OffsetRecord::Commit {
            group,
            topic,
            partition,
            value: v,
        } => LegacyOffsetRecord::Commit {
            group,
            topic,
            partition,
            value: LegacyCommittedOffset {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                commit_timestamp_ms: v.commit_timestamp_ms,
            },
        },
        OffsetRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => LegacyOffsetRecord::DeleteOffset {
            group,
            topic,
            partition,
        },
        OffsetRecord::DeleteGroup { group } => LegacyOffsetRecord::DeleteGroup { group },
    };
    bincode::serialize(&legacy).unwrap_or_else(|e| panic!("{e}"))
}
