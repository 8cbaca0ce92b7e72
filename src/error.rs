//! The library's error type. Every variant maps to one Kafka error (`Error::response_error`,
//! code `kafka_code`), so the wire layer and the embedded API report the same failure the same
//! way. This file is the one table from our errors (this `Error`, the group protocol's
//! `GroupError` and the transaction coordinator's `TxnError`) to Kafka's `ResponseError`; no
//! error code is an integer literal anywhere else. `GroupError` and `TxnError` are defined
//! here (`GroupError` re-exported as `broker::group::GroupError`) so that this file, which
//! every layer uses, uses nothing of the broker.

use kafka_protocol::error::ResponseError;

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
    #[error("offset metadata of {0} bytes is over the {max} bytes allowed", max = crate::limits::OFFSET_METADATA_BYTES_MAX)]
    OffsetMetadataTooLarge(usize),
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
    /// A request Kafka refuses as malformed for what it asks (e.g. a static broker config
    /// in AlterConfigs).
    #[error("{0}")]
    InvalidRequest(String),
    /// A CreateTime timestamp outside the topic's `message.timestamp.*.max.ms` bounds.
    #[error("{0}")]
    InvalidTimestamp(String),
    /// zstd where the request's version predates it (Produce < v7, Fetch < v10).
    #[error("{0}")]
    UnsupportedCompressionType(String),
    /// The transaction coordinator refused a request of the embedded transactional producer.
    #[error("transaction refused: {0}")]
    Transaction(TxnError),
    /// A transactional producer call out of order (Kafka's `IllegalStateException`), e.g. a
    /// send outside a transaction, or a commit after a failed send (abort instead).
    #[error("transaction state: {0}")]
    TransactionState(String),
    /// A SASL login failed (wrong password, unknown user, malformed exchange); the message
    /// is Kafka's, safe to show the client.
    #[error("{0}")]
    SaslAuthenticationFailed(String),
    /// SaslHandshake named a mechanism the listener does not offer.
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    /// A SASL request out of order (SaslAuthenticate before SaslHandshake, a second handshake
    /// mid-exchange, SASL on a listener without it).
    #[error("{0}")]
    IllegalSaslState(String),
    /// AlterUserScramCredentials: a credential Kafka refuses (iterations, empty name).
    #[error("{0}")]
    UnacceptableCredential(String),
    /// A request names a resource that does not exist (e.g. deleting a missing credential).
    #[error("{0}")]
    ResourceNotFound(String),
    /// A request names the same resource twice.
    #[error("{0}")]
    DuplicateResource(String),
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
            StorageError::KeylessRecordInCompactedTopic(_) => Error::InvalidRecord(e.to_string()),
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
            BatchError::ControlBatchFromClient => Error::InvalidRecord(e.to_string()),
            BatchError::InvalidTimestamp(m) => Error::InvalidTimestamp(m),
            _ => Error::CorruptRecord(e),
        }
    }
}

/// Kafka's error code for success (`NONE`); `ResponseError` has no variant for it.
pub const NO_ERROR_CODE: i16 = 0;

/// The Kafka error code of a result: [`NO_ERROR_CODE`] on success, else the error's code.
pub fn result_code<T, E: Into<ResponseError> + Copy>(result: &Result<T, E>) -> i16 {
    match result {
        Ok(_) => NO_ERROR_CODE,
        Err(e) => (*e).into().code(),
    }
}

impl Error {
    /// The Kafka error a Java broker would return for this failure: the one table from library
    /// errors to Kafka errors (the group protocol's is below). Every code on the wire comes from
    /// a `ResponseError`, never from an integer literal.
    pub fn response_error(&self) -> ResponseError {
        match self {
            Error::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            Error::CorruptRecord(_) => ResponseError::CorruptMessage,
            Error::UnknownTopicOrPartition(_) | Error::NotAssigned(_) => {
                ResponseError::UnknownTopicOrPartition
            }
            Error::RecordTooLarge(_) => ResponseError::MessageTooLarge,
            Error::Timeout(_) => ResponseError::RequestTimedOut,
            Error::InvalidTopic(..) => ResponseError::InvalidTopicException,
            Error::InvalidGroupId(_) | Error::NoGroupId => ResponseError::InvalidGroupId,
            Error::OffsetMetadataTooLarge(_) => ResponseError::OffsetMetadataTooLarge,
            Error::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            Error::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Error::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Error::InvalidConfig(_) => ResponseError::InvalidConfig,
            Error::UnsupportedMessageFormat(_) => ResponseError::UnsupportedForMessageFormat,
            Error::Storage(_) | Error::Metadata(_) => ResponseError::KafkaStorageError,
            Error::InvalidRecord(_) => ResponseError::InvalidRecord,
            Error::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            Error::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            Error::UnknownProducerId(_) => ResponseError::UnknownProducerId,
            // A broker that is going away is, to a client, no longer the partition's leader:
            // it refreshes metadata and retries.
            Error::ShuttingDown => ResponseError::NotLeaderOrFollower,
            Error::InvalidRequest(_) => ResponseError::InvalidRequest,
            Error::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            Error::UnsupportedCompressionType(_) => ResponseError::UnsupportedCompressionType,
            Error::Transaction(e) => e.response_error(),
            Error::TransactionState(_) => ResponseError::InvalidTxnState,
            Error::SaslAuthenticationFailed(_) => ResponseError::SaslAuthenticationFailed,
            Error::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
            Error::IllegalSaslState(_) => ResponseError::IllegalSaslState,
            Error::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
            Error::ResourceNotFound(_) => ResponseError::ResourceNotFound,
            Error::DuplicateResource(_) => ResponseError::DuplicateResource,
        }
    }

