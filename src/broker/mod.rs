//! The broker: topics and partitions over the storage layer, committed offsets, the flusher
//! and housekeeping threads. Both faces (embedded API and wire server) call into this type; it
//! knows nothing of sockets.
//!
//! Invariants:
//! - a topic is in `topics` iff its latest record in `topics.meta` is an upsert;
//! - the clean-shutdown marker exists only between a completed `close` and the next start;
//!   while the broker runs it is absent, so a crash is always detected;
//! - readers never see past a partition's high watermark (see `storage::log`).
//!
//! Layout: this file holds `Broker`, its state (`Inner`), start-up and `close`; `open.rs`
//! replays the topic records at start-up, `produce.rs` is the write path, `fetch.rs` and
//! `read.rs` the read paths, `housekeeping.rs` the background thread.

mod cleaner;
mod configs;
pub mod describe;
mod fetch;
pub mod flusher;
pub mod group;
mod housekeeping;
pub(crate) mod metadata;
pub(crate) mod offset_state;
pub mod offset_store;
pub(crate) mod offsets;
mod open;
pub mod partition;
pub mod partitioner;
mod produce;
mod read;
pub mod security;
pub mod topic;
mod topics;
pub(crate) mod txn;
mod txn_offsets;
pub mod wait;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

pub use self::fetch::{FetchData, FetchError, FetchMark, FetchProgress};
use self::flusher::Flusher;
use self::group::{GroupConfig, GroupService};
use self::metadata::record_log::RecordLog;
pub(crate) use self::metadata::topic_record::TopicRecord;
pub use self::offset_store::CommittedOffset;
use self::offset_store::OffsetStore;
pub(crate) use self::offsets::fence_error;
pub(crate) use self::offsets::{CommitFence, CommitOutcome, OffsetCommitEntry};
use self::open::{open_topic, partition_dir};
use self::partition::Partition;
pub use self::topic::{Topic, TopicMeta, validate_topic_name};
pub(crate) use self::txn_offsets::TxnCommitFence;
use self::wait::Waits;
use crate::config::broker_dynamic::DynamicBrokerConfigs;
use crate::config::{BrokerConfig, FsyncPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::storage::sync_dir;

const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
const TOPICS_FILE: &str = "__topics.meta";
const OFFSETS_FILE: &str = "__consumer_offsets.meta";
const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
/// Producer ids are reserved durably in blocks of this many, so a restart never reuses one.
const PRODUCER_ID_BLOCK_LEN: i64 = 1000;

/// A partition's state as `describe` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    pub name: String,
    pub id: [u8; 16],
    pub config: TopicConfig,
    pub partitions: Vec<PartitionInfo>,
}

struct Inner {
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// The broker's dynamic configs (`configs.rs`); topics inherit them where they set none.
    dynamic: RwLock<DynamicBrokerConfigs>,
    topic_store: Mutex<RecordLog<TopicRecord>>,
    offsets: OffsetStore,
    /// Everything that waits for a partition, a group or a deadline (`wait/`).
    waits: Arc<Waits>,
    /// Stored bytes read for consumers (wire Fetch and the embedded consumer), by `fetch.rs`.
    bytes_read: std::sync::atomic::AtomicU64,
    flusher: Flusher,
    stop: Arc<AtomicBool>,
    stop_cv: (Mutex<()>, std::sync::Condvar),
    /// The consumer-group coordinator (classic protocol).
    groups: GroupService,
    /// Wall-clock ms of the last offsets-expiry pass.
    offsets_expiry_ms: std::sync::atomic::AtomicI64,
    /// When housekeeping last expired idle producers (ms).
    producers_expiry_ms: std::sync::atomic::AtomicI64,
    /// Held by operations that add partitions, so the `max_partitions` check and the
    /// creation it admits happen as one step.
    partition_admission: Mutex<()>,
    /// (next producer id to hand out, end of the durably reserved block).
    producer_ids: Mutex<(i64, i64)>,
    /// The transaction coordinator (`txn/`), its state log and marker writing.
    txn: txn::TxnService,
    /// SCRAM credentials (`__users.meta`).
    users: security::users::UserStore,
    /// The ACL bindings (`__acls.meta`), read by the wire server's authorizer.
    acls: security::acls::AclStore,
}

