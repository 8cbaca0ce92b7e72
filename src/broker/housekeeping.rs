//! The housekeeping thread: every `housekeeping_interval_ms` it rolls aged segments, applies
//! retention, expires idle producer ids, writes recovery-point checkpoints, and expires the
//! committed offsets of long-empty groups.
//!
//! Invariants:
//! - checkpoint files are written and fsynced with the partition unlocked; only the
//!   bookkeeping before and after takes the partition lock;
//! - it exits promptly once `stop` is set (it waits on `stop_cv`, checked under its mutex).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Inner;
use crate::limits::{OFFSETS_EXPIRY_CHECK_INTERVAL_MS, PRODUCER_EXPIRY_CHECK_INTERVAL_MS};
use crate::storage::now_ms;

/// Housekeeping thread: segment age rolls, retention, recovery-point checkpoints.
pub(super) fn housekeeping(inner: &Inner) {
    let interval = Duration::from_millis(inner.config.housekeeping_interval_ms.max(10));
    loop {
        {
            let Ok(guard) = inner.stop_cv.0.lock() else {
                return;
            };
            if inner.stop.load(Ordering::Acquire) {
                return;
            }
            let _ = inner.stop_cv.1.wait_timeout(guard, interval);
        }
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        group_housekeeping(inner);
        let topics = inner.topics_snapshot();
        let now = now_ms();
        let expiration_ms =
            i64::try_from(inner.config.producer_id_expiration_ms).unwrap_or(i64::MAX);
        let expire_producers = now - inner.producers_expiry_ms.load(Ordering::Acquire)
            >= (expiration_ms / 10).clamp(1, PRODUCER_EXPIRY_CHECK_INTERVAL_MS);
        if expire_producers {
            inner.producers_expiry_ms.store(now, Ordering::Release);
        }
        for t in topics {
            let parts = t.partitions_snapshot();
            for p in parts {
                let job = {
                    let Ok(mut log) = p.log() else { continue };
                    if let Err(e) = log.roll_if_expired(now) {
                        log::error!("{}-{}: roll failed: {e}", p.topic, p.index);
                    }
                    if let Err(e) = log.apply_retention(now) {
                        log::error!("{}-{}: retention failed: {e}", p.topic, p.index);
                    }
                    if expire_producers {
                        let n = log.expire_producers(now, expiration_ms);
                        if n > 0 {
                            log::info!("{}-{}: expired {n} idle producer ids", p.topic, p.index);
                        }
                    }
                    log.checkpoint_job()
                };
                // Checkpoint files are written and fsynced with the partition unlocked: an
                // fsync can wait behind the journal, and appends and reads must not.
                let written = job.and_then(|job| match job {
                    Some(job) => job.write().map(|done| done.then_some(job)),
                    None => Ok(None),
                });
                match written {
                    Ok(Some(job)) => {
                        if let Ok(mut log) = p.log() {
                            log.checkpoint_written(&job);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("{}-{}: checkpoint failed: {e}", p.topic, p.index),
                }
            }
        }
    }
}

/// Expiry of the committed offsets of groups empty for longer than
/// `offsets_retention_minutes` (checked at most once a minute). Session and rebalance
/// timeouts are applied at their deadlines by the `thorstream-groups` thread
/// (`group/timer.rs`), not here.
fn group_housekeeping(inner: &Inner) {
    let retention_ms = i64::try_from(inner.config.offsets_retention_minutes)
        .unwrap_or(i64::MAX / 60_000)
        .saturating_mul(60_000);
    let check_interval_ms = retention_ms.clamp(0, OFFSETS_EXPIRY_CHECK_INTERVAL_MS);
    let now = now_ms();
    let last = inner.offsets_expiry_ms.load(Ordering::Acquire);
    if now - last >= check_interval_ms {
        inner.offsets_expiry_ms.store(now, Ordering::Release);
        inner.groups.expire_offsets(&inner.offsets, retention_ms);
    }
}
