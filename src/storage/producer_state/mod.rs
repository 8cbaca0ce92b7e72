//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges and offsets of its last `BATCHES_RETAINED` batches (Kafka keeps 5).
//!
//! A pure state machine: `check` decides what to do with an incoming batch without changing
//! anything, `record` is called after the batch was appended. An append of several batches
//! checks and records them in a `ProducerUpdates` overlay (a copy of only the entries that
//! append touches), which `apply` moves into the table once the batches are written: a failed
//! write leaves the table exactly as it was, without copying the whole table per append.
//! Rules (as Kafka's ProducerStateManager):
//! - a lower epoch than the one seen is fenced (INVALID_PRODUCER_EPOCH);
//! - a higher epoch starts over and must begin at sequence 0;
//! - a batch whose sequence range equals one of the retained batches is a retry: it is not
//!   appended again and the original offsets are returned;
//! - otherwise the first sequence must follow the last one (wrapping at i32::MAX), else
//!   OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - an unknown producer must start at sequence 0, else UNKNOWN_PRODUCER_ID.
//!
//! Expiry (Kafka's `producer.id.expiration.ms`, default one day): a producer whose newest batch
//! timestamp is older than the expiration is forgotten (`remove_expired`), so the table stays
//! bounded by the producers active in that window, not every producer id ever seen.
//!
//! Snapshots (`producer-state.v2`) store a private versioned form of this table
//! (`storage::producer_snapshot`), never these structs as they are.
//!
//! Transactions (`txn.rs`): each entry also holds the first offset of the producer's open
//! transaction in this partition, and the table an index of open transactions by first offset
//! (the last stable offset is its first key).
//!
//! Invariants: every retained batch has first_seq ≤ last_seq (modulo wrap) and consecutive
//! retained batches have consecutive sequences and increasing offsets; `open_txns` holds
//! exactly `(current_txn_first_offset, id)` of every entry that has one.

mod txn;
pub use self::txn::CompletedTxn;

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Retained batches per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_RETAINED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// Largest batch max-timestamp seen from this producer (Kafka's `lastTimestamp`).
    pub last_timestamp: i64,
    /// First offset of the producer's open transaction here (Kafka's `currentTxnFirstOffset`).
    pub current_txn_first_offset: Option<i64>,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate { first_offset: i64, last_offset: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {got} out of order, expected {expected}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("unknown producer {producer_id} starting at sequence {got}")]
    UnknownProducer { producer_id: i64, got: i32 },
}

/// The next sequence after `seq`, wrapping as Kafka does.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// Last sequence of a batch of `count` records starting at `first`.
pub fn last_seq(first: i32, count: i32) -> i32 {
    let last = i64::from(first) + i64::from(count) - 1;
    if last > i64::from(i32::MAX) {
        (last - i64::from(i32::MAX) - 1) as i32
    } else {
        last as i32
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset → producer id.
    open_txns: BTreeMap<i64, i64>,
}

impl ProducerStateTable {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Decides what to do with a batch; changes nothing.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
    ) -> Result<SequenceCheck, ProducerError> {
        check_entry(
            self.producers.get(&producer_id),
            producer_id,
            epoch,
            first_seq,
            count,
        )
    }

    /// Records an appended batch (also used to rebuild state from the log); `timestamp` is
    /// the batch's max timestamp.
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
        first_offset: i64,
        timestamp: i64,
    ) {
        self.producers.entry(producer_id).or_default().record(
            epoch,
            first_seq,
            count,
            first_offset,
            timestamp,
        );
    }

    /// Moves an append's updates into the table (after its batches were written).
    pub fn apply(&mut self, updates: ProducerUpdates) {
        for (id, entry) in updates.entries {
            let old = self
                .producers
                .get(&id)
                .and_then(|e| e.current_txn_first_offset);
            self.reindex(id, old, entry.current_txn_first_offset);
            self.producers.insert(id, entry);
        }
    }

    /// Forgets producers whose last timestamp is `expiration_ms` or more before `now_ms`,
    /// except those with an open transaction (as Kafka). Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Every producer's entry, in no particular order (for the snapshot encoding).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// A table holding exactly `entries` (for the snapshot decoding).
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        let producers: HashMap<i64, ProducerEntry> = entries.into_iter().collect();
        let open_txns = producers
            .iter()
            .filter_map(|(&id, e)| e.current_txn_first_offset.map(|first| (first, id)))
            .collect();
        ProducerStateTable {
            producers,
            open_txns,
        }
    }

    /// Drops everything at or above `offset` (after a truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
            if e.current_txn_first_offset.is_some_and(|f| f >= offset) {
                e.current_txn_first_offset = None;
            }
        }
        self.producers
            .retain(|_, e| !e.batches.is_empty() || e.current_txn_first_offset.is_some());
        let rebuilt = Self::from_entries(std::mem::take(&mut self.producers));
        *self = rebuilt;
    }
}

