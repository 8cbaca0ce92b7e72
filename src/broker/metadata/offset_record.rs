//! `__consumer_offsets.meta` records: the offset store's `OffsetRecord` and its private
//! on-disk forms. Plain records (commit, deletes) are written as version 1, so a file from a
//! broker that never ran a transaction still opens in a build before version 2; the
//! transactional records (TxnOffsetCommit's pending offsets and their end) are version 2.
//! Byte layouts: `broker::metadata`'s docs.

use serde::{Deserialize, Serialize};

use super::record_log::MetaRecord;
use super::{decode_body, encode_versioned, legacy};
use crate::types::CommittedOffset;

/// The header's file-kind byte of `__consumer_offsets.meta`.
pub(crate) const OFFSETS_FILE_KIND: u8 = 2;
/// Version byte of the plain offset records (`OffsetRecordV1`).
const OFFSET_RECORD_V1: u8 = 1;
/// Version byte of the transactional offset records (`OffsetRecordV2`).
const OFFSET_RECORD_V2: u8 = 2;

/// One record of `__consumer_offsets.meta`, as the offset store replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OffsetRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: CommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    DeleteGroup {
        group: String,
    },
    /// A TxnOffsetCommit's offset, pending until the transaction of `producer_id` ends.
    TxnCommit {
        group: String,
        topic: String,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        value: CommittedOffset,
    },
    /// The end of `producer_id`'s transaction for `group`: its pending offsets become the
    /// group's committed offsets (`commit`) or are dropped.
    TxnEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

/// Version 1 on disk (bincode, see `metadata`'s docs for the bytes). Never change it: add an
/// `OffsetRecordV2` and a new version byte instead.
#[derive(Debug, Serialize, Deserialize)]
enum OffsetRecordV1 {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
        commit_timestamp_ms: i64,
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

/// Version 2 on disk: the transactional records (bincode as version 1). Never change it.
#[derive(Debug, Serialize, Deserialize)]
enum OffsetRecordV2 {
    TxnCommit {
        group: String,
        topic: String,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
        commit_timestamp_ms: i64,
    },
    TxnEnd {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

/// A record's on-disk form: version 1 for the plain records, 2 for the transactional ones.
enum OnDisk {
    V1(OffsetRecordV1),
    V2(OffsetRecordV2),
}

impl From<&OffsetRecord> for OnDisk {
    fn from(r: &OffsetRecord) -> Self {
        match r.clone() {
            OffsetRecord::Commit {
                group,
                topic,
                partition,
                value,
            } => OnDisk::V1(OffsetRecordV1::Commit {
                group,
                topic,
                partition,
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata: value.metadata,
                commit_timestamp_ms: value.commit_timestamp_ms,
            }),
            OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => OnDisk::V1(OffsetRecordV1::DeleteOffset {
                group,
                topic,
                partition,
            }),
            OffsetRecord::DeleteGroup { group } => {
                OnDisk::V1(OffsetRecordV1::DeleteGroup { group })
            }
            OffsetRecord::TxnCommit {
                group,
                topic,
                partition,
                producer_id,
                producer_epoch,
                value,
            } => OnDisk::V2(OffsetRecordV2::TxnCommit {
                group,
                topic,
                partition,
                producer_id,
                producer_epoch,
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata: value.metadata,
                commit_timestamp_ms: value.commit_timestamp_ms,
            }),
            OffsetRecord::TxnEnd {
                group,
                producer_id,
                commit,
            } => OnDisk::V2(OffsetRecordV2::TxnEnd {
                group,
                producer_id,
                commit,
            }),
        }
    }
}

impl From<OffsetRecordV2> for OffsetRecord {
    fn from(r: OffsetRecordV2) -> Self {
        match r {
            OffsetRecordV2::TxnCommit {
                group,
                topic,
                partition,
                producer_id,
                producer_epoch,
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
            } => OffsetRecord::TxnCommit {
                group,
                topic,
                partition,
                producer_id,
                producer_epoch,
                value: CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                },
            },
            OffsetRecordV2::TxnEnd {
                group,
                producer_id,
                commit,
            } => OffsetRecord::TxnEnd {
                group,
                producer_id,
                commit,
            },
        }
    }
}

impl From<OffsetRecordV1> for OffsetRecord {
    fn from(r: OffsetRecordV1) -> Self {
        match r {
            OffsetRecordV1::Commit {
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
            } => OffsetRecord::Commit {
                group,
                topic,
                partition,
                value: CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                },
            },
            OffsetRecordV1::DeleteOffset {
                group,
                topic,
                partition,
            } => OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            },
            OffsetRecordV1::DeleteGroup { group } => OffsetRecord::DeleteGroup { group },
        }
    }
}

impl MetaRecord for OffsetRecord {
    const FILE_KIND: u8 = OFFSETS_FILE_KIND;

