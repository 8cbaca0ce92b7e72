//! The log cleaner thread `thorstream-cleaner` (one, as Kafka's default
//! `log.cleaner.threads`): it runs one pass over every partition whose topic is compacted,
//! again at once if that pass cleaned something, else after `log_cleaner_backoff_ms` (`storage::cleaner::clean_log`, which decides from the
//! dirty ratio and compaction lags whether that log is cleaned now).
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

use super::{Broker, Inner, Topic};
use crate::storage::cleaner::{CleanOutcome, CleanerOptions, clean_log};
use crate::storage::now_ms;

/// The cleaner thread's body.
pub(super) fn run(inner: &Inner) {
    let backoff = Duration::from_millis(inner.config.log_cleaner_backoff_ms.max(10));
    let mut cleaned = 0;
    loop {
        // As Kafka's cleaner: back off only after a pass that found nothing to clean.
        if cleaned == 0 {
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
    let topics: Vec<Arc<Topic>> = inner
        .topics
        .read()
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    let options = CleanerOptions::default();
    let mut cleaned = 0;
    for t in topics {
        let parts = t.partitions.read().map(|p| p.clone()).unwrap_or_default();
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

impl Broker {
    /// Runs one cleaner pass now, on the caller's thread (tests wait for its result instead
    /// of the thread's next round). Returns how many logs were cleaned.
    pub(crate) fn clean_now(&self) -> usize {
        pass(&self.inner)
    }
}