    /// The Kafka protocol error code a Java broker would return for this failure.
    pub fn kafka_code(&self) -> i16 {
        self.response_error().code()
    }
}

/// Errors of the group protocol, each one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    CoordinatorNotAvailable,
    IllegalGeneration,
    InconsistentGroupProtocol,
    InvalidGroupId,
    UnknownMemberId,
    InvalidSessionTimeout,
    RebalanceInProgress,
    NonEmptyGroup,
    GroupIdNotFound,
    MemberIdRequired,
    GroupMaxSizeReached,
    FencedInstanceId,
    GroupSubscribedToTopic,
}

impl GroupError {
    /// The Kafka error code (the table is `GroupError::response_error`, below).
    pub const fn code(self) -> i16 {
        self.response_error().code()
    }

    pub fn from_code(code: i16) -> Option<GroupError> {
        ALL_ERRORS.iter().copied().find(|e| e.code() == code)
    }
}

const ALL_ERRORS: [GroupError; 13] = [
    GroupError::CoordinatorNotAvailable,
    GroupError::IllegalGeneration,
    GroupError::InconsistentGroupProtocol,
    GroupError::InvalidGroupId,
    GroupError::UnknownMemberId,
    GroupError::InvalidSessionTimeout,
    GroupError::RebalanceInProgress,
    GroupError::NonEmptyGroup,
    GroupError::GroupIdNotFound,
    GroupError::MemberIdRequired,
    GroupError::GroupMaxSizeReached,
    GroupError::FencedInstanceId,
    GroupError::GroupSubscribedToTopic,
];

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} (Kafka error {})", self.code())
    }
}

impl GroupError {
    /// The Kafka error of each group-protocol failure (same names as Kafka's).
    pub const fn response_error(self) -> ResponseError {
        match self {
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        }
    }
}

impl From<GroupError> for ResponseError {
    fn from(e: GroupError) -> Self {
        e.response_error()
    }
}

/// Errors of the transaction coordinator (`broker::txn`), each one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    /// Empty transactional id.
    InvalidRequest,
    /// The coordinator's state log could not be written (retriable).
    CoordinatorNotAvailable,
    InvalidTxnState,
    InvalidProducerIdMapping,
    InvalidTransactionTimeout,
    ConcurrentTransactions,
    ProducerFenced,
    /// What `ProducerFenced` is answered as to clients too old to know it (see `for_old_client`).
    InvalidProducerEpoch,
    /// DescribeTransactions of an id the coordinator does not know.
    TransactionalIdNotFound,
    /// AddPartitionsToTxn: another partition of the request was refused, so none was added.
    OperationNotAttempted,
}

impl TxnError {
    pub const fn code(self) -> i16 {
        self.response_error().code()
    }

    /// Kafka answers `INVALID_PRODUCER_EPOCH` instead of `PRODUCER_FENCED` to InitProducerId
    /// before v4 and AddPartitionsToTxn, AddOffsetsToTxn and EndTxn before v2.
    pub const fn for_old_client(self) -> Self {
        match self {
            TxnError::ProducerFenced => TxnError::InvalidProducerEpoch,
            e => e,
        }
    }

    pub const fn response_error(self) -> ResponseError {
        match self {
            TxnError::InvalidRequest => ResponseError::InvalidRequest,
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
            TxnError::OperationNotAttempted => ResponseError::OperationNotAttempted,
        }
    }
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} (Kafka error {})", self.code())
    }
}

impl From<TxnError> for ResponseError {
    fn from(e: TxnError) -> Self {
        e.response_error()
    }
}

