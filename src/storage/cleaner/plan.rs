//! Which part of a log the cleaner may clean, and whether it should now: a pure function of
//! the segments' sizes and timestamps, the checkpointed clean point and `now`, as Kafka's
//! `LogCleanerManager.cleanableOffsets` / `LogToClean`.
//!
//! - The **first dirty offset** is the checkpointed clean point; one below the log start or
//!   past the log end is reset to the log start (and the checkpoint rewritten).
//! - The **first uncleanable offset** is the smallest of: the active segment's base, the
//!   log's `stable_offset` (high watermark, recovery point, and the segments the high
//!   watermark and the last fsync point sit in: nothing the flusher or `heal` may still touch),
//!   and, with `min_compaction_lag_ms > 0`, the base of the first dirty segment whose largest
//!   timestamp is within that lag of `now`. It is then moved down to the base of the segment
//!   holding it: only whole segments below it are cleaned.
//! - Dirty ratio = cleanable bytes / (clean bytes + cleanable bytes), where clean bytes are
//!   the segments overlapping `[log start, first dirty)` and cleanable bytes those overlapping
//!   `[first dirty, first uncleanable)`.
//! - The log should be cleaned when the ratio exceeds `min_cleanable_dirty_ratio`, or when the
//!   earliest first-batch timestamp of a dirty inactive segment is older than
//!   `now - max_compaction_lag_ms` and there are cleanable bytes (Kafka's "needCompactionNow").
//!
//! Invariant: `first_dirty ≤ first_uncleanable`, both within `[log start, log end]`.

/// What the planner needs of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub base_offset: i64,
    pub size_bytes: u64,
    /// Largest batch max-timestamp in it (`-1`: none).
    pub largest_timestamp: i64,
    /// The first batch's max timestamp (`-1`: empty or unknown).
    pub first_batch_timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanPolicy {
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

/// The state of one log as the planner sees it.
#[derive(Debug, Clone)]
pub struct LogSummary {
    /// Sorted by base offset, the last one active.
    pub segments: Vec<SegmentSummary>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Nothing at or above this may be cleaned (see the module doc).
    pub stable_offset: i64,
    /// The checkpointed clean point, if any.
    pub clean_point: Option<i64>,
}

/// The cleanable range of a log and how dirty it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    pub first_dirty_offset: i64,
    /// A segment base (or the first dirty offset when nothing is cleanable).
    pub first_uncleanable_offset: i64,
    pub clean_bytes: u64,
    pub cleanable_bytes: u64,
    pub dirty_ratio: f64,
    /// How far past `max_compaction_lag_ms` the oldest dirty segment is (0: not overdue).
    pub compaction_delay_ms: i64,
    /// The checkpointed clean point was invalid and was reset to the log start.
    pub reset_clean_point: bool,
}

impl Cleanable {
    /// Whether the cleaner should clean this log now.
    pub fn should_clean(&self, policy: &CleanPolicy) -> bool {
        self.cleanable_bytes > 0
            && (self.compaction_delay_ms > 0 || self.dirty_ratio > policy.min_cleanable_dirty_ratio)
    }
}

/// The segments overlapping `[from, to)`: index range into `segments`.
fn overlapping(segments: &[SegmentSummary], from: i64, to: i64) -> std::ops::Range<usize> {
    let start = segments
        .partition_point(|s| s.base_offset <= from)
        .saturating_sub(1);
    let end = segments.partition_point(|s| s.base_offset < to);
    start..end.max(start)
}

fn bytes(segments: &[SegmentSummary], range: std::ops::Range<usize>) -> u64 {
    segments[range].iter().map(|s| s.size_bytes).sum()
}

