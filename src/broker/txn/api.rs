//! The transaction coordinator as both faces call it (wire handlers, the embedded
//! transactional `Producer`): one `Broker` method per request, each answering with the
//! coordinator's typed reply once its record is durable.

use std::collections::BTreeMap;

use super::effects::{ProducerIdAndEpoch, Reply, Step};
use super::job::Progress;
use super::service::TxnService;
use super::state::TxnMetadata;
use crate::broker::Broker;
use crate::error::TxnError;
use crate::limits::{GROUP_ID_BYTES_MAX, TRANSACTIONAL_ID_BYTES_MAX};
use crate::types::TopicPartition;

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

    /// Runs a coordinator request: the step it asks for, then the markers of a decision.
    fn txn_request(&self, step: Step) -> Option<Reply> {
        let (reply, markers) = self.txn().execute(step);
        if let Some(m) = markers {
            self.txn().start_markers(self, m);
        }
        reply
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
        Self::check_names(transactional_id, None)?;
        let mut allocate = || {
            self.allocate_producer_id().map_err(|e| {
                log::error!("allocating a producer id: {e}");
                TxnError::CoordinatorNotAvailable
            })
        };
        let step = self.txn().with(|c, now| {
            c.init_producer_id(transactional_id, timeout_ms, expected, now, &mut allocate)
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
        let step = self.txn().with(|c, now| {
            c.add_partitions(transactional_id, producer_id, epoch, partitions, now)
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
        Self::check_names(transactional_id, Some(group))?;
        let step = self
            .txn()
            .with(|c, now| c.add_offsets(transactional_id, producer_id, epoch, group, now))?;
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
        let step = self
            .txn()
            .with(|c, now| c.end_txn(transactional_id, producer_id, epoch, commit, now))?;
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
