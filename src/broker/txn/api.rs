//! The transaction coordinator as both faces call it (wire handlers, the embedded
//! transactional `Producer`): one `Broker` method per request, each answering with the
//! coordinator's typed reply once its record is durable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::effects::{ProducerIdAndEpoch, Reply, Step};
use super::job::Progress;
use super::service::{Executed, TxnService};
use super::state::TxnMetadata;
use crate::broker::Broker;
use crate::broker::wait::{WaitKey, Wake};
use crate::error::TxnError;
use crate::limits::{GROUP_ID_BYTES_MAX, TRANSACTIONAL_ID_BYTES_MAX, TXN_COMPLETION_WAIT_MS_MAX};
use crate::types::TopicPartition;

/// One coordinator request, as `Broker::txn_call` takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TxnReq<'a> {
    Init {
        id: &'a str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    },
    AddPartitions {
        id: &'a str,
        producer_id: i64,
        epoch: i16,
        partitions: &'a [TopicPartition],
    },
    AddOffsets {
        id: &'a str,
        producer_id: i64,
        epoch: i16,
        group: &'a str,
    },
    End {
        id: &'a str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
}

/// What `Broker::txn_call` did: answered, or wrote a record that waits for an fsync.
#[derive(Debug)]
pub(crate) enum TxnCall {
    Reply(Option<Reply>),
    Syncing(u64),
}

impl Broker {
    fn txn(&self) -> &TxnService {
        &self.inner.txn
    }

    /// The ids and group names a state-log record can hold (`u16` lengths).
    fn check_names(transactional_id: &str, group: Option<&str>) -> Result<(), TxnError> {
        let too_long = transactional_id.len() > TRANSACTIONAL_ID_BYTES_MAX
            || group.is_some_and(|g| g.len() > GROUP_ID_BYTES_MAX);
        if too_long {
            return Err(TxnError::InvalidRequest);
        }
        Ok(())
    }

    /// Runs a coordinator request without waiting: its reply, or the sequence number of its
    /// record waiting for the flusher's fsync (`txn_collect` once `WaitKey::TxnLog` fires).
    fn txn_start(&self, step: Step) -> TxnCall {
        match self.txn().execute(step) {
            Executed::Done(reply, markers) => {
                if let Some(m) = markers {
                    self.txn().start_markers(self, m);
                }
                TxnCall::Reply(reply)
            }
            Executed::Syncing(seq) => {
                self.mark_txn_log();
                TxnCall::Syncing(seq)
            }
        }
    }

    /// The flusher fsyncs the state log in its next round.
    pub(crate) fn mark_txn_log(&self) {
        self.inner.flusher.mark_txn_log();
    }

    /// The result of a request `txn_start` left `Syncing`, once applied (`None` before:
    /// read `WaitKey::TxnLog`'s epoch first and wait on it).
    pub(crate) fn txn_collect(&self, seq: u64) -> Option<Option<Reply>> {
        self.txn().collect(seq)
    }

    /// Runs a coordinator request, blocking the calling thread (the embedded API) until its
    /// record is durable.
    fn txn_request(&self, step: Step) -> Option<Reply> {
        let seq = match self.txn_start(step) {
            TxnCall::Reply(r) => return r,
            TxnCall::Syncing(seq) => seq,
        };
        let keys = [WaitKey::TxnLog];
        let deadline = Instant::now() + Duration::from_millis(TXN_COMPLETION_WAIT_MS_MAX);
        loop {
            let seen = self.waits().epochs(&keys);
            if let Some(r) = self.txn_collect(seq) {
                return r;
            }
            if Instant::now() >= deadline {
                // The flusher is stuck: the client retries (a retry of an applied transition
                // is answered as it was, or CONCURRENT_TRANSACTIONS until it is).
                return None;
            }
            if self.waits().wait(keys.to_vec(), &seen, deadline) == Wake::Shutdown {
                return None;
            }
        }
    }

    /// The non-blocking form of the four coordinator requests (the wire face parks on
    /// `TxnCall::Syncing`).
    pub(crate) fn txn_call(&self, req: TxnReq<'_>) -> Result<TxnCall, TxnError> {
        let step = self.txn_step(req)?;
        Ok(self.txn_start(step))
    }

    fn txn_step(&self, req: TxnReq<'_>) -> Result<Step, TxnError> {
        match req {
            TxnReq::Init {
                id,
                timeout_ms,
                expected,
            } => {
                Self::check_names(id, None)?;
                let mut allocate = || {
                    self.allocate_producer_id().map_err(|e| {
                        log::error!("allocating a producer id: {e}");
                        TxnError::CoordinatorNotAvailable
                    })
                };
                self.txn()
                    .with(|c, now| c.init_producer_id(id, timeout_ms, expected, now, &mut allocate))
            }
            TxnReq::AddPartitions {
                id,
                producer_id,
                epoch,
                partitions,
            } => self
                .txn()
                .with(|c, now| c.add_partitions(id, producer_id, epoch, partitions, now)),
            TxnReq::AddOffsets {
                id,
                producer_id,
                epoch,
                group,
            } => {
                Self::check_names(id, Some(group))?;
                self.txn()
                    .with(|c, now| c.add_offsets(id, producer_id, epoch, group, now))
            }
            TxnReq::End {
                id,
                producer_id,
                epoch,
                commit,
            } => self
                .txn()
                .with(|c, now| c.end_txn(id, producer_id, epoch, commit, now)),
        }
    }

    /// InitProducerId with a transactional id (see `TxnCoordinator::init_producer_id`).
    /// `CONCURRENT_TRANSACTIONS` while a previous transaction of the id is being completed
    /// (or was just aborted to fence its producer): wait for `txn_progress`, then retry.
    pub(crate) fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        let step = self.txn_step(TxnReq::Init {
            id: transactional_id,
            timeout_ms,
            expected,
        })?;
        match self.txn_request(step) {
            Some(Reply::InitProducerId(r)) => r,
            _ => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    /// AddPartitionsToTxn (the partitions are known to exist).
    pub(crate) fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), TxnError> {
        let step = self.txn_step(TxnReq::AddPartitions {
            id: transactional_id,
            producer_id,
            epoch,
            partitions,
        })?;
        match self.txn_request(step) {
            Some(Reply::AddPartitions(r)) => r,
            _ => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    /// AddOffsetsToTxn: `group`'s transactional offsets commit or abort with the transaction.
    pub(crate) fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), TxnError> {
        let step = self.txn_step(TxnReq::AddOffsets {
            id: transactional_id,
            producer_id,
            epoch,
            group,
        })?;
        match self.txn_request(step) {
            Some(Reply::AddOffsets(r)) => r,
            _ => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    /// EndTxn: `Ok` once the decision is durable; its markers are then being written
    /// (`txn_progress` tells when they are all durable and the transaction is complete).
    pub(crate) fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let step = self.txn_step(TxnReq::End {
            id: transactional_id,
            producer_id,
            epoch,
            commit,
        })?;
        match self.txn_request(step) {
            Some(Reply::EndTxn(r)) => r,
            _ => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    /// Moves the completion of `transactional_id`'s decision on; `Done` once complete.
    pub(crate) fn txn_progress(&self, transactional_id: &str) -> Progress {
        self.txn().progress(self, transactional_id)
    }

    /// Every transactional id's durable state (DescribeTransactions, ListTransactions).
    pub(crate) fn transactions(&self) -> BTreeMap<String, TxnMetadata> {
        self.txn().lock().map(|c| c.snapshot()).unwrap_or_default()
    }
}
