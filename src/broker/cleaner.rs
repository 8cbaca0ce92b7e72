//! The log cleaner thread `thorstream-cleaner` (one, as Kafka's default
//! `log.cleaner.threads`; not started when `log.cleaner.enable` is false): it runs one pass
//! over every partition whose topic is compacted, again at once if that pass cleaned
//! something, else after `log.cleaner.backoff.ms` (`storage::cleaner::clean_log`, which
//! decides from the dirty ratio and compaction lags whether that log is cleaned now).
//!
//! The cleaner settings (`config::cleaner`: backoff, map memory, I/O rate) are read again
//! before every wait and every pass, so a dynamic change (AlterConfigs on the broker, which
//! also wakes this thread) is in force from the next pass, without a restart.
//!
//! Invariants:
//! - the partition mutex is taken only inside `clean_log`, around its snapshot and each swap,
//!   never while segment bytes are read or written, so appends, reads and the flusher go on
//!   while a log is being cleaned;
//! - it stops promptly once `stop` is set: it waits on `stop_cv` (checked under its mutex)
//!   and checks `stop` between partitions, so `Broker::close` waits at most for the swap of
//!   the partition being cleaned; a pass cut short is simply redone by the next start (the
//!   swap protocol makes every interruption safe, see `storage::cleaner::swap`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Broker, Inner};
use crate::config::cleaner::{CleanerSettings, effective};
use crate::storage::cleaner::{CleanOutcome, CleanerOptions, clean_log};
use crate::storage::now_ms;

/// The cleaner thread's body.
pub(super) fn run(inner: &Inner) {
    let mut cleaned = 0;
    loop {
        // As Kafka's cleaner: back off only after a pass that found nothing to clean.
        if cleaned == 0 {
            let backoff = Duration::from_millis(settings(inner).backoff_ms.max(10));
            let Ok(guard) = inner.stop_cv.0.lock() else {
                return;
            };
            if inner.stop.load(Ordering::Acquire) {
                return;
            }
            let _ = inner.stop_cv.1.wait_timeout(guard, backoff);
        }
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        cleaned = pass(inner);
    }
}

/// One pass over every compacted partition; returns how many logs were cleaned.
fn pass(inner: &Inner) -> usize {
    let topics = inner.topics_snapshot();
    let s = settings(inner);
    let options = CleanerOptions {
        dedupe_buffer_bytes: s.dedupe_buffer_bytes,
        io_bytes_per_sec: s.io_max_bytes_per_sec,
        stop: Some(Arc::clone(&inner.stop)),
        ..CleanerOptions::default()
    };
    let mut cleaned = 0;
    for t in topics {
        let parts = t.partitions_snapshot();
        for p in parts {
            if inner.stop.load(Ordering::Acquire) {
                return cleaned;
            }
            match clean_log(p.log_mutex(), &options, now_ms()) {
                Ok(CleanOutcome::Cleaned(_)) => cleaned += 1,
                Ok(_) => {}
                Err(e) => log::error!("{}-{}: cleaning failed: {e}", p.topic, p.index),
            }
        }
    }
    cleaned
}

/// The cleaner settings in force now (static config and dynamic broker configs).
fn settings(inner: &Inner) -> CleanerSettings {
    match inner.dynamic.read() {
        Ok(d) => effective(&inner.config, &d),
        Err(poisoned) => effective(&inner.config, &poisoned.into_inner()),
    }
}

impl Broker {
    /// Runs one cleaner pass now, on the caller's thread (tests wait for its result instead
    /// of the thread's next round). Returns how many logs were cleaned.
    pub(crate) fn clean_now(&self) -> usize {
        pass(&self.inner)
    }
}