    fn encode(&self) -> Result<Vec<u8>, String> {
        match OnDisk::from(self) {
            OnDisk::V1(r) => encode_versioned(OFFSET_RECORD_V1, &r),
            OnDisk::V2(r) => encode_versioned(OFFSET_RECORD_V2, &r),
        }
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&OFFSET_RECORD_V1, body)) => Ok(decode_body::<OffsetRecordV1>(body)?.into()),
            Some((&OFFSET_RECORD_V2, body)) => Ok(decode_body::<OffsetRecordV2>(body)?.into()),
            Some((v, _)) => Err(format!("unknown offset record version {v}")),
            None => Err("empty offset record".into()),
        }
    }

    fn decode_legacy(payload: &[u8]) -> Result<Self, String> {
        Ok(match legacy::decode_offset_record(payload)? {
            legacy::LegacyOffsetRecord::Commit {
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
            legacy::LegacyOffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => OffsetRecord::DeleteOffset {
                group,
                topic,
                partition,
            },
            legacy::LegacyOffsetRecord::DeleteGroup { group } => {
                OffsetRecord::DeleteGroup { group }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_largest_commit_record_fits_the_overhead_the_limits_assume() {
        use crate::limits::*;
        let largest = OffsetRecord::Commit {
            group: "g".repeat(GROUP_ID_BYTES_MAX),
            topic: "t".repeat(TOPIC_NAME_BYTES_MAX),
            partition: i32::MAX,
            value: CommittedOffset {
                offset: i64::MAX,
                leader_epoch: i32::MAX,
                metadata: Some("m".repeat(OFFSET_METADATA_BYTES_MAX)),
                commit_timestamp_ms: i64::MAX,
            },
        };
        let frame_bytes = 8 + largest.encode().expect("encode").len();
        let strings = GROUP_ID_BYTES_MAX + TOPIC_NAME_BYTES_MAX + OFFSET_METADATA_BYTES_MAX;
        assert!(
            frame_bytes <= strings + OFFSET_RECORD_OVERHEAD_BYTES,
            "{frame_bytes}"
        );
        assert!(frame_bytes < METADATA_RECORD_BYTES_MAX);
    }

    fn record() -> impl Strategy<Value = OffsetRecord> {
        let commit = (
            "[a-z]{0,12}",
            "[a-z.]{1,12}",
            any::<i32>(),
            any::<i64>(),
            any::<i32>(),
            proptest::option::of(".{0,20}"),
            any::<i64>(),
        )
            .prop_map(
                |(group, topic, partition, offset, leader_epoch, metadata, ts)| {
                    OffsetRecord::Commit {
                        group,
                        topic,
                        partition,
                        value: CommittedOffset {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms: ts,
                        },
                    }
                },
            );
        prop_oneof![
            commit,
            ("[a-z]{0,12}", "[a-z.]{1,12}", any::<i32>()).prop_map(|(group, topic, partition)| {
                OffsetRecord::DeleteOffset {
                    group,
                    topic,
                    partition,
                }
            }),
            "[a-z]{0,12}".prop_map(|group| OffsetRecord::DeleteGroup { group }),
        ]
    }

    fn txn_record() -> impl Strategy<Value = OffsetRecord> {
        let commit = (
            ("[a-z]{0,12}", "[a-z.]{1,12}", any::<i32>()),
            (any::<i64>(), any::<i16>()),
            (
                any::<i64>(),
                any::<i32>(),
                proptest::option::of(".{0,20}"),
                any::<i64>(),
            ),
        )
            .prop_map(
                |(
                    (group, topic, partition),
                    (producer_id, producer_epoch),
                    (offset, le, md, ts),
                )| {
                    OffsetRecord::TxnCommit {
                        group,
                        topic,
                        partition,
                        producer_id,
                        producer_epoch,
                        value: CommittedOffset {
                            offset,
                            leader_epoch: le,
                            metadata: md,
                            commit_timestamp_ms: ts,
                        },
                    }
                },
            );
        prop_oneof![
            commit,
            ("[a-z]{0,12}", any::<i64>(), any::<bool>()).prop_map(
                |(group, producer_id, commit)| {
                    OffsetRecord::TxnEnd {
                        group,
                        producer_id,
                        commit,
                    }
                }
            ),
        ]
    }

    /// The version 2 bytes, pinned: what `broker::metadata`'s docs say.
    #[test]
    fn txn_records_have_the_documented_bytes() {
        let end = OffsetRecord::TxnEnd {
            group: "g".into(),
            producer_id: 7,
            commit: true,
        };
        let mut want = vec![2, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'g'];
        want.extend_from_slice(&7i64.to_le_bytes());
        want.push(1);
        assert_eq!(end.encode().expect("encode"), want);
        let commit = OffsetRecord::TxnCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            producer_id: 7,
            producer_epoch: 2,
            value: CommittedOffset {
                offset: 9,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 5,
            },
        };
        let mut want = vec![2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'g'];
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b't']);
        want.extend_from_slice(&3i32.to_le_bytes());
        want.extend_from_slice(&7i64.to_le_bytes());
        want.extend_from_slice(&2i16.to_le_bytes());
        want.extend_from_slice(&9i64.to_le_bytes());
        want.extend_from_slice(&(-1i32).to_le_bytes());
        want.push(0);
        want.extend_from_slice(&5i64.to_le_bytes());
        assert_eq!(commit.encode().expect("encode"), want);
    }

    proptest! {
        #[test]
        fn txn_records_round_trip_as_version_2(r in txn_record()) {
            let payload = r.encode().map_err(TestCaseError::fail)?;
            prop_assert_eq!(payload[0], OFFSET_RECORD_V2);
            prop_assert_eq!(OffsetRecord::decode(&payload).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn offset_records_round_trip(r in record()) {
            let payload = r.encode().map_err(TestCaseError::fail)?;
            prop_assert_eq!(payload[0], OFFSET_RECORD_V1);
            prop_assert_eq!(OffsetRecord::decode(&payload).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn legacy_offset_records_decode_to_the_same_record(r in record()) {
            let legacy = legacy::encode_offset_record_for_test(&r);
            prop_assert_eq!(OffsetRecord::decode_legacy(&legacy).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn garbage_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = OffsetRecord::decode(&bytes);
            let _ = OffsetRecord::decode_legacy(&bytes);
        }
    }
}
