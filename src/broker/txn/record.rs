//! The transaction coordinator's state-log record: the whole metadata of one transactional id
//! after a transition (Kafka's `TransactionLogKey`/`TransactionLogValue`), or a tombstone when
//! the id expired. The latest record of an id is its state, so replaying the log in order
//! rebuilds the coordinator (`TxnCoordinator::replay`).
//!
//! # Byte layout, version 1
//!
//! The payload (framed by `metadata::record_log`, file kind 3) is, integers big-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | record version, `u8` = 1 |
//! | 2 + n | transactional id: `u16` byte count, then UTF-8 |
//! | 1 | `u8` 0 = tombstone (the id expired: nothing follows), 1 = metadata follows |
//! | 8 | producer id, `i64` |
//! | 2 | producer epoch, `i16` (-1 = none yet) |
//! | 2 | last producer epoch, `i16` (KIP-360 retry; -1 = none) |
//! | 8 | previous producer id, `i64` (-1 = none) |
//! | 4 | transaction timeout, ms, `i32` |
//! | 1 | state, `u8`: 0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort (`PrepareEpochFence` and `Dead` are never written) |
//! | 8 | transaction start, ms, `i64` (-1 = none) |
//! | 8 | last update, ms, `i64` |
//! | 4 | partition count, `u32`; then per partition: topic (`u16` byte count, UTF-8), partition `i32` |
//! | 4 | group count, `u32`; then per group: `u16` byte count, UTF-8 |
//!
//! Nothing may follow. A counted list is read element by element, so a corrupt count never
//! sizes an allocation. A new layout gets a new version byte; version 1 stays readable.
//!
//! # Recovery rule
//!
//! After replay, a transaction whose latest record is `PrepareCommit` or `PrepareAbort` has a
//! durable decision: it completes (its markers are written again, then `Complete*`). One whose
//! latest record is `Ongoing` had no decision: it is aborted, its producer fenced
//! (`TxnCoordinator::recover`).

use std::collections::BTreeSet;

use super::state::{TxnMetadata, TxnState};
use crate::broker::metadata::be_codec::{Reader, put_count, put_str};
use crate::broker::metadata::record_log::MetaRecord;
use crate::types::TopicPartition;

/// The header's file-kind byte of the coordinator's state log.
pub(crate) const TXN_FILE_KIND: u8 = 3;
const TXN_RECORD_V1: u8 = 1;

/// One record of the state log: `value` is `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnMetadata>,
}

fn state_byte(state: TxnState) -> Result<u8, String> {
    Ok(match state {
        TxnState::Empty => 0,
        TxnState::Ongoing => 1,
        TxnState::PrepareCommit => 2,
        TxnState::PrepareAbort => 3,
        TxnState::CompleteCommit => 4,
        TxnState::CompleteAbort => 5,
        s => return Err(format!("state {} is never written", s.name())),
    })
}

fn byte_state(b: u8) -> Result<TxnState, String> {
    Ok(match b {
        0 => TxnState::Empty,
        1 => TxnState::Ongoing,
        2 => TxnState::PrepareCommit,
        3 => TxnState::PrepareAbort,
        4 => TxnState::CompleteCommit,
        5 => TxnState::CompleteAbort,
        b => return Err(format!("unknown transaction state {b}")),
    })
}

impl TxnRecord {
    fn encode_v1(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![TXN_RECORD_V1];
        put_str(&mut out, &self.transactional_id)?;
        let Some(m) = &self.value else {
            out.push(0);
            return Ok(out);
        };
        out.push(1);
        out.extend_from_slice(&m.producer_id.to_be_bytes());
        out.extend_from_slice(&m.producer_epoch.to_be_bytes());
        out.extend_from_slice(&m.last_producer_epoch.to_be_bytes());
        out.extend_from_slice(&m.previous_producer_id.to_be_bytes());
        out.extend_from_slice(&m.timeout_ms.to_be_bytes());
        out.push(state_byte(m.state)?);
        out.extend_from_slice(&m.txn_start_ms.to_be_bytes());
        out.extend_from_slice(&m.last_update_ms.to_be_bytes());
        put_count(&mut out, m.partitions.len())?;
        for tp in &m.partitions {
            put_str(&mut out, &tp.topic)?;
            out.extend_from_slice(&tp.partition.to_be_bytes());
        }
        put_count(&mut out, m.groups.len())?;
        for g in &m.groups {
            put_str(&mut out, g)?;
        }
        Ok(out)
    }