/// A refused authorization check (`server/handlers/authz.rs`) or an ACL request the broker
/// cannot serve, each one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzError {
    TopicAuthorizationFailed,
    GroupAuthorizationFailed,
    ClusterAuthorizationFailed,
    TransactionalIdAuthorizationFailed,
    /// CreateAcls/DescribeAcls/DeleteAcls with no authorizer configured.
    SecurityDisabled,
    /// A refused ACL binding or filter (Kafka's `InvalidRequestException`).
    InvalidRequest,
    /// The ACL file could not be written.
    UnknownServerError,
}

impl AuthzError {
    pub const fn code(self) -> i16 {
        self.response_error().code()
    }

    pub const fn response_error(self) -> ResponseError {
        match self {
            AuthzError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
            AuthzError::GroupAuthorizationFailed => ResponseError::GroupAuthorizationFailed,
            AuthzError::ClusterAuthorizationFailed => ResponseError::ClusterAuthorizationFailed,
            AuthzError::TransactionalIdAuthorizationFailed => {
                ResponseError::TransactionalIdAuthorizationFailed
            }
            AuthzError::SecurityDisabled => ResponseError::SecurityDisabled,
            AuthzError::InvalidRequest => ResponseError::InvalidRequest,
            AuthzError::UnknownServerError => ResponseError::UnknownServerError,
        }
    }
}

impl From<AuthzError> for ResponseError {
    fn from(e: AuthzError) -> Self {
        e.response_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes the wire tests (`tests/wire_errors.rs`) and Kafka clients expect; a wrong
    /// `ResponseError` in the table would change a number here.
    #[test]
    fn table_gives_kafkas_codes() {
        let cases: [(Error, i16); 10] = [
            (
                Error::OffsetOutOfRange {
                    partition: String::new(),
                    offset: 0,
                    log_start_offset: 0,
                    log_end_offset: 0,
                },
                1,
            ),
            (Error::UnknownTopicOrPartition("t".into()), 3),
            (Error::ShuttingDown, 6),
            (Error::RecordTooLarge(BatchError::Empty), 10),
            (Error::InvalidTopic("?".into(), "bad"), 17),
            (Error::TopicAlreadyExists("t".into()), 36),
            (Error::InvalidPartitions("0".into()), 37),
            (Error::InvalidConfig("x".into()), 40),
            (Error::InvalidRecord("x".into()), 87),
            (Error::UnsupportedCompressionType("x".into()), 76),
        ];
        for (e, code) in cases {
            assert_eq!(e.kafka_code(), code, "{e}");
        }
        assert_eq!(GroupError::UnknownMemberId.code(), 25);
        assert_eq!(GroupError::GroupSubscribedToTopic.code(), 86);
        let txn = [
            (TxnError::InvalidProducerEpoch, 47),
            (TxnError::InvalidTxnState, 48),
            (TxnError::InvalidProducerIdMapping, 49),
            (TxnError::InvalidTransactionTimeout, 50),
            (TxnError::ConcurrentTransactions, 51),
            (TxnError::ProducerFenced, 90),
            (TxnError::CoordinatorNotAvailable, 15),
            (TxnError::InvalidRequest, 42),
            (TxnError::TransactionalIdNotFound, 105),
            (TxnError::OperationNotAttempted, 55),
        ];
        for (e, code) in txn {
            assert_eq!(e.code(), code, "{e:?}");
        }
        assert_eq!(TxnError::ProducerFenced.for_old_client().code(), 47);
        let authz = [
            (AuthzError::TopicAuthorizationFailed, 29),
            (AuthzError::GroupAuthorizationFailed, 30),
            (AuthzError::ClusterAuthorizationFailed, 31),
            (AuthzError::TransactionalIdAuthorizationFailed, 53),
            (AuthzError::SecurityDisabled, 54),
            (AuthzError::InvalidRequest, 42),
            (AuthzError::UnknownServerError, -1),
        ];
        for (e, code) in authz {
            assert_eq!(e.code(), code, "{e:?}");
        }
        let sasl = [
            (Error::UnsupportedSaslMechanism(String::new()), 33),
            (Error::IllegalSaslState(String::new()), 34),
            (Error::SaslAuthenticationFailed(String::new()), 58),
            (Error::ResourceNotFound(String::new()), 91),
            (Error::DuplicateResource(String::new()), 92),
            (Error::UnacceptableCredential(String::new()), 93),
        ];
        for (e, code) in sasl {
            assert_eq!(e.kafka_code(), code, "{e:?}");
        }
        assert_eq!(result_code::<(), GroupError>(&Ok(())), 0);
        assert_eq!(
            result_code::<(), _>(&Err(GroupError::RebalanceInProgress)),
            27
        );
    }
}
