//! The idempotent-producer rules of `producer_state`, deterministically and by property.

use super::*;
use proptest::prelude::*;

fn append(
    t: &mut ProducerStateTable,
    pid: i64,
    epoch: i16,
    seq: i32,
    count: i32,
    off: i64,
) -> Result<SequenceCheck, ProducerError> {
    let c = t.check(pid, epoch, seq, count)?;
    if c == SequenceCheck::Append {
        t.record(pid, epoch, seq, count, off, 0);
    }
    Ok(c)
}

#[test]
fn in_order_batches_append_and_retries_return_original_offsets() {
    let mut t = ProducerStateTable::default();
    assert_eq!(append(&mut t, 7, 0, 0, 3, 100), Ok(SequenceCheck::Append));
    assert_eq!(append(&mut t, 7, 0, 3, 2, 103), Ok(SequenceCheck::Append));
    assert_eq!(
        append(&mut t, 7, 0, 0, 3, 999),
        Ok(SequenceCheck::Duplicate {
            first_offset: 100,
            last_offset: 102
        })
    );
    assert_eq!(
        append(&mut t, 7, 0, 3, 2, 999),
        Ok(SequenceCheck::Duplicate {
            first_offset: 103,
            last_offset: 104
        })
    );
}

#[test]
fn a_gap_is_out_of_order() {
    let mut t = ProducerStateTable::default();
    append(&mut t, 1, 0, 0, 1, 0).expect("first");
    assert_eq!(
        append(&mut t, 1, 0, 5, 1, 1),
        Err(ProducerError::OutOfOrder {
            producer_id: 1,
            expected: 1,
            got: 5
        })
    );
}

#[test]
fn stale_epoch_is_fenced_and_new_epoch_restarts_at_zero() {
    let mut t = ProducerStateTable::default();
    append(&mut t, 1, 3, 0, 1, 0).expect("first");
    assert!(matches!(
        append(&mut t, 1, 2, 1, 1, 1),
        Err(ProducerError::InvalidEpoch { .. })
    ));
    assert!(matches!(
        append(&mut t, 1, 4, 1, 1, 1),
        Err(ProducerError::OutOfOrder { .. })
    ));
    assert_eq!(append(&mut t, 1, 4, 0, 1, 1), Ok(SequenceCheck::Append));
}

#[test]
fn unknown_producer_must_start_at_zero() {
    let t = ProducerStateTable::default();
    assert!(matches!(
        t.check(9, 0, 4, 1),
        Err(ProducerError::UnknownProducer { .. })
    ));
}

#[test]
fn only_five_batches_are_retained() {
    let mut t = ProducerStateTable::default();
    for i in 0..7 {
        append(&mut t, 1, 0, i, 1, i64::from(i)).expect("append");
    }
    assert_eq!(t.get(1).map(|e| e.batches.len()), Some(BATCHES_RETAINED));
    // Sequence 0 fell out of the window: no longer recognised as a duplicate.
    assert!(t.check(1, 0, 0, 1).is_err());
    assert!(matches!(
        t.check(1, 0, 6, 1),
        Ok(SequenceCheck::Duplicate { .. })
    ));
}

#[test]
fn sequences_wrap_at_i32_max() {
    let mut t = ProducerStateTable::default();
    t.record(1, 0, i32::MAX - 1, 2, 10, 0);
    assert_eq!(t.check(1, 0, 0, 1), Ok(SequenceCheck::Append));
    assert_eq!(last_seq(i32::MAX, 3), 1);
}

#[test]
fn producers_idle_past_the_expiration_are_forgotten() {
    let mut t = ProducerStateTable::default();
    t.record(1, 0, 0, 1, 0, 1_000);
    t.record(2, 0, 0, 1, 1, 5_000);
    t.record(1, 0, 1, 1, 2, 2_000);
    assert_eq!(t.get(1).map(|e| e.last_timestamp), Some(2_000));
    assert_eq!(t.remove_expired(6_999, 5_000), 0);
    assert_eq!(t.remove_expired(7_000, 5_000), 1, "producer 1 idle for 5 s");
    assert!(t.get(1).is_none() && t.get(2).is_some());
    // A forgotten producer is unknown: only sequence 0 starts it again, as in Kafka.
    assert!(matches!(
        t.check(1, 0, 2, 1),
        Err(ProducerError::UnknownProducer { .. })
    ));
    assert_eq!(t.remove_expired(i64::MAX, 5_000), 1);
    assert!(t.is_empty());
}

#[test]
fn updates_see_their_own_batches_and_reach_the_table_only_when_applied() {
    let mut t = ProducerStateTable::default();
    t.record(1, 0, 0, 2, 0, 10);
    t.record(2, 0, 0, 1, 2, 10);
    let before = t.clone();
    let mut u = ProducerUpdates::default();
    assert_eq!(u.check(&t, 1, 0, 2, 3), Ok(SequenceCheck::Append));
    u.entry_mut(&t, 1).record(0, 2, 3, 3, 20);
    // The next batch of the same append follows the one recorded in the overlay …
    assert_eq!(u.check(&t, 1, 0, 5, 1), Ok(SequenceCheck::Append));
    assert!(matches!(
        u.check(&t, 1, 0, 2, 3),
        Ok(SequenceCheck::Duplicate {
            first_offset: 3,
            ..
        })
    ));
    // … while the table has not moved, and producer 2 is read through from it.
    assert_eq!(t, before);
    assert!(t.check(1, 0, 5, 1).is_err());
    assert!(matches!(
        u.check(&t, 2, 0, 0, 1),
        Ok(SequenceCheck::Duplicate { .. })
    ));
    t.apply(u);
    assert_eq!(t.check(1, 0, 5, 1), Ok(SequenceCheck::Append));
    assert_eq!(
        t.get(1).map(|e| (e.batches.len(), e.last_timestamp)),
        Some((2, 20))
    );
    assert_eq!(
        t.get(2),
        before.get(2),
        "untouched producers are kept as they were"
    );
}

proptest! {
    /// Any interleaving of sends and retries of the last five batches appends each batch
    /// exactly once, with dense offsets.
    #[test]
    fn retries_never_duplicate(counts in proptest::collection::vec(1i32..10, 1..30), retries in proptest::collection::vec((0usize..5, any::<bool>()), 0..60)) {
        let mut t = ProducerStateTable::default();
        let mut next_offset = 0i64;
        let mut sent: Vec<(i32, i32, i64)> = Vec::new();
        let mut seq = 0i32;
        let mut r = retries.iter();
        for c in counts {
            match t.check(1, 0, seq, c).expect("in order") {
                SequenceCheck::Append => { t.record(1, 0, seq, c, next_offset, 0); sent.push((seq, c, next_offset)); next_offset += i64::from(c); }
                SequenceCheck::Duplicate { .. } => prop_assert!(false, "fresh batch seen as duplicate"),
            }
            seq += c;
            if let Some(&(back, true)) = r.next()
                && back < sent.len().min(BATCHES_RETAINED)
            {
                let (s, c, off) = sent[sent.len() - 1 - back];
                prop_assert_eq!(t.check(1, 0, s, c), Ok(SequenceCheck::Duplicate { first_offset: off, last_offset: off + i64::from(c) - 1 }));
            }
        }
        let total: i64 = sent.iter().map(|(_, c, _)| i64::from(*c)).sum();
        prop_assert_eq!(next_offset, total);
    }
}
