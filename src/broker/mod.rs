//! The broker: topics and partitions over the storage layer, committed offsets, the flusher
//! and housekeeping threads. Both faces (embedded API and wire server) call into this type; it
//! knows nothing of sockets.
//!
//! Invariants:
//! - a topic is in `topics` iff its latest record in `topics.meta` is an upsert;
//! - the clean-shutdown marker exists only between a completed `close` and the next start;
//!   while the broker runs it is absent, so a crash is always detected;
//! - readers never see past a partition's high watermark (see `storage::log`).

mod fetch;
pub mod flusher;
pub mod group;
pub(crate) mod metadata;
pub mod offset_store;
pub mod partition;
pub mod partitioner;
pub mod topic;
mod topics;
pub mod wait;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use self::fetch::{FetchData, FetchError, FetchMark, FetchProgress};
use self::flusher::Flusher;
use self::group::{GroupConfig, GroupService};
use self::metadata::record_log::RecordLog;
pub(crate) use self::metadata::topic_record::TopicRecord;
pub use self::offset_store::CommittedOffset;
use self::offset_store::OffsetStore;
use self::partition::Partition;
pub use self::topic::{Topic, TopicMeta, validate_topic_name};
use self::wait::{WaitKey, Waits};
use crate::config::{BrokerConfig, FsyncPolicy, TopicConfig};
use crate::error::{Error, Result};
use crate::storage::{AppendInfo, LogOffsets, PartitionLog, now_ms, sync_dir};
use crate::types::{Record, StoredRecord};

