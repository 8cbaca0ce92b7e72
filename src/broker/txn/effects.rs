//! What the coordinator hands back to its shell: the typed replies, the step a request asks
//! for (answer now, or write a record first), the markers of a decision, and its config.

use super::record::TxnRecord;
use super::state::{TxnMetadata, TxnState};
use crate::error::TxnError;
use crate::types::TopicPartition;

/// Kafka's defaults: `transaction.max.timeout.ms` and `transactional.id.expiration.ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxnConfig {
    pub transaction_max_timeout_ms: i32,
    pub transactional_id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// The answer to one request, typed per API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    InitProducerId(Result<ProducerIdAndEpoch, TxnError>),
    AddPartitions(Result<(), TxnError>),
    AddOffsets(Result<(), TxnError>),
    EndTxn(Result<(), TxnError>),
}

impl Reply {
    pub(crate) fn with_error(&self, e: TxnError) -> Reply {
        match self {
            Reply::InitProducerId(_) => Reply::InitProducerId(Err(e)),
            Reply::AddPartitions(_) => Reply::AddPartitions(Err(e)),
            Reply::AddOffsets(_) => Reply::AddOffsets(Err(e)),
            Reply::EndTxn(_) => Reply::EndTxn(Err(e)),
        }
    }
}

/// What a request asks of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Answer now; nothing changed.
    Reply(Reply),
    /// Write this record durably, then call `appended`.
    Append(TxnRecord),
    /// Nothing to do (e.g. `markers_written` for a transaction already complete).
    Nothing,
}

/// Control batches to write: one marker per partition, and the pending offsets of each
/// group made visible (commit) or dropped (abort). The coordinator epoch is always 0 (one
/// broker), so `TRANSACTION_COORDINATOR_FENCED` cannot arise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarkerWrite {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
    pub groups: Vec<String>,
}

/// What `appended` hands back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    pub reply: Option<Reply>,
    pub markers: Option<MarkerWrite>,
}

impl MarkerWrite {
    /// The markers of `id`'s decision (`m` is `PrepareCommit` or `PrepareAbort`).
    pub(crate) fn of(id: &str, m: &TxnMetadata) -> MarkerWrite {
        MarkerWrite {
            transactional_id: id.to_owned(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit: m.state == TxnState::PrepareCommit,
            partitions: m.partitions.iter().cloned().collect(),
            groups: m.groups.iter().cloned().collect(),
        }
    }
}
