//! The library's error type. Every variant maps to one Kafka error code (`kafka_code`), so the
//! wire layer and the embedded API report the same failure the same way.

use crate::storage::{BatchError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, &'static str),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("replication factor {0} is not supported (only 1)")]
    InvalidReplicationFactor(u16),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("offset {offset} out of range for {partition} [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        partition: String,
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("corrupt record batch: {0}")]
    CorruptRecord(BatchError),
    #[error("record batch too large: {0}")]
    RecordTooLarge(BatchError),
    #[error("unsupported record format: {0}")]
    UnsupportedMessageFormat(BatchError),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("storage error: {0}")]
    Storage(StorageError),
    #[error("metadata store error: {0}")]
    Metadata(String),
    #[error("no group id set; call set_group_id before committing")]
    NoGroupId,
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    #[error("partition {0} is not assigned to this consumer")]
    NotAssigned(String),
    #[error("timed out after {0} ms waiting for the record to become durable")]
    Timeout(u64),
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    #[error("unknown producer id: {0}")]
    UnknownProducerId(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Batch(b) => Error::from(b),
            StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            } => Error::OffsetOutOfRange {
                partition: String::new(),
                offset,
                log_start_offset,
                log_end_offset,
            },
            StorageError::Producer(p) => {
                use crate::storage::producer_state::ProducerError;
                match p {
                    ProducerError::InvalidEpoch { .. } => {
                        Error::InvalidProducerEpoch(p.to_string())
                    }
                    ProducerError::OutOfOrder { .. } => Error::OutOfOrderSequence(p.to_string()),
                    ProducerError::UnknownProducer { .. } => {
                        Error::UnknownProducerId(p.to_string())
                    }
                }
            }
            other => Error::Storage(other),
        }
    }
}

impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::TooLarge { .. } => Error::RecordTooLarge(e),
            BatchError::UnsupportedMagic(_) => Error::UnsupportedMessageFormat(e),
            BatchError::Empty => Error::InvalidRecord(e.to_string()),
            _ => Error::CorruptRecord(e),
        }
    }
}

impl Error {
    /// The Kafka protocol error code a Java broker would return for this failure.
    pub fn kafka_code(&self) -> i16 {
        match self {
            Error::OffsetOutOfRange { .. } => 1,
            Error::CorruptRecord(_) => 2,
            Error::UnknownTopicOrPartition(_) | Error::NotAssigned(_) => 3,
            Error::RecordTooLarge(_) => 10,
            Error::Timeout(_) => 7,
            Error::InvalidTopic(..) => 17,
            Error::InvalidGroupId(_) | Error::NoGroupId => 24,
            Error::TopicAlreadyExists(_) => 36,
            Error::InvalidPartitions(_) => 37,
            Error::InvalidReplicationFactor(_) => 38,
            Error::InvalidConfig(_) => 40,
            Error::UnsupportedMessageFormat(_) => 43,
            Error::Storage(_) | Error::Metadata(_) => 56,
            Error::InvalidRecord(_) => 87,
            Error::OutOfOrderSequence(_) => 45,
            Error::InvalidProducerEpoch(_) => 47,
            Error::UnknownProducerId(_) => 59,
            Error::ShuttingDown => 6,
        }
    }
}