/// The cleanable range of `log` at `now_ms` under `policy`.
pub fn cleanable(log: &LogSummary, policy: &CleanPolicy, now_ms: i64) -> Cleanable {
    let segs = &log.segments;
    let (first_dirty, reset) = match log.clean_point {
        Some(p) if p >= log.log_start_offset && p <= log.log_end_offset => (p, false),
        Some(_) => (log.log_start_offset, true),
        None => (log.log_start_offset, false),
    };
    let active_base = segs.last().map_or(log.log_end_offset, |s| s.base_offset);
    let inactive = &segs[..segs.len().saturating_sub(1)];
    let dirty = &inactive[overlapping(inactive, first_dirty, i64::MAX)];
    let mut uncleanable = active_base.min(log.stable_offset);
    let min_lag = policy.min_compaction_lag_ms.max(0);
    if min_lag > 0
        && let Some(s) = dirty
            .iter()
            .find(|s| s.largest_timestamp > now_ms.saturating_sub(min_lag))
    {
        uncleanable = uncleanable.min(s.base_offset);
    }
    // Down to the base of the segment holding it: only whole segments are cleaned.
    let holding = segs.partition_point(|s| s.base_offset <= uncleanable);
    let first_uncleanable = match holding.checked_sub(1).map(|i| segs[i]) {
        Some(s) => s.base_offset,
        None => uncleanable,
    }
    .max(first_dirty);
    let clean_bytes = bytes(segs, overlapping(segs, log.log_start_offset, first_dirty));
    let cleanable_bytes = if first_uncleanable > first_dirty {
        bytes(segs, overlapping(segs, first_dirty, first_uncleanable))
    } else {
        0
    };
    let total = clean_bytes + cleanable_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        cleanable_bytes as f64 / total as f64
    };
    let max_lag = policy.max_compaction_lag_ms.max(0);
    let clean_until = now_ms.saturating_sub(max_lag);
    let earliest = dirty
        .iter()
        .map(|s| s.first_batch_timestamp)
        .filter(|&t| t > 0)
        .min()
        .unwrap_or(i64::MAX);
    let compaction_delay_ms = if earliest < clean_until {
        clean_until - earliest
    } else {
        0
    };
    Cleanable {
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: first_uncleanable,
        clean_bytes,
        cleanable_bytes,
        dirty_ratio,
        compaction_delay_ms,
        reset_clean_point: reset,
    }
}

