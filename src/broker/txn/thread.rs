//! Recovery at start-up and the `thorstream-txn` thread.
//!
//! Recovery (`recover`, run by `Broker::new` before any client is served): the coordinator's
//! `recover` aborts every `Ongoing` transaction (no durable decision) with its producer
//! fenced and hands back every decided one; its records are written (fsynced unless the
//! policy is `never`) before any marker, then the markers are written. Then the orphan
//! sweep: a partition whose log holds an open transaction of a producer the coordinator does
//! not hold as `Ongoing`/`Prepare*` with that partition gets an abort marker (its
//! AddPartitionsToTxn record never reached the disk, or its id expired: it can never
//! commit). So after a kill -9 at any point, a durable decision completes and nothing else
//! stays open.
//!
//! The thread applies the coordinator's decisions over time (`tick`: a transaction past its
//! timeout is aborted and its producer fenced, an idle id expires) when they fall due, and
//! completes every decision nobody else waits for (`markers.rs`). It waits in the wait set
//! for the earliest deadline, an event on a job's partitions, or `WaitKey::TxnCoordinator`
//! (a new job or an earlier deadline); a failed marker write is retried after
//! `TXN_MARKER_RETRY_MS`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::effects::Step;
use super::job::Progress;
use super::service::{Executed, TxnService};
use crate::broker::Broker;
use crate::broker::wait::{INTERNAL_SCOPE, WaitKey, Wake};
use crate::error::Result;
use crate::limits::TXN_MARKER_RETRY_MS;
use crate::storage::now_ms;

/// How long the thread waits when nothing is due (a new job or deadline wakes it).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

impl TxnService {
    /// Completes or aborts what the state log left open, then sweeps orphaned transactions
    /// out of the partitions. Fails only if the recovery records cannot be written.
    pub(crate) fn recover(&self, broker: &Broker) -> Result<()> {
        let (records, markers) = match self.lock() {
            Ok(mut c) => c.recover(now_ms()),
            Err(_) => return Ok(()),
        };
        if !records.is_empty() {
            log::info!(
                "transaction coordinator: aborting {} transaction(s) left open by the last run",
                records.len()
            );
        }
        self.write_recovered(&records)?;
        for m in markers {
            self.start_markers(broker, m);
        }
        self.sweep_orphans(broker);
        Ok(())
    }

    /// Aborts every open transaction in a partition that the coordinator does not know.
    fn sweep_orphans(&self, broker: &Broker) {
        let Ok(c) = self.lock() else { return };
        let known: BTreeMap<(String, i32), Vec<i64>> = {
            let mut k: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
            for m in c.snapshot().values() {
                if m.state.is_idle() {
                    continue;
                }
                for tp in &m.partitions {
                    k.entry((tp.topic.clone(), tp.partition))
                        .or_default()
                        .push(m.producer_id);
                }
            }
            k
        };
        drop(c);
        for topic in broker.inner.topics_snapshot() {
            for p in topic.partitions_snapshot() {
                let open = match p.log() {
                    Ok(l) => l.ongoing_transactions(),
                    Err(_) => continue,
                };
                let held = known.get(&(p.topic.clone(), p.index));
                for t in open {
                    if held.is_some_and(|pids| pids.contains(&t.producer_id)) {
                        continue;
                    }
                    log::warn!(
                        "{}-{}: aborting an orphaned transaction of producer {} (epoch {}, from \
                         offset {}): the coordinator holds no record of it",
                        p.topic,
                        p.index,
                        t.producer_id,
                        t.producer_epoch,
                        t.first_offset
                    );
                    if let Err(e) = broker.append_marker(
                        &p.topic,
                        p.index,
                        t.producer_id,
                        t.producer_epoch,
                        false,
                    ) {
                        log::error!(
                            "{}-{}: aborting the orphaned transaction: {e}",
                            p.topic,
                            p.index
                        );
                    }
                }
            }
        }
    }

    /// Recovery's records, already applied by `recover`: written before any marker.
    fn write_recovered(&self, records: &[super::record::TxnRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.append_applied(records)
    }

    /// Applies passed deadlines; returns whether a record write failed.
    fn tick(&self, broker: &Broker) {
        let due = match self.with(|c, now| c.tick(now)) {
            Ok(d) => d,
            Err(_) => return,
        };
        for record in due {
            if let Some(m) = record.value.as_ref() {
                log::info!(
                    "transactional id {:?}: transaction timed out after {} ms; aborting it and \
                     fencing producer {} (epoch now {})",
                    record.transactional_id,
                    m.timeout_ms,
                    m.producer_id,
                    m.producer_epoch
                );
            }
            match self.execute(Step::Append(record)) {
                Executed::Done(_, Some(m)) => self.start_markers(broker, m),
                Executed::Done(_, None) => {}
                // The flusher applies it; its job reaches this thread (`register_pending`).
                Executed::Syncing(_) => broker.mark_txn_log(),
            }
        }
    }

    /// A time the coordinator or a job needs the thread at: wake it if it waits for later.
    pub(super) fn arm(&self, at_ms: i64) {
        let armed = self.armed_ms.fetch_min(at_ms, Ordering::AcqRel);
        if at_ms < armed {
            self.waits.event(&WaitKey::TxnCoordinator);
        }
    }

    /// The body of the `thorstream-txn` thread, until the wait set shuts down.
    pub(crate) fn run_thread(&self, broker: &Broker) {
        loop {
            self.armed_ms.store(i64::MAX, Ordering::Release);
            self.tick(broker);
            // Read before taking what `sync_log` left: a decision it makes durable after
            // this wakes the wait below.
            let coordinator_seen = self.waits.epochs(&[WaitKey::TxnCoordinator]);
            self.register_pending();
            let mut keys = vec![WaitKey::TxnCoordinator];
            keys.extend(self.job_keys());
            keys.sort();
            keys.dedup();
            let mut seen = self.waits.epochs(&keys);
            if let (Some(i), Some(&e)) = (
                keys.iter().position(|k| *k == WaitKey::TxnCoordinator),
                coordinator_seen.first(),
            ) && let Some(slot) = seen.get_mut(i)
            {
                *slot = e;
            }
            let mut retry = !self.complete_groups(broker);
            for id in self.job_ids() {
                retry |= self.progress(broker, &id) == Progress::Failed;
            }
            let now = now_ms();
            let mut next = self
                .lock()
                .ok()
                .and_then(|c| c.next_deadline_ms())
                .unwrap_or(i64::MAX);
            if retry {
                next = next.min(now.saturating_add(TXN_MARKER_RETRY_MS));
            }
            if let Some(due) = self.sync_if_due(now) {
                next = next.min(due);
            }
            let armed = self.armed_ms.fetch_min(next, Ordering::AcqRel).min(next);
            let deadline = if armed == i64::MAX {
                Instant::now() + IDLE_WAIT
            } else {
                let ms = armed
                    .saturating_sub(now)
                    .clamp(0, IDLE_WAIT.as_millis() as i64);
                Instant::now() + Duration::from_millis(ms as u64)
            };
            if self.waits.wait_in(INTERNAL_SCOPE, keys, &seen, deadline) == Wake::Shutdown {
                return;
            }
        }
    }
}
