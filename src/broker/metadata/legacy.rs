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

#[cfg(test)]
use super::offset_record::OffsetRecord;
#[cfg(test)]
use super::topic_record::TopicRecord;
#[cfg(test)]
use crate::config::FsyncPolicy;

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) enum LegacyFsyncPolicy {
    Always,
    Interval(u64),
    Never,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct LegacyTopicConfig {
    pub(super) num_partitions: u32,
    pub(super) replication_factor: u16,
    pub(super) fsync: Option<LegacyFsyncPolicy>,
    pub(super) segment_bytes: u64,
    pub(super) segment_ms: i64,
    pub(super) retention_ms: i64,
    pub(super) retention_bytes: i64,
    pub(super) max_message_bytes: u32,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct LegacyTopicMeta {
    pub(super) name: String,
    pub(super) id: [u8; 16],
    pub(super) config: LegacyTopicConfig,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) enum LegacyTopicRecord {
    Upsert(LegacyTopicMeta),
    Delete { name: String },
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct LegacyCommittedOffset {
    pub(super) offset: i64,
    pub(super) leader_epoch: i32,
    pub(super) metadata: Option<String>,
    pub(super) commit_timestamp_ms: i64,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) enum LegacyOffsetRecord {
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

/// Decodes a format-0 topic record into its frozen layout (`topic_record.rs` converts it).
pub(super) fn decode_topic_record(payload: &[u8]) -> Result<LegacyTopicRecord, String> {
    decode(payload)
}

/// Decodes a format-0 offset record into its frozen layout (`offset_record.rs` converts it).
pub(super) fn decode_offset_record(payload: &[u8]) -> Result<LegacyOffsetRecord, String> {
    decode(payload)
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
        TopicRecord::BrokerConfigs { .. } => panic!("broker config records have no legacy form"),
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
        OffsetRecord::TxnCommit { .. } | OffsetRecord::TxnEnd { .. } => {
            panic!("format 0 had no transactional offset records")
        }
    };
    bincode::serialize(&legacy).unwrap_or_else(|e| panic!("{e}"))
}