impl Inner {
    /// The topics as they are now (a snapshot: topics created or deleted after it are not in
    /// it, and a deleted one stays usable until dropped).
    fn topics_snapshot(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The broker engine. Dropping it shuts it down cleanly (see `close`).
pub struct Broker {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl Broker {
    /// Opens (or creates) the broker's data directory, recovering every partition.
    pub fn new(config: BrokerConfig) -> Result<Broker> {
        // Refused here, not at the first auto-created topic.
        config.default_topic_config.validate()?;
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Metadata(format!("{}: {e}", dir.display())))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if !clean && dir.join(TOPICS_FILE).exists() {
            log::warn!(
                "{}: no clean-shutdown marker; recovering logs",
                dir.display()
            );
        }
        let (topic_store, topics, dynamic) = open::load_topics(&config, &dir, clean)?;
        let waits = Arc::new(Waits::default());
        let offsets = OffsetStore::open_with(
            &dir.join(OFFSETS_FILE),
            config.fsync != FsyncPolicy::Never,
            Arc::clone(&waits),
        )?;
        if clean {
            std::fs::remove_file(&marker)
                .map_err(|e| Error::Metadata(format!("{}: {e}", marker.display())))?;
            sync_dir(&dir)?;
        }
        let txn =
            txn::TxnService::open(&dir, config.fsync, txn_config(&config), Arc::clone(&waits))?;
        let users = security::users::UserStore::open(&dir)?;
        let acls = security::acls::AclStore::open(&dir)?;
        let group_config = group_config(&config);
        let inner = Arc::new(Inner {
            config,
            topics: RwLock::new(topics),
            dynamic: RwLock::new(dynamic),
            topic_store: Mutex::new(topic_store),
            offsets,
            waits: Arc::clone(&waits),
            bytes_read: std::sync::atomic::AtomicU64::new(0),
            flusher: Flusher::default(),
            stop: Arc::new(AtomicBool::new(false)),
            stop_cv: (Mutex::new(()), std::sync::Condvar::new()),
            groups: GroupService::new(group_config, Arc::clone(&waits)),
            offsets_expiry_ms: std::sync::atomic::AtomicI64::new(0),
            producers_expiry_ms: std::sync::atomic::AtomicI64::new(0),
            partition_admission: Mutex::new(()),
            producer_ids: Mutex::new({
                let end = crate::storage::checkpoint::read_i64(&dir.join(PRODUCER_ID_BLOCK_FILE))
                    .unwrap_or(0);
                (end, end)
            }),
            txn,
            users,
            acls,
        });
        let mut threads = vec![wait::spawn_timer(Arc::clone(&inner.waits))?];
        let f = Arc::clone(&inner);
        threads.push(spawn("thorstream-flusher", move || {
            f.flusher.run(&f.waits, &f.offsets, &f.txn)
        })?);
        let g = Arc::clone(&inner);
        threads.push(spawn("thorstream-groups", move || g.groups.run_timer())?);
        let h = Arc::clone(&inner);
        threads.push(spawn("thorstream-housekeeping", move || {
            housekeeping::housekeeping(&h)
        })?);
        if inner.config.log_cleaner_enable {
            let c = Arc::clone(&inner);
            threads.push(spawn("thorstream-cleaner", move || cleaner::run(&c))?);
        }
        log::info!(
            "broker opened {} (fsync {}, {} topics, clean start: {clean})",
            inner.config.data_dir.display(),
            inner.config.fsync,
            inner.topics.read().map(|t| t.len()).unwrap_or(0)
        );
        let broker = Broker {
            inner,
            threads: Mutex::new(threads),
            closed: AtomicBool::new(false),
        };
        // Before any client: decided transactions complete, undecided ones abort.
        broker.inner.txn.recover(&broker)?;
        let t = broker.internal_handle();
        let txn_thread = spawn("thorstream-txn", move || t.inner.txn.run_thread(&t))?;
        if let Ok(mut threads) = broker.threads.lock() {
            threads.push(txn_thread);
        }
        Ok(broker)
    }

    /// A second handle on this broker for its own threads (the txn thread calls `Broker`
    /// methods): it shares the state but owns no thread and never closes the broker (it is
    /// born closed, so its drop does nothing).
    fn internal_handle(&self) -> Broker {
        Broker {
            inner: Arc::clone(&self.inner),
            threads: Mutex::new(Vec::new()),
            closed: AtomicBool::new(true),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The SCRAM credential store (`__users.meta`).
    pub fn users(&self) -> &security::users::UserStore {
        &self.inner.users
    }

    pub(crate) fn node_id(&self) -> i32 {
        self.inner.config.node_id
    }

    /// The wait set: parked wire requests and blocked embedded calls wait here for a
    /// partition's high watermark, a group's change, or a deadline.
    pub(crate) fn waits(&self) -> &Arc<Waits> {
        &self.inner.waits
    }

    /// The consumer-group coordinator; each group it changes fires a `WaitKey::Group` event.
    /// The persisted ACL bindings (the wire server's authorizer and the ACL APIs).
    pub(crate) fn acls(&self) -> &security::acls::AclStore {
        &self.inner.acls
    }

    pub(crate) fn groups(&self) -> &GroupService {
        &self.inner.groups
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .ok()
            .and_then(|t| t.get(name).cloned())
            .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_string()))
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        self.topic(topic)?
            .partition(partition)
            .ok_or_else(|| Error::UnknownTopicOrPartition(format!("{topic}-{partition}")))
    }

    /// Flushes and fsyncs everything, writes checkpoints and the clean-shutdown marker, and
    /// stops the background threads. Idempotent; also run on drop.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            // Set under the mutex housekeeping checks it under, so the wake-up cannot be lost
            // between its check and its wait.
            let _guard = self.inner.stop_cv.0.lock();
            self.inner.stop.store(true, Ordering::Release);
        }
        self.inner.stop_cv.1.notify_all();
        self.inner.flusher.shutdown();
        self.inner.waits.shutdown_all();
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
        let mut result = Ok(());
        if let Err(e) = self.inner.txn.close() {
            log::error!("closing the transaction state log: {e}");
            result = Err(e);
        }
        let topics = self.inner.topics_snapshot();
        for t in topics {
            let parts = t.partitions_snapshot();
            for p in parts {
                if let Err(e) = p.log().and_then(|mut l| l.close().map_err(Error::from)) {
                    log::error!("closing {}-{}: {e}", p.topic, p.index);
                    result = Err(e);
                }
            }
        }
        if result.is_ok() {
            let marker = self.inner.config.data_dir.join(CLEAN_SHUTDOWN_FILE);
            std::fs::write(&marker, b"")
                .map_err(|e| Error::Metadata(format!("{}: {e}", marker.display())))?;
            sync_dir(&self.inner.config.data_dir)?;
            log::info!("broker closed cleanly");
        }
        result
    }