/// The rules of the module docs, for a producer whose entry is `entry` (`None`: unknown).
fn check_entry(
    entry: Option<&ProducerEntry>,
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    count: i32,
) -> Result<SequenceCheck, ProducerError> {
    let last = last_seq(first_seq, count);
    let Some(entry) = entry else {
        return if first_seq == 0 {
            Ok(SequenceCheck::Append)
        } else {
            Err(ProducerError::UnknownProducer {
                producer_id,
                got: first_seq,
            })
        };
    };
    if epoch < entry.epoch {
        return Err(ProducerError::InvalidEpoch {
            producer_id,
            epoch,
            current: entry.epoch,
        });
    }
    if epoch > entry.epoch {
        return if first_seq == 0 {
            Ok(SequenceCheck::Append)
        } else {
            Err(ProducerError::OutOfOrder {
                producer_id,
                expected: 0,
                got: first_seq,
            })
        };
    }
    if let Some(b) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == first_seq && b.last_seq == last)
    {
        return Ok(SequenceCheck::Duplicate {
            first_offset: b.first_offset,
            last_offset: b.last_offset,
        });
    }
    let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
    if first_seq != expected {
        return Err(ProducerError::OutOfOrder {
            producer_id,
            expected,
            got: first_seq,
        });
    }
    Ok(SequenceCheck::Append)
}

impl ProducerEntry {
    /// Records an appended batch of this producer (see `ProducerStateTable::record`).
    pub fn record(
        &mut self,
        epoch: i16,
        first_seq: i32,
        count: i32,
        first_offset: i64,
        timestamp: i64,
    ) {
        self.last_timestamp = self.last_timestamp.max(timestamp);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        self.batches.push_back(BatchMeta {
            first_seq,
            last_seq: last_seq(first_seq, count),
            first_offset,
            last_offset: first_offset + i64::from(count) - 1,
        });
        while self.batches.len() > BATCHES_RETAINED {
            self.batches.pop_front();
        }
    }
}

/// The entries one append changes, checked and recorded against the table but kept apart from
/// it until `ProducerStateTable::apply`. Holds only the producers the append touches (usually
/// one), each entry at most `BATCHES_RETAINED` batches.
#[derive(Debug, Default)]
pub struct ProducerUpdates {
    entries: Vec<(i64, ProducerEntry)>,
}

impl ProducerUpdates {
    fn entry<'a>(
        &'a self,
        table: &'a ProducerStateTable,
        producer_id: i64,
    ) -> Option<&'a ProducerEntry> {
        self.entries
            .iter()
            .find(|(id, _)| *id == producer_id)
            .map(|(_, e)| e)
            .or_else(|| table.get(producer_id))
    }

    /// `ProducerStateTable::check` as if the updates so far were applied to `table`.
    pub fn check(
        &self,
        table: &ProducerStateTable,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        count: i32,
    ) -> Result<SequenceCheck, ProducerError> {
        check_entry(
            self.entry(table, producer_id),
            producer_id,
            epoch,
            first_seq,
            count,
        )
    }

    /// The overlay's entry for `producer_id`, copied from `table` (or new) the first time this
    /// append touches the producer; record the append's batches into it.
    pub fn entry_mut(
        &mut self,
        table: &ProducerStateTable,
        producer_id: i64,
    ) -> &mut ProducerEntry {
        let i = match self.entries.iter().position(|(id, _)| *id == producer_id) {
            Some(i) => i,
            None => {
                let copied = table.get(producer_id).cloned().unwrap_or_default();
                self.entries.push((producer_id, copied));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
}

#[cfg(test)]
mod tests;