/// Groups consecutive segments (indexes `0..end` of `sizes`, with their base offsets) into runs
/// whose total size stays within `segment_bytes` and whose offsets fit a segment's 32-bit
/// relative index; each run becomes one cleaned segment (Kafka's `groupSegmentsBySize`).
/// `next_base` is the base offset after the last segment.
pub fn group_segments(
    segments: &[(i64, u64)],
    next_base: i64,
    segment_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut size = segments[start].1;
        while end < segments.len() {
            let span_end = segments.get(end + 1).map_or(next_base, |s| s.0);
            let fits_offsets = span_end - segments[start].0 <= i64::from(i32::MAX);
            if size + segments[end].1 > segment_bytes || !fits_offsets {
                break;
            }
            size += segments[end].1;
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: CleanPolicy = CleanPolicy {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
    };

    fn seg(base: i64, size: u64, ts: i64) -> SegmentSummary {
        SegmentSummary {
            base_offset: base,
            size_bytes: size,
            largest_timestamp: ts,
            first_batch_timestamp: ts,
        }
    }

    /// Segments of 100 bytes at bases 0, 10, 20, 30 (active), timestamps 1000, 2000, 3000, 4000.
    fn log(clean_point: Option<i64>) -> LogSummary {
        LogSummary {
            segments: (0..4).map(|i| seg(i * 10, 100, (i + 1) * 1000)).collect(),
            log_start_offset: 0,
            log_end_offset: 35,
            stable_offset: 35,
            clean_point,
        }
    }

    #[test]
    fn never_cleaned_log_is_all_dirty_up_to_the_active_segment() {
        let c = cleanable(&log(None), &POLICY, 10_000);
        assert_eq!(c.first_dirty_offset, 0);
        assert_eq!(c.first_uncleanable_offset, 30);
        assert_eq!((c.clean_bytes, c.cleanable_bytes), (0, 300));
        assert!(c.should_clean(&POLICY));
    }

    #[test]
    fn dirty_ratio_counts_clean_and_dirty_segments() {
        let c = cleanable(&log(Some(20)), &POLICY, 10_000);
        assert_eq!((c.clean_bytes, c.cleanable_bytes), (200, 100));
        assert!((c.dirty_ratio - 1.0 / 3.0).abs() < 1e-9);
        assert!(!c.should_clean(&POLICY), "1/3 is under 0.5");
        let eager = CleanPolicy {
            min_cleanable_dirty_ratio: 0.3,
            ..POLICY
        };
        assert!(c.should_clean(&eager));
    }

    #[test]
    fn min_compaction_lag_stops_at_the_first_young_segment() {
        let lagged = CleanPolicy {
            min_compaction_lag_ms: 7_500,
            ..POLICY
        };
        // now - lag = 2500: the segment at 10 (largest ts 2000) is old enough, 20 (3000) is not.
        let c = cleanable(&log(None), &lagged, 10_000);
        assert_eq!(c.first_uncleanable_offset, 20);
        assert_eq!(c.cleanable_bytes, 200);
    }

    #[test]
    fn max_compaction_lag_forces_a_clean_under_the_ratio() {
        let forced = CleanPolicy {
            min_cleanable_dirty_ratio: 0.99,
            max_compaction_lag_ms: 5_000,
            ..POLICY
        };
        let c = cleanable(&log(Some(20)), &forced, 10_000);
        // The dirty segment at 20 has first timestamp 3000 < 10000 - 5000.
        assert_eq!(c.compaction_delay_ms, 2_000);
        assert!(c.should_clean(&forced));
        let later = cleanable(&log(Some(20)), &forced, 7_000);
        assert_eq!(later.compaction_delay_ms, 0);
        assert!(!later.should_clean(&forced));
    }

    #[test]
    fn stable_offset_bounds_the_range_to_whole_segments() {
        let mut l = log(None);
        l.stable_offset = 15;
        let c = cleanable(&l, &POLICY, 10_000);
        assert_eq!(c.first_uncleanable_offset, 10);
    }

    #[test]
    fn clean_point_outside_the_log_is_reset_to_the_start() {
        let mut l = log(Some(99));
        l.log_start_offset = 5;
        let c = cleanable(&l, &POLICY, 10_000);
        assert!(c.reset_clean_point);
        assert_eq!(c.first_dirty_offset, 5);
    }

    proptest! {
        #[test]
        fn range_invariants_hold(
            sizes in proptest::collection::vec((1i64..50, 0u64..1000, 0i64..10_000), 1..12),
            start_pick in any::<proptest::sample::Index>(),
            clean in proptest::option::of(0i64..600),
            stable in 0i64..700,
            now in 0i64..20_000,
            ratio in 0.0f64..1.0,
            min_lag in 0i64..5000,
            max_lag in 0i64..20_000,
        ) {
            let mut base = 0;
            let mut segments = Vec::new();
            for (len, size, ts) in &sizes {
                segments.push(seg(base, *size, *ts));
                base += len;
            }
            let leo = base;
            let start = segments[start_pick.index(segments.len())].base_offset;
            let l = LogSummary {
                segments: segments.clone(),
                log_start_offset: start,
                log_end_offset: leo,
                stable_offset: stable,
                clean_point: clean,
            };
            let policy = CleanPolicy { min_cleanable_dirty_ratio: ratio, min_compaction_lag_ms: min_lag, max_compaction_lag_ms: max_lag };
            let c = cleanable(&l, &policy, now);
            prop_assert!(c.first_dirty_offset >= start && c.first_dirty_offset <= leo);
            prop_assert!(c.first_uncleanable_offset >= c.first_dirty_offset);
            let active = segments[segments.len() - 1].base_offset;
            prop_assert!(c.first_uncleanable_offset <= active.max(c.first_dirty_offset));
            if c.first_uncleanable_offset > c.first_dirty_offset {
                prop_assert!(segments.iter().any(|s| s.base_offset == c.first_uncleanable_offset));
                prop_assert!(c.first_uncleanable_offset <= stable);
            }
            prop_assert!((0.0..=1.0).contains(&c.dirty_ratio));
        }

        #[test]
        fn groups_cover_every_segment_once_within_the_size(
            sizes in proptest::collection::vec(1u64..500, 1..20),
            segment_bytes in 1u64..1500,
        ) {
            let segs: Vec<(i64, u64)> = sizes.iter().enumerate().map(|(i, s)| (i as i64 * 10, *s)).collect();
            let groups = group_segments(&segs, segs.len() as i64 * 10, segment_bytes);
            let mut next = 0;
            for g in &groups {
                prop_assert_eq!(g.start, next);
                prop_assert!(!g.is_empty());
                let total: u64 = segs[g.clone()].iter().map(|s| s.1).sum();
                prop_assert!(g.len() == 1 || total <= segment_bytes);
                next = g.end;
            }
            prop_assert_eq!(next, segs.len());
        }
    }
}
