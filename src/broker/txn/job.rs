//! One decision being completed (`markers.rs` drives it): the markers written so far (their
//! offsets), whether the groups' offsets are done, and the checks of what is durable.

use crate::broker::Broker;
use crate::broker::wait::WaitKey;
use crate::error::Error;

use super::effects::MarkerWrite;

/// No marker offset: the partition is gone (deleted topic), nothing to wait for.
const SKIPPED: i64 = -1;

/// One decision being completed.
#[derive(Debug)]
pub(crate) struct MarkerJob {
    pub write: MarkerWrite,
    /// Per partition of `write`: the offset of its marker once written.
    offsets: Vec<Option<i64>>,
    groups_done: bool,
}

/// Where a decision's completion stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Complete (or there was nothing to complete).
    Done,
    /// Markers not durable yet: wait for an event on `keys` (epochs `seen`, read before the
    /// check).
    Waiting { keys: Vec<WaitKey>, seen: Vec<u64> },
    /// A write failed; the txn thread retries it.
    Failed,
}

impl MarkerJob {
    pub(crate) fn new(write: MarkerWrite) -> MarkerJob {
        let n = write.partitions.len();
        MarkerJob {
            write,
            offsets: vec![None; n],
            groups_done: false,
        }
    }

    pub(crate) fn keys(&self) -> Vec<WaitKey> {
        self.write
            .partitions
            .iter()
            .map(|tp| WaitKey::partition(&tp.topic, tp.partition))
            .collect()
    }

    /// Writes every marker and group completion not written yet; false if any failed.
    pub(super) fn write_missing(&mut self, broker: &Broker) -> bool {
        let w = &self.write;
        let mut ok = true;
        for (tp, slot) in w.partitions.iter().zip(self.offsets.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match broker.append_marker(
                &tp.topic,
                tp.partition,
                w.producer_id,
                w.producer_epoch,
                w.commit,
            ) {
                Ok(info) => *slot = Some(info.last_offset),
                Err(Error::UnknownTopicOrPartition(_)) => *slot = Some(SKIPPED),
                Err(e) => {
                    log::error!(
                        "transactional id {:?}: writing the {} marker to {tp}: {e} (retried)",
                        w.transactional_id,
                        if w.commit { "commit" } else { "abort" },
                    );
                    ok = false;
                }
            }
        }
        if !self.groups_done {
            let mut all = true;
            for g in &w.groups {
                if let Err(e) = broker.complete_txn_offsets(g, w.producer_id, w.commit) {
                    log::error!(
                        "transactional id {:?}: completing the offsets of group {g}: {e} (retried)",
                        w.transactional_id
                    );
                    all = false;
                }
            }
            self.groups_done = all;
            ok &= all;
        }
        ok
    }

    /// The partitions whose marker is written but not durable yet; `None` if one cannot
    /// become durable (its log is poisoned) or is not written.
    pub(super) fn not_durable(&self, broker: &Broker) -> Option<Vec<usize>> {
        let mut waiting = Vec::new();
        for (i, (tp, slot)) in self.write.partitions.iter().zip(&self.offsets).enumerate() {
            match *slot {
                None => return None,
                Some(SKIPPED) => {}
                Some(offset) => match broker.is_durable(&tp.topic, tp.partition, offset) {
                    Ok(true) | Err(Error::UnknownTopicOrPartition(_)) => {}
                    Ok(false) => waiting.push(i),
                    Err(e) => {
                        log::error!("{tp}: a transaction marker cannot become durable: {e}");
                        return None;
                    }
                },
            }
        }
        Some(waiting)
    }
}
