//! The `producer-state.v2` snapshot body: a private, versioned form of `ProducerStateTable`
//! (the public struct is never written as it is, so it can change without breaking snapshots).
//!
//! The file is a checkpoint (`checkpoint::write_bytes`): body, then CRC-32 of the body
//! (`u32` BE). Body, format 1:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..7 | magic `54 53 50 53 4E 41 50` (`"TSPSNAP"`) |
//! | 7 | `0x80 | version` (`0x82` for version 2, written now; `0x81` for version 1, still read) |
//! | 8.. | `SnapshotV2` (or `SnapshotV1`) in bincode 1, fixed-width little-endian integers, no trailing bytes |
//!
//! `SnapshotV1`: log end offset the snapshot was taken at (`i64`), then the producers sorted
//! by id: a `u64` count, then per producer its id (`i64`), epoch (`i16`), newest batch
//! timestamp (`i64`) and retained batches (`u64` count, then per batch first sequence `i32`,
//! last sequence `i32`, first offset `i64`, last offset `i64`, oldest first).
//!
//! `SnapshotV2` (issue 14, transactions): as `SnapshotV1`, each producer followed by the first
//! offset of its open transaction: `Option<i64>` in bincode, a `u8` tag (0 none, 1 some) then,
//! if some, the `i64`. A version 1 snapshot reads as one with no open transaction.
//!
//! Format 0 (written before this module): bincode of `(i64, ProducerStateTable)`, i.e. the
//! offset as `i64` LE then the producers as a hash map (`u64` count, then id `i64`, epoch
//! `i16`, batches (`u64` count + batches as above), timestamp `i64`). Its first 8 bytes are a
//! non-negative `i64` LE, so byte 7 is below `0x80`: it never looks like format 1. It is read
//! with a frozen copy of that layout; the next snapshot is written in format 1.
//!
//! The snapshot is a cache: a body that decodes in neither format (or names a version this
//! build does not know) is dropped with a warning and the state is rebuilt from the log.

use std::collections::{HashMap, VecDeque};

use bincode::Options;
use serde::{Deserialize, Serialize};

use super::producer_state::{BatchMeta, ProducerEntry, ProducerStateTable};

const MAGIC: [u8; 7] = *b"TSPSNAP";
const VERSION_FLAG: u8 = 0x80;
const SNAPSHOT_V1: u8 = 1;
const SNAPSHOT_V2: u8 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct BatchV1 {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerV1 {
    producer_id: i64,
    epoch: i16,
    last_timestamp: i64,
    batches: Vec<BatchV1>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV1 {
    at_offset: i64,
    producers: Vec<ProducerV1>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerV2 {
    producer_id: i64,
    epoch: i16,
    last_timestamp: i64,
    batches: Vec<BatchV1>,
    current_txn_first_offset: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV2 {
    at_offset: i64,
    producers: Vec<ProducerV2>,
}

/// Format 0, frozen (the layout of `ProducerEntry` / `BatchMeta` when it was written).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyEntry {
    epoch: i16,
    batches: VecDeque<LegacyBatch>,
    last_timestamp: i64,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct LegacyBatch {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
}

/// The snapshot body of `table` taken at log end offset `at_offset`.
pub(crate) fn encode(at_offset: i64, table: &ProducerStateTable) -> std::io::Result<Vec<u8>> {
    let mut producers: Vec<ProducerV2> = table
        .entries()
        .map(|(&producer_id, e)| ProducerV2 {
            producer_id,
            epoch: e.epoch,
            last_timestamp: e.last_timestamp,
            current_txn_first_offset: e.current_txn_first_offset,
            batches: e
                .batches
                .iter()
                .map(|b| BatchV1 {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                })
                .collect(),
        })
        .collect();
    producers.sort_by_key(|p| p.producer_id);
    let mut out = MAGIC.to_vec();
    out.push(VERSION_FLAG | SNAPSHOT_V2);
    options()
        .serialize_into(
            &mut out,
            &SnapshotV2 {
                at_offset,
                producers,
            },
        )
        .map_err(std::io::Error::other)?;
    Ok(out)
}

/// Decodes a snapshot body of either format: the offset it was taken at and the table. `None`
/// (with a warning naming `what`) when it does not decode: the caller rebuilds from the log.
/// Whether `body` is a snapshot in the format written now (older ones are read, then
/// rewritten).
pub(crate) fn is_current(body: &[u8]) -> bool {
    body.len() >= 8 && body[..7] == MAGIC && body[7] == VERSION_FLAG | SNAPSHOT_V2
}

pub(crate) fn decode(body: &[u8], what: &std::path::Path) -> Option<(i64, ProducerStateTable)> {
    let decoded = if body.len() >= 8 && body[..7] == MAGIC && body[7] & VERSION_FLAG != 0 {
        match body[7] & !VERSION_FLAG {
            SNAPSHOT_V1 => decode_v1(&body[8..]),
            SNAPSHOT_V2 => decode_v2(&body[8..]),
            v => Err(format!("unknown snapshot version {v}")),
        }
    } else {
        decode_legacy(body)
    };
    match decoded {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!(
                "{}: producer-state snapshot dropped ({e}); rebuilding it from the log",
                what.display()
            );
            None
        }
    }
}

fn batches(batches: Vec<BatchV1>) -> VecDeque<BatchMeta> {
    batches
        .into_iter()
        .map(|b| BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset: b.first_offset,
            last_offset: b.last_offset,
        })
        .collect()
}

fn decode_v2(body: &[u8]) -> Result<(i64, ProducerStateTable), String> {
    let s: SnapshotV2 = options()
        .reject_trailing_bytes()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| e.to_string())?;
    let entries = s.producers.into_iter().map(|p| {
        let entry = ProducerEntry {
            epoch: p.epoch,
            last_timestamp: p.last_timestamp,
            batches: batches(p.batches),
            current_txn_first_offset: p.current_txn_first_offset,
        };
        (p.producer_id, entry)
    });
    Ok((s.at_offset, ProducerStateTable::from_entries(entries)))
}

fn decode_v1(body: &[u8]) -> Result<(i64, ProducerStateTable), String> {
    let s: SnapshotV1 = options()
        .reject_trailing_bytes()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| e.to_string())?;
    let entries = s.producers.into_iter().map(|p| {
        let entry = ProducerEntry {
            epoch: p.epoch,
            last_timestamp: p.last_timestamp,
            batches: batches(p.batches),
            current_txn_first_offset: None,
        };
        (p.producer_id, entry)
    });
    Ok((s.at_offset, ProducerStateTable::from_entries(entries)))
}