    fn decode_v1(r: &mut Reader<'_>) -> Result<Self, String> {
        let transactional_id = r.string()?;
        let value = match r.u8()? {
            0 => None,
            1 => {
                let producer_id = r.i64()?;
                let producer_epoch = r.i16()?;
                let last_producer_epoch = r.i16()?;
                let previous_producer_id = r.i64()?;
                let timeout_ms = r.i32()?;
                let state = byte_state(r.u8()?)?;
                let txn_start_ms = r.i64()?;
                let last_update_ms = r.i64()?;
                let mut partitions = BTreeSet::new();
                for _ in 0..r.u32()? {
                    let topic = r.string()?;
                    partitions.insert(TopicPartition::new(topic, r.i32()?));
                }
                let mut groups = BTreeSet::new();
                for _ in 0..r.u32()? {
                    groups.insert(r.string()?);
                }
                Some(TxnMetadata {
                    producer_id,
                    producer_epoch,
                    last_producer_epoch,
                    previous_producer_id,
                    timeout_ms,
                    state,
                    partitions,
                    groups,
                    txn_start_ms,
                    last_update_ms,
                })
            }
            t => return Err(format!("unknown transaction record tag {t}")),
        };
        Ok(TxnRecord {
            transactional_id,
            value,
        })
    }
}

impl MetaRecord for TxnRecord {
    const FILE_KIND: u8 = TXN_FILE_KIND;

    fn encode(&self) -> Result<Vec<u8>, String> {
        self.encode_v1()
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(payload);
        let record = match r.u8() {
            Ok(TXN_RECORD_V1) => TxnRecord::decode_v1(&mut r)?,
            Ok(v) => return Err(format!("unknown transaction record version {v}")),
            Err(_) => return Err("empty transaction record".into()),
        };
        if r.remaining() != 0 {
            return Err(format!("{} trailing bytes", r.remaining()));
        }
        Ok(record)
    }

    fn decode_legacy(_payload: &[u8]) -> Result<Self, String> {
        Err("the transaction state log has no legacy format".into())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn metadata() -> impl Strategy<Value = TxnMetadata> {
        (
            (
                any::<i64>(),
                any::<i16>(),
                any::<i16>(),
                any::<i64>(),
                any::<i32>(),
            ),
            0u8..6,
            (any::<i64>(), any::<i64>()),
            prop::collection::btree_set(("[a-z.]{0,12}", any::<i32>()), 0..5),
            prop::collection::btree_set("\\PC{0,10}", 0..3),
        )
            .prop_map(|((pid, e, le, prev, t), s, (start, upd), parts, groups)| {
                TxnMetadata {
                    producer_id: pid,
                    producer_epoch: e,
                    last_producer_epoch: le,
                    previous_producer_id: prev,
                    timeout_ms: t,
                    state: byte_state(s).unwrap_or(TxnState::Empty),
                    partitions: parts
                        .into_iter()
                        .map(|(t, p)| TopicPartition::new(t, p))
                        .collect(),
                    groups,
                    txn_start_ms: start,
                    last_update_ms: upd,
                }
            })
    }

    proptest! {
        #[test]
        fn record_round_trips(id in "\\PC{0,20}", value in proptest::option::of(metadata())) {
            let rec = TxnRecord { transactional_id: id, value };
            let bytes = rec.encode().unwrap();
            prop_assert_eq!(TxnRecord::decode(&bytes).unwrap(), rec);
        }

        /// A cut or extended payload is refused, never misread.
        #[test]
        fn truncated_or_padded_is_refused(value in metadata(), cut in 1usize..60) {
            let rec = TxnRecord { transactional_id: "tx".into(), value: Some(value) };
            let bytes = rec.encode().unwrap();
            let cut = cut.min(bytes.len());
            prop_assert!(TxnRecord::decode(&bytes[..bytes.len() - cut]).is_err());
            let mut padded = bytes.clone();
            padded.push(0);
            prop_assert!(TxnRecord::decode(&padded).is_err());
        }
    }

    /// The documented bytes of a tombstone, and of a small record's head.
    #[test]
    fn bytes_are_as_documented() {
        let tomb = TxnRecord {
            transactional_id: "ab".into(),
            value: None,
        };
        assert_eq!(tomb.encode().unwrap(), vec![1, 0, 2, b'a', b'b', 0]);
        let mut m = TxnMetadata::new(5, 60_000, 9);
        m.producer_epoch = 3;
        m.state = TxnState::PrepareCommit;
        let bytes = TxnRecord {
            transactional_id: "ab".into(),
            value: Some(m),
        }
        .encode()
        .unwrap();
        assert_eq!(&bytes[..6], &[1, 0, 2, b'a', b'b', 1]);
        assert_eq!(&bytes[6..14], &5i64.to_be_bytes());
        assert_eq!(&bytes[14..16], &3i16.to_be_bytes());
        assert_eq!(bytes[30], 2, "state byte of PrepareCommit");
        assert_eq!(bytes.len(), 6 + 8 + 2 + 2 + 8 + 4 + 1 + 8 + 8 + 4 + 4);
    }

    #[test]
    fn unwritable_states_are_refused() {
        let mut m = TxnMetadata::new(5, 1, 0);
        m.state = TxnState::PrepareEpochFence;
        let rec = TxnRecord {
            transactional_id: "x".into(),
            value: Some(m),
        };
        assert!(rec.encode().is_err());
        assert!(TxnRecord::decode(&[9]).is_err());
        assert!(TxnRecord::decode(&[]).is_err());
    }
}