const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
const TOPICS_FILE: &str = "__topics.meta";
const OFFSETS_FILE: &str = "__consumer_offsets.meta";
use crate::limits::OFFSETS_EXPIRY_CHECK_INTERVAL_MS;
use crate::limits::PRODUCER_EXPIRY_CHECK_INTERVAL_MS;
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
    topic_store: Mutex<RecordLog<TopicRecord>>,
    offsets: OffsetStore,
    /// Everything that waits for a partition, a group or a deadline (`wait/`).
    waits: Arc<Waits>,
    /// Stored bytes read for consumers (wire Fetch and the embedded consumer), by `fetch.rs`.
    bytes_read: std::sync::atomic::AtomicU64,
    flusher: Flusher,
    stop: AtomicBool,
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
        let (mut topic_store, records) = RecordLog::<TopicRecord>::open(&dir.join(TOPICS_FILE))?;
        let mut metas: BTreeMap<String, TopicMeta> = BTreeMap::new();
        // Topics with a recorded deletion: their leftover directories may be removed.
        let mut deleted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        let replayed = records.len();
        for r in records {
            match r {
                TopicRecord::Upsert(m) => {
                    // The name becomes a directory name: never trust it, even from our own
                    // (CRC-framed) file. A record no CreateTopics could have written is dropped.
                    if let Err(e) = topic::validate_topic_name(&m.name) {
                        log::error!("{TOPICS_FILE}: ignoring a topic record: {e}");
                        continue;
                    }
                    metas.insert(m.name.clone(), m);
                }
                TopicRecord::Delete { name } => {
                    metas.remove(&name);
                    deleted.insert(name);
                }
            }
        }
        if replayed != metas.len() {
            let live: Vec<TopicRecord> = metas.values().cloned().map(TopicRecord::Upsert).collect();
            topic_store.rewrite(&live)?;
        }
        let now = now_ms();
        let mut topics = BTreeMap::new();
        for meta in metas.into_values() {
            // Every config was validated when it was written; one that no longer validates
            // (damage past the CRC, or a rule tightened since) stops the start with the topic
            // named, as Kafka does, rather than serving the topic with settings it never had.
            meta.config.validate().map_err(|e| {
                Error::Metadata(format!(
                    "{TOPICS_FILE}: topic {} has an invalid configuration: {e}",
                    meta.name
                ))
            })?;
            let t = open_topic(&config, meta, clean, now)?;
            topics.insert(t.0, t.1);
        }
        remove_orphan_partition_dirs(&dir, &topics, &deleted);
        let offsets =
            OffsetStore::open(&dir.join(OFFSETS_FILE), config.fsync != FsyncPolicy::Never)?;
        if clean {
            std::fs::remove_file(&marker)
                .map_err(|e| Error::Metadata(format!("{}: {e}", marker.display())))?;
            sync_dir(&dir)?;
        }
        let waits = Arc::new(Waits::default());
        let inner = Arc::new(Inner {
            config,
            topics: RwLock::new(topics),
            topic_store: Mutex::new(topic_store),
            offsets,
            waits: Arc::clone(&waits),
            bytes_read: std::sync::atomic::AtomicU64::new(0),
            flusher: Flusher::default(),
            stop: AtomicBool::new(false),
            stop_cv: (Mutex::new(()), std::sync::Condvar::new()),
            groups: GroupService::new(GroupConfig::default(), Arc::clone(&waits)),
            offsets_expiry_ms: std::sync::atomic::AtomicI64::new(0),
            producers_expiry_ms: std::sync::atomic::AtomicI64::new(0),
            partition_admission: Mutex::new(()),
            producer_ids: Mutex::new({
                let end = crate::storage::checkpoint::read_i64(&dir.join(PRODUCER_ID_BLOCK_FILE))
                    .unwrap_or(0);
                (end, end)
            }),
        });
        let mut threads = vec![wait::spawn_timer(Arc::clone(&inner.waits))?];
        let f = Arc::clone(&inner);
        threads.push(spawn("thorstream-flusher", move || {
            f.flusher.run(&f.waits)
        })?);
        let h = Arc::clone(&inner);
        threads.push(spawn("thorstream-housekeeping", move || housekeeping(&h))?);
        log::info!(
            "broker opened {} (fsync {}, {} topics, clean start: {clean})",
            inner.config.data_dir.display(),
            inner.config.fsync,
            inner.topics.read().map(|t| t.len()).unwrap_or(0)
        );
        Ok(Broker {
            inner,
            threads: Mutex::new(threads),
            closed: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
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

    /// Appends already-encoded v2 batches (validated here; offsets assigned in place). Does not
    /// wait for durability: the result says whether the records are visible already
    /// (`AppendInfo::is_visible`); if not, see `is_durable` / `wait_durable`.
    /// Compressed batches are inflated (streaming, bounded) to check their record counts
    /// before the partition lock is taken.
    pub fn append(&self, topic: &str, partition: i32, batches: &[u8]) -> Result<AppendInfo> {
        let p = self.partition(topic, partition)?;
        self.append_to(&p, batches)
    }

    /// `append` to a partition already looked up; locks it once.
    fn append_to(&self, p: &Arc<Partition>, batches: &[u8]) -> Result<AppendInfo> {
        crate::storage::batch::check_compressed_record_counts(batches)?;
        let info = p.log()?.append(batches, now_ms())?;
        match p.fsync {
            FsyncPolicy::Always => self.inner.flusher.mark(p, Instant::now()),
            FsyncPolicy::Interval(ms) => self
                .inner
                .flusher
                .mark(p, Instant::now() + Duration::from_millis(ms)),
            // `never` still fsyncs a segment once it is rolled (in the flusher, off this path).
            FsyncPolicy::Never if info.rolled => self.inner.flusher.mark(p, Instant::now()),
            FsyncPolicy::Never => {}
        }
        if info.high_watermark_moved {
            self.inner
                .waits
                .event(&WaitKey::partition(&p.topic, p.index));
        }
        Ok(info)
    }

    /// True once `offset` is below the high watermark (readable, and durable under `always`).
    /// Fails if the partition's log was poisoned by a failed fsync.
    pub fn is_durable(&self, topic: &str, partition: i32, offset: i64) -> Result<bool> {
        let p = self.partition(topic, partition)?;
        let log = p.log()?;
        if log.high_watermark() > offset {
            return Ok(true);
        }
        if log.is_poisoned() {
            return Err(Error::Storage(crate::storage::StorageError::Poisoned(
                log.dir().to_path_buf(),
            )));
        }
        Ok(false)
    }

    /// Blocks the calling thread (embedded API only) until `offset` is durable.
    pub fn wait_durable(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
    ) -> Result<()> {
        let seen = self
            .inner
            .waits
            .epochs(&[WaitKey::partition(topic, partition)]);
        if self.is_durable(topic, partition, offset)? {
            return Ok(());
        }
        self.wait_durable_past(topic, partition, offset, timeout, seen)
    }

    /// `wait_durable` for an offset known not to be durable when the partition's wait-set
    /// epoch was `seen`.
    fn wait_durable_past(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timeout: Duration,
        mut seen: Vec<u64>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let keys = [WaitKey::partition(topic, partition)];
        loop {
            if self.inner.stop.load(Ordering::Acquire) {
                return Err(Error::ShuttingDown);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(timeout.as_millis() as u64));
            }
            self.inner.waits.wait(keys.to_vec(), &seen, deadline);
            seen = self.inner.waits.epochs(&keys);
            if self.is_durable(topic, partition, offset)? {
                return Ok(());
            }
        }
    }

    /// Encodes and appends records as one batch; under fsync `always` waits until durable.
    pub fn produce(&self, topic: &str, partition: i32, records: &[Record]) -> Result<AppendInfo> {
        if records.is_empty() {
            return Err(Error::InvalidRecord("no records to send".into()));
        }
        let batch = crate::protocol::records::encode_batch(records, now_ms())?;
        let p = self.partition(topic, partition)?;
        // Read before the append: a high watermark published after it ends the wait, so the
        // append's own report stands in for the first durability check.
        let seen = self
            .inner
            .waits
            .epochs(&[WaitKey::partition(topic, partition)]);
        let info = self.append_to(&p, &batch)?;
        if p.fsync == FsyncPolicy::Always && !info.is_visible() {
            let timeout = Duration::from_millis(self.inner.config.produce_timeout_ms);
            self.wait_durable_past(topic, partition, info.last_offset, timeout, seen)?;
        }
        Ok(info)
    }

    /// A producer id never handed out before (Kafka's InitProducerId for idempotence).
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        let mut ids = self
            .inner
            .producer_ids
            .lock()
            .map_err(|_| Error::Metadata("producer id lock poisoned".into()))?;
        if ids.0 >= ids.1 {
            let end = ids.1 + PRODUCER_ID_BLOCK_LEN;
            crate::storage::checkpoint::write_i64(
                &self.inner.config.data_dir.join(PRODUCER_ID_BLOCK_FILE),
                end,
            )?;
            ids.1 = end;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    pub fn offsets(&self, topic: &str, partition: i32) -> Result<LogOffsets> {
        Ok(self.partition(topic, partition)?.log()?.offsets())
    }

    /// Reads stored batches from `offset` (at least one whole batch): `fetch` without the
    /// partition's offsets on error.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<FetchData> {
        self.fetch(topic, partition, offset, max_bytes, true)
            .map_err(|e| e.error)
    }

    /// Reads and decodes records (embedded consumer).
    pub fn read_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Vec<StoredRecord>, LogOffsets)> {
        let data = self.read(topic, partition, offset, max_bytes)?;
        let records =
            crate::protocol::records::decode_records(topic, partition, &data.records, offset)?;
        Ok((records, data.offsets))
    }

    /// The first offset whose record timestamp is ≥ `timestamp`, with that timestamp
    /// (Kafka's ListOffsets by time). `None` when every record is older.
    pub fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>> {
        let p = self.partition(topic, partition)?;
        let (batch, log_start) = {
            let log = p.log()?;
            (
                log.batch_at_timestamp(timestamp)?,
                log.offsets().log_start_offset,
            )
        };
        let Some(batch) = batch else { return Ok(None) };
        let records =
            crate::protocol::records::decode_records(topic, partition, &batch, log_start)?;
        Ok(records
            .iter()
            .find(|r| r.timestamp >= timestamp)
            .map(|r| (r.offset, r.timestamp)))
    }

    /// Moves the log start offset forward (Kafka's DeleteRecords). `-1` means the high watermark.
    pub fn delete_records(&self, topic: &str, partition: i32, before_offset: i64) -> Result<i64> {
        let p = self.partition(topic, partition)?;
        let mut log = p.log()?;
        let target = if before_offset == -1 {
            log.high_watermark()
        } else {
            before_offset
        };
        Ok(log.delete_records_before(target)?)
    }

    pub fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        metadata: Option<String>,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(Error::InvalidGroupId(group.to_string()));
        }
        self.partition(topic, partition)?;
        self.inner.offsets.commit(
            group,
            topic,
            partition,
            CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp_ms: now_ms(),
            },
        )
    }

    pub fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.inner.offsets.fetch(group, topic, partition)
    }

    pub fn group_offsets(&self, group: &str) -> Vec<((String, i32), CommittedOffset)> {
        self.inner.offsets.group_offsets(group)
    }

    pub(crate) fn offset_store(&self) -> &OffsetStore {
        &self.inner.offsets
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
        let topics: Vec<Arc<Topic>> = self
            .inner
            .topics
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        let mut result = Ok(());
        for t in topics {
            let parts = t.partitions.read().map(|p| p.clone()).unwrap_or_default();
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

fn partition_dir(config: &BrokerConfig, topic: &str, partition: i32) -> PathBuf {
    config.data_dir.join(format!("{topic}-{partition}"))
}

fn open_topic(
    config: &BrokerConfig,
    meta: TopicMeta,
    clean: bool,
    now: i64,
) -> Result<(String, Arc<Topic>)> {
    let fsync = meta.config.fsync.unwrap_or(config.fsync);
    let log_config = meta.config.log_config(config.fsync);
    let mut parts = Vec::with_capacity(meta.config.num_partitions as usize);
    for i in 0..meta.config.num_partitions as i32 {
        let log = PartitionLog::open(
            &partition_dir(config, &meta.name, i),
            log_config.clone(),
            clean,
            now,
        )?;
        parts.push(Arc::new(Partition::new(meta.name.clone(), i, fsync, log)));
    }
    let name = meta.name.clone();
    Ok((
        name,
        Arc::new(Topic {
            meta: RwLock::new(meta),
            partitions: RwLock::new(parts),
        }),
    ))
}

/// Cleans up `<topic>-<n>` directories that belong to no live partition. A directory of a topic
/// whose deletion is recorded (deleted just before a crash), or holding no records (a
/// CreatePartitions cut short), is removed. Any other one holds data whose metadata was lost
/// (a damaged `__topics.meta`): it is renamed to `<topic>-<n>.orphaned[.k]`, out of the broker's
/// way (a new topic of that name starts empty) but kept for the operator, never deleted.
fn remove_orphan_partition_dirs(
    dir: &std::path::Path,
    topics: &BTreeMap<String, Arc<Topic>>,
    deleted: &std::collections::BTreeSet<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some((topic, part)) = name.rsplit_once('-') else {
            continue;
        };
        if part.is_empty()
            || !part.bytes().all(|b| b.is_ascii_digit())
            || validate_topic_name(topic).is_err()
        {
            continue;
        }
        let live = topics
            .get(topic)
            .is_some_and(|t| part.parse::<usize>().is_ok_and(|p| p < t.partition_count()));
        let path = e.path();
        if live || !path.is_dir() {
            continue;
        }
        if deleted.contains(topic) || !holds_records(&path) {
            log::warn!("removing orphaned partition directory {}", path.display());
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let Some(aside) = (0..1000)
            .map(|k| match k {
                0 => dir.join(format!("{name}.orphaned")),
                k => dir.join(format!("{name}.orphaned.{k}")),
            })
            .find(|p| !p.exists())
        else {
            continue;
        };
        log::error!(
            "partition directory {} holds records but no topic metadata names it (damaged {}?); \
             keeping it as {}",
            path.display(),
            TOPICS_FILE,
            aside.display()
        );
        if let Err(err) = std::fs::rename(&path, &aside) {
            log::error!("renaming {}: {err}", path.display());
        }
    }
    let _ = sync_dir(dir);
}

/// Whether a partition directory has a non-empty segment file.
fn holds_records(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| n.ends_with(".log"))
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// Housekeeping thread: segment age rolls, retention, recovery-point checkpoints.
fn housekeeping(inner: &Inner) {
    let interval = Duration::from_millis(inner.config.housekeeping_interval_ms.max(10));
    loop {
        {
            let Ok(guard) = inner.stop_cv.0.lock() else {
                return;
            };
            if inner.stop.load(Ordering::Acquire) {
                return;
            }
            let _ = inner.stop_cv.1.wait_timeout(guard, interval);
        }
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        group_housekeeping(inner);
        let topics: Vec<Arc<Topic>> = inner
            .topics
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        let now = now_ms();
        let expiration_ms =
            i64::try_from(inner.config.producer_id_expiration_ms).unwrap_or(i64::MAX);
        let expire_producers = now - inner.producers_expiry_ms.load(Ordering::Acquire)
            >= (expiration_ms / 10).clamp(1, PRODUCER_EXPIRY_CHECK_INTERVAL_MS);
        if expire_producers {
            inner.producers_expiry_ms.store(now, Ordering::Release);
        }
        for t in topics {
            let parts = t.partitions.read().map(|p| p.clone()).unwrap_or_default();
            for p in parts {
                let job = {
                    let Ok(mut log) = p.log() else { continue };
                    if let Err(e) = log.roll_if_expired(now) {
                        log::error!("{}-{}: roll failed: {e}", p.topic, p.index);
                    }
                    if let Err(e) = log.apply_retention(now) {
                        log::error!("{}-{}: retention failed: {e}", p.topic, p.index);
                    }
                    if expire_producers {
                        let n = log.expire_producers(now, expiration_ms);
                        if n > 0 {
                            log::info!("{}-{}: expired {n} idle producer ids", p.topic, p.index);
                        }
                    }
                    log.checkpoint_job()
                };
                // Checkpoint files are written and fsynced with the partition unlocked: an
                // fsync can wait behind the journal, and appends and reads must not.
                let written = job.and_then(|job| match job {
                    Some(job) => job.write().map(|done| done.then_some(job)),
                    None => Ok(None),
                });
                match written {
                    Ok(Some(job)) => {
                        if let Ok(mut log) = p.log() {
                            log.checkpoint_written(&job);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("{}-{}: checkpoint failed: {e}", p.topic, p.index),
                }
            }
        }
    }
}

/// Session and rebalance timeouts of group members, and expiry of the committed offsets of
/// groups empty for longer than `offsets_retention_minutes` (checked at most once a minute).
fn group_housekeeping(inner: &Inner) {
    inner.groups.tick();
    let retention_ms = i64::try_from(inner.config.offsets_retention_minutes)
        .unwrap_or(i64::MAX / 60_000)
        .saturating_mul(60_000);
    let check_interval_ms = retention_ms.clamp(0, OFFSETS_EXPIRY_CHECK_INTERVAL_MS);
    let now = now_ms();
    let last = inner.offsets_expiry_ms.load(Ordering::Acquire);
    if now - last >= check_interval_ms {
        inner.offsets_expiry_ms.store(now, Ordering::Release);
        inner.groups.expire_offsets(&inner.offsets, retention_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a topic record to `__topics.meta` by hand, bypassing `create_topic`'s checks.
    fn append_topic_record(data_dir: &std::path::Path, name: &str, config: TopicConfig) {
        let (mut store, _) = RecordLog::<TopicRecord>::open(&data_dir.join(TOPICS_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        let meta = TopicMeta {
            name: name.to_string(),
            id: [7; 16],
            config,
        };
        store
            .append(&TopicRecord::Upsert(meta), true)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn topic_records_with_invalid_names_are_ignored_at_startup() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let broker = Broker::new(BrokerConfig::with_data_dir(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            broker
                .create_topic("good", None)
                .unwrap_or_else(|e| panic!("{e}"));
            broker.close().unwrap_or_else(|e| panic!("{e}"));
        }
        for name in ["../escape", "", "a/b"] {
            append_topic_record(dir.path(), name, TopicConfig::default());
        }
        let broker =
            Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(broker.topics(), vec!["good".to_string()]);
        assert!(!dir.path().join("..").join("escape-0").exists());
    }

    #[test]
    fn a_topic_record_with_an_invalid_config_stops_the_start_and_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let broker = Broker::new(BrokerConfig::with_data_dir(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            broker
                .create_topic("kept", None)
                .unwrap_or_else(|e| panic!("{e}"));
            broker
                .produce("kept", 0, &[crate::Record::new(b"v".to_vec())])
                .unwrap_or_else(|e| panic!("{e}"));
            broker.close().unwrap_or_else(|e| panic!("{e}"));
        }
        let path = dir.path().join(TOPICS_FILE);
        let good = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let bad = TopicConfig {
            segment_bytes: 0,
            ..TopicConfig::default()
        };
        append_topic_record(dir.path(), "kept", bad);
        match Broker::new(BrokerConfig::with_data_dir(dir.path())) {
            Err(Error::Metadata(m)) => {
                assert!(m.contains("kept") && m.contains("segment.bytes"), "{m}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a topic with segment.bytes 0 was opened"),
        }
        // Nothing was deleted: with the record undone the topic and its record are back.
        std::fs::write(&path, good).unwrap_or_else(|e| panic!("{e}"));
        let broker =
            Broker::new(BrokerConfig::with_data_dir(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(readable(&broker, "kept", 0), vec![(0, b"v".to_vec())]);
    }

    /// Offsets and first-record values of everything readable in `topic-partition`.
    fn readable(broker: &Broker, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
        let (records, _) = broker
            .read_records(topic, partition, 0, usize::MAX)
            .unwrap_or_else(|e| panic!("{e}"));
        records
            .into_iter()
            .map(|r| (r.offset, r.value.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_default_max_message_bytes_above_the_recovery_bound_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.default_topic_config.max_message_bytes =
            u32::try_from(crate::limits::RECOVERY_BATCH_BYTES_MAX + 1).unwrap_or(u32::MAX);
        let err = Broker::new(config).err().map(|e| e.response_error());
        assert_eq!(
            err,
            Some(kafka_protocol::error::ResponseError::InvalidConfig)
        );
    }

    #[test]
    fn partitions_beyond_the_broker_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.max_partitions = 5;
        config.default_topic_config.num_partitions = 1;
        let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
        let three = Some(TopicConfig::with_partitions(3));
        broker
            .create_topic("a", three.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let err = broker.create_topic("b", three).expect_err("3 + 3 > 5");
        assert_eq!(
            err.response_error(),
            kafka_protocol::error::ResponseError::InvalidPartitions,
            "{err}"
        );
        assert!(broker.topic("b").is_err(), "nothing of it was created");
        assert!(!partition_dir(&broker.inner.config, "b", 0).exists());
        broker
            .create_partitions("a", 4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(broker.ensure_topic("c").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(broker.total_partitions(), 5);
        let err = broker.create_partitions("a", 5).expect_err("6 > 5");
        assert_eq!(
            err.response_error(),
            kafka_protocol::error::ResponseError::InvalidPartitions,
            "{err}"
        );
        assert!(
            broker.ensure_topic("d").is_err(),
            "auto-creation is refused too"
        );
        assert_eq!(
            broker
                .partition_count("a")
                .unwrap_or_else(|e| panic!("{e}")),
            4
        );
    }

    #[test]
    fn idle_idempotent_producers_expire_and_the_expiry_survives_a_restart() {
        use crate::storage::batch::tests::make_idempotent_batch;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = BrokerConfig::with_data_dir(dir.path());
        config.producer_id_expiration_ms = 2_000;
        config.housekeeping_interval_ms = 20;
        let broker = Broker::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
        broker
            .create_topic("t", None)
            .unwrap_or_else(|e| panic!("{e}"));
        let now = now_ms();
        // Producer 1 last wrote two minutes ago; producer 2's clock runs a minute ahead, so it
        // stays active for the whole test.
        let (old, ahead) = (now - 120_000, now + 60_000);
        for (pid, seq, ts) in [(1, 0, old), (2, 0, ahead), (1, 1, old)] {
            broker
                .append("t", 0, &make_idempotent_batch(pid, 0, seq, ts))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let producers = |b: &Broker| -> Vec<i64> {
            let p = b.partition("t", 0).unwrap_or_else(|e| panic!("{e}"));
            let log = p.log().unwrap_or_else(|e| panic!("{e}"));
            let table = log.producer_state();
            [1, 2]
                .into_iter()
                .filter(|&id| table.get(id).is_some())
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while producers(&broker) != vec![2] {
            assert!(Instant::now() < deadline, "producer 1 never expired");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Forgotten: a retry of its last batch is no longer answered as a duplicate.
        let retry = broker.append("t", 0, &make_idempotent_batch(1, 0, 1, now));
        assert!(
            retry.is_err(),
            "unknown producer must restart at sequence 0"
        );
        broker.close().unwrap_or_else(|e| panic!("{e}"));
        drop(broker);
        let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(producers(&broker), vec![2], "the snapshot kept the expiry");
    }

    #[test]
    fn failed_fsync_fails_its_produces_then_heals_without_a_restart() {
        use crate::protocol::records::encode_batch;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = BrokerConfig::with_data_dir(dir.path()); // fsync `always`
        let wait = Duration::from_secs(10);
        let broker = Broker::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
        let two = TopicConfig {
            num_partitions: 2,
            ..TopicConfig::default()
        };
        broker
            .create_topic("t", Some(two))
            .unwrap_or_else(|e| panic!("{e}"));
        let append = |p: i32, body: &[u8]| {
            let batch = encode_batch(&[crate::Record::new(body.to_vec())], 1)?;
            broker.append("t", p, &batch)
        };
        let acked = append(0, b"acked").unwrap_or_else(|e| panic!("{e}"));
        broker
            .wait_durable("t", 0, acked.last_offset, wait)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = readable(&broker, "t", 0);

        // The disk starts failing fsyncs of t-0 only.
        let t0 = partition_dir(&config, "t", 0);
        flusher::failpoint::fail_syncs_under(&t0, true);
        let lost = append(0, b"lost").unwrap_or_else(|e| panic!("{e}"));
        let err = broker
            .wait_durable("t", 0, lost.last_offset, wait)
            .expect_err("its fsync failed");
        assert_eq!(
            err.response_error(),
            kafka_protocol::error::ResponseError::KafkaStorageError,
            "{err}"
        );
        // Reads keep working and show only what was durable; t-1 is untouched.
        assert_eq!(readable(&broker, "t", 0), before);
        let other = append(1, b"other").unwrap_or_else(|e| panic!("{e}"));
        broker
            .wait_durable("t", 1, other.last_offset, wait)
            .unwrap_or_else(|e| panic!("{e}"));

        // Space returns. Appends are refused until the log heals (at most one attempt per
        // second); the healed log continues right after the last durable record.
        flusher::failpoint::fail_syncs_under(&t0, false);
        let deadline = Instant::now() + wait;
        let healed = loop {
            match append(0, b"healed") {
                Ok(info) => break info,
                Err(e) if Instant::now() < deadline => {
                    assert_eq!(
                        e.response_error(),
                        kafka_protocol::error::ResponseError::KafkaStorageError,
                        "{e}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("never healed: {e}"),
            }
        };
        assert_eq!(healed.base_offset, acked.last_offset + 1);
        broker
            .wait_durable("t", 0, healed.last_offset, wait)
            .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<Vec<u8>> = vec![b"acked".to_vec(), b"healed".to_vec()];
        let values =
            |rs: Vec<(i64, Vec<u8>)>| -> Vec<Vec<u8>> { rs.into_iter().map(|r| r.1).collect() };
        assert_eq!(values(readable(&broker, "t", 0)), expected);
        broker.close().unwrap_or_else(|e| panic!("{e}"));
        drop(broker);

        // Everything acknowledged is still there after a restart, exactly once.
        let broker = Broker::new(config).unwrap_or_else(|e| panic!("{e}"));
        let after = readable(&broker, "t", 0);
        assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(values(after), expected);
        assert_eq!(readable(&broker, "t", 1).len(), 1);
    }
}
