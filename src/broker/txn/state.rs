//! One transactional id's state: its producer id and epoch, the transaction in progress and
//! Kafka's table of valid state transitions.
//!
//! Invariants (checked by `coordinator` before every transition, and by the tests):
//! - `state` only moves along `TxnState::valid_previous` (Kafka's `TransactionState` table);
//! - `partitions` and `groups` are empty in `Empty`, `CompleteCommit` and `CompleteAbort`:
//!   they are the transaction's, and it is over;
//! - `txn_start_ms` is `NO_TIMESTAMP` unless a transaction was begun (`Ongoing` and after);
//! - the epoch only grows while the producer id stays; a new producer id (epoch exhausted)
//!   starts again at 0 and names the old one in `previous_producer_id`.

use std::collections::BTreeSet;

use crate::types::TopicPartition;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub(crate) const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
/// No transaction started.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// A transaction's state (Kafka's `TransactionState`). `PrepareEpochFence` is never written:
/// it is the in-memory step between an `Ongoing` transaction and the `PrepareAbort` that
/// fences its producer (InitProducerId from a new instance, or the transaction timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    PrepareEpochFence,
    Dead,
}

impl TxnState {
    pub(crate) const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ];

    /// The states this one may be entered from (transaction protocol v1). KIP-890's v2 also
    /// lets `PrepareAbort` follow `Empty`, `CompleteCommit` and `CompleteAbort` (an abort with
    /// no transaction open still bumps the epoch); not allowed here until v2 is advertised.
    pub(crate) fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            PrepareEpochFence => &[Ongoing],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
        }
    }

    pub(crate) fn can_follow(self, from: TxnState) -> bool {
        self.valid_previous().contains(&from)
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    /// No transaction is open: a new one may begin, or the id may expire.
    pub(crate) fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// The decision is taken and durable; markers are (being) written.
    pub(crate) fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// What the coordinator knows of one transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by InitProducerId with an expected epoch (KIP-360), so
    /// that a retry of that InitProducerId gets the same answer instead of being fenced.
    pub last_producer_epoch: i16,
    /// The producer id before the last rotation (epoch exhausted); v2 also sets it on EndTxn.
    pub previous_producer_id: i64,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// Groups whose offsets are in the transaction (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    pub txn_start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// A new id before its first InitProducerId is answered (epoch `NO_PRODUCER_EPOCH`).
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            previous_producer_id: NO_PRODUCER_ID,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            txn_start_ms: NO_TIMESTAMP,
            last_update_ms: now_ms,
        }
    }

    /// Kafka rotates the producer id rather than reach `i16::MAX`, which the fence of a zombie
    /// would need as its next epoch.
    pub(crate) fn epoch_exhausted(&self) -> bool {
        self.producer_epoch >= i16::MAX - 1
    }

    /// The epoch a fence (timeout, new instance) moves to: one more, unless exhausted.
    pub(crate) fn fenced_epoch(&self) -> i16 {
        if self.producer_epoch < i16::MAX {
            self.producer_epoch + 1
        } else {
            self.producer_epoch
        }
    }

    /// This metadata moved to `state` at `now_ms`, with the transaction's contents cleared
    /// when it is over.
    pub(crate) fn moved_to(&self, state: TxnState, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = state;
        next.last_update_ms = now_ms;
        if state.is_idle() {
            next.partitions.clear();
            next.groups.clear();
        }
        if state == TxnState::Empty {
            next.txn_start_ms = NO_TIMESTAMP;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's table, written out pair by pair: a change in `valid_previous` shows here.
    #[test]
    fn transition_table_is_kafkas() {
        use TxnState::*;
        let allowed = [
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Ongoing, Ongoing),
            (Empty, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Ongoing, PrepareEpochFence),
            (Empty, Dead),
            (CompleteCommit, Dead),
            (CompleteAbort, Dead),
        ];
        for from in TxnState::ALL {
            for to in TxnState::ALL {
                assert_eq!(
                    to.can_follow(from),
                    allowed.contains(&(from, to)),
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
            }
        }
    }

    #[test]
    fn finishing_clears_the_transaction() {
        let mut m = TxnMetadata::new(7, 1000, 5);
        m.state = TxnState::PrepareCommit;
        m.partitions.insert(TopicPartition::new("t", 0));
        m.groups.insert("g".into());
        m.txn_start_ms = 5;
        let done = m.moved_to(TxnState::CompleteCommit, 9);
        assert!(done.partitions.is_empty() && done.groups.is_empty());
        assert_eq!((done.txn_start_ms, done.last_update_ms), (5, 9));
        assert_eq!(
            done.moved_to(TxnState::Empty, 10).txn_start_ms,
            NO_TIMESTAMP
        );
    }

    #[test]
    fn epoch_exhaustion_and_fence() {
        let mut m = TxnMetadata::new(7, 1000, 0);
        m.producer_epoch = i16::MAX - 2;
        assert!(!m.epoch_exhausted());
        assert_eq!(m.fenced_epoch(), i16::MAX - 1);
        m.producer_epoch = i16::MAX - 1;
        assert!(m.epoch_exhausted());
        assert_eq!(m.fenced_epoch(), i16::MAX);
        m.producer_epoch = i16::MAX;
        assert_eq!(m.fenced_epoch(), i16::MAX);
    }
}