    fn topics_write(
        &self,
    ) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>>> {
        self.inner
            .topics
            .write()
            .map_err(|_| Error::Metadata("topics lock poisoned".into()))
    }

    fn store_lock(&self) -> Result<std::sync::MutexGuard<'_, RecordLog<TopicRecord>>> {
        self.inner
            .topic_store
            .lock()
            .map_err(|_| Error::Metadata("topic store lock poisoned".into()))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("broker shutdown: {e}");
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::Metadata(format!("cannot start thread {name}: {e}")))
}

#[cfg(test)]
mod tests;

/// The transaction coordinator's settings taken from the broker's.
fn txn_config(config: &BrokerConfig) -> txn::effects::TxnConfig {
    txn::effects::TxnConfig {
        transaction_max_timeout_ms: i32::try_from(config.transaction_max_timeout_ms)
            .unwrap_or(i32::MAX),
        transactional_id_expiration_ms: i64::try_from(config.transactional_id_expiration_ms)
            .unwrap_or(i64::MAX),
    }
}

/// The coordinator's settings taken from the broker's.
fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        // Kafka bounds it by nothing; past i32::MAX ms (the largest rebalance timeout a
        // JoinGroup can carry) it would only be longer than any member waits.
        initial_rebalance_delay_ms: i64::try_from(config.group_initial_rebalance_delay_ms)
            .unwrap_or(i64::MAX)
            .min(i64::from(i32::MAX)),
        ..GroupConfig::default()
    }
}
