//! Thorstream: a Kafka-compatible event streaming broker, usable embedded (no async runtime)
//! or as a server speaking the Kafka wire protocol. See `ARCHITECTURE.md` for the map.

pub mod broker;
pub mod config;
pub mod consumer;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod producer;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod types;

pub use broker::{Broker, PartitionInfo, TopicDescription};
pub use config::{BrokerConfig, FsyncPolicy, TopicConfig};
pub use consumer::{Consumer, OffsetReset};
pub use error::{Error, Result};
pub use producer::Producer;
pub use storage::LogConfig as PartitionLogConfig;
pub use types::{Record, StoredRecord, TopicPartition};
