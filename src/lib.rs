//! Thorstream: a Kafka-compatible event streaming broker, usable embedded (no async runtime)
//! or as a server speaking the Kafka wire protocol. See `ARCHITECTURE.md` for the map.
//!
//! The public API is what is re-exported here and `server`: a [`Broker`] opened on a data
//! directory with a [`BrokerConfig`] (per-topic [`TopicConfig`], [`FsyncPolicy`]) creates,
//! grows, describes ([`TopicDescription`], [`PartitionInfo`]) and deletes topics, appends
//! encoded batches ([`AppendInfo`]) or [`Record`]s, reads them back ([`StoredRecord`],
//! [`FetchData`], [`LogOffsets`]) and stores committed offsets ([`CommittedOffset`]);
//! [`Producer`] and [`Consumer`] (group member or manual [`TopicPartition`] assignment,
//! [`OffsetReset`]) wrap it for applications; [`server::start`] serves a broker on TCP
//! ([`server::ServerConfig`], [`server::ServerHandle`]). Every fallible call returns
//! [`Result`] with an [`Error`] that maps to a Kafka error code. Everything else is private
//! to the crate; `internals` (hidden from the docs) re-exports the pieces the repository's
//! own tests, benchmarks and fuzz targets drive directly. It is not a supported API and
//! changes with them.

pub(crate) mod broker;
pub(crate) mod config;
pub(crate) mod consumer;
pub(crate) mod error;
#[doc(hidden)]
pub mod internals;
pub(crate) mod limits;
pub(crate) mod producer;
pub(crate) mod protocol;
pub(crate) mod security;
pub mod server;
pub(crate) mod storage;
pub(crate) mod types;

pub use broker::{Broker, CommittedOffset, FetchData, PartitionInfo, TopicDescription};
pub use config::{BrokerConfig, FsyncPolicy, LogIo, TopicConfig};
pub use consumer::{Consumer, IsolationLevel, OffsetReset};
pub use error::{Error, Result, TxnError};
pub use producer::{Producer, TransactionalConfig};
pub use storage::{AppendInfo, LogOffsets};
pub use types::{Record, StoredRecord, TopicPartition};
