//! One decision being completed (`markers.rs` drives it): the markers written so far (their
//! offsets), whether the groups' offsets are done, and the checks of what is durable.

use crate::broker::Broker;
use crate::broker::wait::WaitKey;
use crate::error::Error;

use super::effects::MarkerWrite;

/// No marker offset: the partition is gone (deleted topic) or has a newer epoch of the
/// producer; nothing to wait for.
const SKIPPED: i64 = -1;

/// One decision being completed.
#[derive(Debug)]
pub(crate) struct MarkerJob {
    pub write: MarkerWrite,
    /// Per partition of `write`: the offset of its marker once written.
    offsets: Vec<Option<i64>>,
    groups_done: bool,
}

/// A job's groups whose offsets are still to be completed.
#[derive(Debug, Clone)]
pub(crate) struct GroupsPending {
    pub groups: Vec<String>,
    pub producer_id: i64,
    pub commit: bool,
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
        let groups_done = write.groups.is_empty();
        MarkerJob {
            write,
            groups_done,
            offsets: vec![None; n],
        }
    }

    /// The groups whose offsets are still to be completed, if any.
    pub(crate) fn groups_pending(&self) -> Option<GroupsPending> {
        (!self.groups_done).then(|| GroupsPending {
            groups: self.write.groups.clone(),
            producer_id: self.write.producer_id,
            commit: self.write.commit,
        })
    }

    pub(crate) fn groups_done(&self) -> bool {
        self.groups_done
    }

    pub(crate) fn set_groups_done(&mut self) {
        self.groups_done = true;
    }

    pub(crate) fn keys(&self) -> Vec<WaitKey> {
        self.write
            .partitions
            .iter()
            .map(|tp| WaitKey::partition(&tp.topic, tp.partition))
            .collect()
    }

    /// Writes every marker not written yet; false if any failed. (The groups' offsets are the
    /// txn thread's: completing them blocks on the offsets file's fsync.)
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
                // The partition knows a newer epoch of this producer: no transaction of this
                // epoch can be open there (Kafka stops sending such markers too).
                Err(e @ Error::InvalidProducerEpoch(_)) => {
                    log::warn!(
                        "transactional id {:?}: no marker for {tp}: {e}",
                        w.transactional_id
                    );
                    *slot = Some(SKIPPED);
                }
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
