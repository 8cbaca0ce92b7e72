//! The aborted transactions the cleaner discards, as Kafka's cleaner does: a transactional data
//! batch inside an aborted transaction's range (its producer, `[first offset, abort marker]`)
//! is neither mapped nor copied. Control batches are always kept, and so are the `.txnindex`
//! entries (carried into the cleaned segment), so a reader's view of what was aborted does not
//! change; only records no read_committed reader could return disappear.
//!
//! The cleaner reads only below the last stable offset, where every transaction is decided
//! and every abort has its entry, so the ranges here are complete for what it reads.

use std::collections::HashMap;

use crate::storage::batch::BatchHeader;
use crate::storage::txn_index::AbortedEntry;

/// Aborted ranges per producer, each list sorted by offset (a producer's transactions in one
/// partition never overlap).
#[derive(Debug, Clone, Default)]
pub struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    /// From `entries` in offset order (the segments' `.txnindex` entries, oldest first).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a AbortedEntry>) -> AbortedRanges {
        let mut map: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for e in entries {
            map.entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        for ranges in map.values_mut() {
            ranges.sort_unstable();
        }
        AbortedRanges(map)
    }

    /// Whether `h` is data of an aborted transaction.
    pub fn is_aborted(&self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() {
            return false;
        }
        let Some(ranges) = self.0.get(&h.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|&(_, last)| last < h.base_offset);
        ranges
            .get(i)
            .is_some_and(|&(first, _)| first <= h.base_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::make_idempotent_batch;

    fn header(pid: i64, base: i64, txn: bool) -> BatchHeader {
        let mut b = make_idempotent_batch(pid, 0, 0, 0);
        if txn {
            b[22] |= 0x10;
        }
        crate::storage::batch::set_base_offset(&mut b, base);
        BatchHeader::parse(&b).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_transactional_data_inside_an_aborted_range_is_aborted() {
        let entry = |pid, first, last| AbortedEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        };
        let r = AbortedRanges::new(&[entry(1, 10, 20), entry(1, 30, 40), entry(2, 0, 5)]);
        assert!(r.is_aborted(&header(1, 10, true)));
        assert!(r.is_aborted(&header(1, 35, true)));
        assert!(!r.is_aborted(&header(1, 25, true)), "between two aborts");
        assert!(!r.is_aborted(&header(1, 15, false)), "not transactional");
        assert!(!r.is_aborted(&header(3, 15, true)), "another producer");
        assert!(!r.is_aborted(&header(2, 6, true)));
    }
}