fn decode_legacy(body: &[u8]) -> Result<(i64, ProducerStateTable), String> {
    let (at, producers): (i64, HashMap<i64, LegacyEntry>) = options()
        .allow_trailing_bytes()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| format!("legacy snapshot: {e}"))?;
    let entries = producers.into_iter().map(|(id, e)| {
        let entry = ProducerEntry {
            epoch: e.epoch,
            last_timestamp: e.last_timestamp,
            batches: e
                .batches
                .into_iter()
                .map(|b| BatchMeta {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                })
                .collect(),
            current_txn_first_offset: None,
        };
        (id, entry)
    });
    Ok((at, ProducerStateTable::from_entries(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Tables whose producers have open transactions only if `txns`.
    fn table_of(txns: bool) -> impl Strategy<Value = ProducerStateTable> {
        let batch = (any::<i32>(), any::<i32>(), any::<i64>(), any::<i64>()).prop_map(
            |(first_seq, last_seq, first_offset, last_offset)| BatchMeta {
                first_seq,
                last_seq,
                first_offset,
                last_offset,
            },
        );
        let entry = (
            any::<i16>(),
            proptest::collection::vec_deque(batch, 0..6),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(move |(epoch, batches, last_timestamp, txn)| ProducerEntry {
                epoch,
                batches,
                last_timestamp,
                current_txn_first_offset: txn.filter(|_| txns),
            });
        // Distinct open-transaction offsets (they are offsets in one log).
        proptest::collection::hash_map(any::<i64>(), entry, 0..8).prop_map(|m| {
            ProducerStateTable::from_entries(m.into_iter().enumerate().map(|(i, (id, mut e))| {
                e.current_txn_first_offset =
                    e.current_txn_first_offset.map(|f| f / 16 * 16 + i as i64);
                (id, e)
            }))
        })
    }

    fn table() -> impl Strategy<Value = ProducerStateTable> {
        table_of(true)
    }

    /// A version 1 body, as builds before transactions wrote it.
    fn v1_body(at: i64, table: &ProducerStateTable) -> Vec<u8> {
        let mut producers: Vec<ProducerV1> = table
            .entries()
            .map(|(&producer_id, e)| ProducerV1 {
                producer_id,
                epoch: e.epoch,
                last_timestamp: e.last_timestamp,
                batches: e
                    .batches
                    .iter()
                    .map(|b| BatchV1 {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                    })
                    .collect(),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        let mut out = MAGIC.to_vec();
        out.push(VERSION_FLAG | SNAPSHOT_V1);
        options()
            .serialize_into(
                &mut out,
                &SnapshotV1 {
                    at_offset: at,
                    producers,
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn legacy_body(at: i64, table: &ProducerStateTable) -> Vec<u8> {
        let map: HashMap<i64, LegacyEntry> = table
            .entries()
            .map(|(&id, e)| {
                let batches = e
                    .batches
                    .iter()
                    .map(|b| LegacyBatch {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                    })
                    .collect();
                let entry = LegacyEntry {
                    epoch: e.epoch,
                    batches,
                    last_timestamp: e.last_timestamp,
                };
                (id, entry)
            })
            .collect();
        bincode::serialize(&(at, map)).unwrap_or_else(|e| panic!("{e}"))
    }

    proptest! {
        #[test]
        fn snapshots_round_trip(at in any::<i64>(), t in table()) {
            let body = encode(at, &t).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decode(&body, std::path::Path::new("p")), Some((at, t)));
        }

        #[test]
        fn version_1_snapshots_are_read_with_no_open_transaction(at in any::<i64>(), t in table_of(false)) {
            let body = v1_body(at, &t);
            prop_assert_eq!(body[7], 0x81);
            prop_assert_eq!(decode(&body, std::path::Path::new("p")), Some((at, t)));
        }

        #[test]
        fn legacy_snapshots_are_read(at in 0..i64::MAX, t in table_of(false)) {
            let body = legacy_body(at, &t);
            prop_assert_eq!(decode(&body, std::path::Path::new("p")), Some((at, t)));
        }

        #[test]
        fn garbage_is_dropped_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, std::path::Path::new("p"));
        }
    }

    #[test]
    fn an_unknown_snapshot_version_is_dropped() {
        let mut body = encode(5, &ProducerStateTable::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body[7], VERSION_FLAG | SNAPSHOT_V2);
        body[7] = VERSION_FLAG | 3;
        assert_eq!(decode(&body, std::path::Path::new("p")), None);
    }
}
