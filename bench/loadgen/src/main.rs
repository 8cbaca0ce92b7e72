//! `loadgen`: drives a Kafka broker (Thorstream or any other) through librdkafka, in the spirit
//! of `kafka-producer-perf-test` / `kafka-consumer-perf-test`, and measures the machine's raw
//! limits so that broker figures can be read as a fraction of what the hardware allows.
//!
//! Subcommands:
//! - `produce`: N producer instances (each its own librdkafka client and connection) send
//!   records of a fixed size for a duration or a count, optionally rate-limited; reports
//!   records/s, MB/s and produce-ack latency p50/p99/p999.
//! - `consume`: reads a topic from the beginning (all partitions assigned, no group) until a
//!   record count is reached, reading librdkafka's queue in batches (`batch.rs`); reports
//!   records/s and MB/s.
//! - `e2e`: a rate-limited producer and a consumer in one process; every payload carries its
//!   send time, so the consumer measures end-to-end latency on one clock. With
//!   `LOADGEN_TIMELINE=1` it also prints to stderr the worst latency per 100 ms of send time,
//!   which shows whether a tail is a steady queue or a stall (and when).
//! - `idle`: opens many idle connections and holds them (the broker's CPU is sampled meanwhile).
//! - `first`: waits for a just-started broker's port, then produces one record (topic
//!   auto-created, linger 0, acks=all) and reports the milliseconds from a given start instant
//!   (the broker's exec) to the port accepting and to the record's acknowledgement.
//! - `partitions`: creates many topic partitions, times full-Metadata requests over them, then
//!   samples the broker's CPU while the client holds one idle connection (the cost of idle
//!   partitions).
//! - `tcp-bw`, `fsync-lat`: raw loopback TCP bandwidth and fdatasync latency of a directory.
//!
//! With `--broker-pid`, every broker-facing subcommand also samples the broker's CPU time from
//! `/proc/<pid>/stat` over the measured interval, so CPU-seconds per GB can be reported even
//! though the client shares the machine. Results are printed as one JSON object on stdout; a
//! progress bar and a human summary go to stderr.

mod batch;
mod cpu;
mod produce_batch;
mod raw;
mod report;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use batch::BatchConsumer;
use produce_batch::{BATCH_RECORDS_MAX, BatchSender, Sent};
use report::Report;

/// Messages per `consume` batch call (confluent-kafka-python users pass hundreds to ~1,000).
const CONSUME_BATCH: usize = 1024;

#[derive(Parser)]
#[command(name = "loadgen", about = "Kafka load generator over librdkafka")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Produce records and report throughput and produce-ack latency.
    Produce(ProduceArgs),
    /// Consume a topic from the beginning and report throughput.
    Consume(ConsumeArgs),
    /// Produce at a fixed rate and consume concurrently; report end-to-end latency.
    E2e(E2eArgs),
    /// Hold idle connections open (sample the broker's CPU meanwhile).
    Idle(IdleArgs),
    /// Time from a broker's start to its port accepting and to a first acknowledged record.
    First(FirstArgs),
    /// Create many partitions; time full Metadata over them; sample the idle broker's CPU.
    Partitions(PartitionsArgs),
    /// Loopback TCP bandwidth (raw limit).
    TcpBw(raw::TcpBwArgs),
    /// fdatasync latency and sequential write bandwidth in a directory (raw limit).
    FsyncLat(raw::FsyncArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// bootstrap.servers
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// Sample this process's CPU time from /proc over the measured interval.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Extra librdkafka properties, `key=value`, repeatable, as kcat's `-X` (e.g.
    /// `-X security.protocol=ssl -X ssl.ca.location=ca.pem`); applied last, over the
    /// tool's own settings.
    #[arg(short = 'X', long = "prop", value_parser = parse_prop)]
    props: Vec<(String, String)>,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args, Clone)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// Stop after this many records in total (0 = use --duration).
    #[arg(long, default_value_t = 0)]
    records: u64,
    /// Produce for this many seconds (when --records is 0).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Value size in bytes (at least 8: the first 8 bytes carry the send time).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Key size in bytes; 0 sends no key (records spread over partitions by librdkafka).
    #[arg(long, default_value_t = 0)]
    key_size: usize,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value = "1")]
    acks: String,
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: u32,
    #[arg(long, default_value = "none")]
    compression: String,
    /// Number of independent producer instances (threads, connections).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Total records/s across producers (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Transactional produce: producer instance i uses `transactional.id` `<this>-<i>` and
    /// commits every `--records-per-txn` records (commit waits for every delivery, as
    /// `kafka-producer-perf-test --transactional-id` does). Needs `--acks all`.
    #[arg(long)]
    transactional_id: Option<String>,
    /// Records per transaction (with `--transactional-id`).
    #[arg(long, default_value_t = 100)]
    records_per_txn: u64,
}

#[derive(Args, Clone)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Stop after this many records.
    #[arg(long)]
    records: u64,
    /// Give up after this many seconds without a record.
    #[arg(long, default_value_t = 10.0)]
    idle_timeout: f64,
    /// Consumer instances (threads); partitions are dealt out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
}

#[derive(Args, Clone)]
struct E2eArgs {
    #[command(flatten)]
    produce: ProduceArgs,
}

#[derive(Args, Clone)]
struct IdleArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them (CPU is sampled over this interval, after all are open).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long)]
    broker_pid: Option<u32>,
}

#[derive(Args, Clone)]
struct FirstArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, default_value = "first")]
    topic: String,
    /// The start instant, in nanoseconds since the Unix epoch (`date +%s%N` right before the
    /// broker's exec); default: now.
    #[arg(long)]
    since_unix_ns: Option<u128>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

#[derive(Args, Clone)]
struct PartitionsArgs {
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topics to create, named `<prefix>-<i>`.
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 100)]
    partitions: i32,
    #[arg(long, default_value = "parts")]
    prefix: String,
    /// Topics per CreateTopics request.
    #[arg(long, default_value_t = 10)]
    topics_per_request: usize,
    /// Full (all topics) Metadata requests to time after creation.
    #[arg(long, default_value_t = 20)]
    metadata_requests: usize,
    /// Seconds to leave the broker alone before sampling its idle CPU (a broker may still be
    /// creating logs after its Metadata lists them).
    #[arg(long, default_value_t = 10.0)]
    settle_seconds: f64,
    /// Seconds to sample the idle broker's CPU after that.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    #[arg(long)]
    broker_pid: Option<u32>,
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn main() {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Produce(a) => produce(&a, false),
        Cmd::Consume(a) => consume(&a),
        Cmd::E2e(a) => produce(&a.produce, true),
        Cmd::Idle(a) => idle(&a),
        Cmd::Partitions(a) => partitions(&a),
        Cmd::First(a) => first(&a),
        Cmd::TcpBw(a) => raw::tcp_bw(&a),
        Cmd::FsyncLat(a) => raw::fsync_lat(&a),
    };
    match out {
        Ok(report) => report.print(),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Microseconds since the process's clock origin; stamped into payloads.
fn now_us(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("constant histogram bounds are valid")
}

/// Delivery callbacks: count acks/errors and record produce-ack latency.
struct Deliveries {
    origin: Instant,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    latency: Mutex<Histogram<u64>>,
    /// Transactions committed (`--transactional-id`).
    txns: AtomicU64,
    /// The time (µs since `origin`) `serve_one` read before its poll, 0 outside it: delivery
    /// reports served elsewhere (flush, the transactional poller) read the clock themselves.
    poll_time_us: AtomicU64,
}

impl Deliveries {
    fn new(origin: Instant) -> Deliveries {
        Deliveries {
            origin,
            acked: AtomicU64::new(0),
            acked_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            latency: Mutex::new(new_histogram()),
            txns: AtomicU64::new(0),
            poll_time_us: AtomicU64::new(0),
        }
    }

    fn on_delivery(&self, result: &DeliveryResult<'_>) {
        match result {
            Ok(m) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                let payload = m.payload().unwrap_or(&[]);
                self.acked_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                if let Some(sent) = stamp(payload) {
                    let now = match self.poll_time_us.load(Ordering::Relaxed) {
                        0 => now_us(self.origin),
                        t => t,
                    };
                    let lat = now.saturating_sub(sent).max(1);
                    if let Ok(mut h) = self.latency.lock() {
                        let _ = h.record(lat);
                    }
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

fn stamp(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn base_config(common: &Common) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &common.brokers);
    for (k, v) in &common.props {
        cfg.set(k, v);
    }
    cfg
}

fn ensure_topic(common: &Common, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(common)
        .create()
        .context("creating admin client")?;
    let topic = NewTopic::new(&common.topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results =
        futures_executor::block_on(admin.create_topics([&topic], &opts)).context("CreateTopics")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

fn producer_config(a: &ProduceArgs) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &a.common.brokers)
        .set("acks", &a.acks)
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.size", a.batch_size.to_string())
        .set("compression.type", &a.compression)
        .set("queue.buffering.max.messages", "1000000")
        // 32 MB of records queued per producer, as the Java client's buffer.memory default:
        // enough to keep the broker busy, small enough that ack latency is not all queueing.
        .set("queue.buffering.max.kbytes", "32768");
    for (k, v) in &a.common.props {
        cfg.set(k, v);
    }
    cfg
}

/// Commits every `records_per_txn` records of one producer instance (`--transactional-id`).
struct Txns {
    records_per_txn: u64,
    in_txn: u64,
    committed: u64,
}

/// How long one transactional call (init, commit) may take before the run fails.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// librdkafka's `rd_kafka_commit_transaction`, called directly: rust-rdkafka's wrapper flushes
/// first with its own flush (100 ms poll slices). librdkafka's commit flushes by itself.
fn commit_transaction_raw<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<()> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client pointer is valid for the producer's lifetime (borrowed here); a
    // non-null error returned is owned by us and destroyed once its message is copied.
    unsafe {
        let err = rdkafka::bindings::rd_kafka_commit_transaction(
            producer.client().native_ptr(),
            timeout_ms,
        );
        if err.is_null() {
            return Ok(());
        }
        let message = std::ffi::CStr::from_ptr(rdkafka::bindings::rd_kafka_error_string(err))
            .to_string_lossy()
            .into_owned();
        rdkafka::bindings::rd_kafka_error_destroy(err);
        bail!("commit_transaction: {message}")
    }
}

/// Serves at most one ready event (a delivery report covers a whole produce response), then
/// sleeps `IDLE_WAIT`: for a producer thread that must wait for deliveries to make room in
/// a full queue. Not `poll(Duration::from_millis(1))`: rust-rdkafka's poll loops
/// until its deadline and passes librdkafka the remaining time in whole milliseconds, so its
/// last sub-millisecond is a busy loop of non-blocking polls. That loop took 35 % of the
/// client's CPU in a TLS produce profile (`clock_gettime` under `Deadline::elapsed`), CPU the
/// broker and librdkafka's own threads share on a small machine.
fn serve_then_wait(producer: &BaseProducer<ArcDeliveries>) {
    serve_one(producer);
    thread::sleep(IDLE_WAIT);
}

/// Serves at most one ready event without waiting. A delivery-report event covers a whole
/// produce response, and its records are handed to `Deliveries::on_delivery` back to back
/// inside this call, so the clock is read once here for all of them (`poll_time_us`) instead
/// of once per record: the per-record reads were 3 % of the client's CPU at 100 B.
fn serve_one(producer: &BaseProducer<ArcDeliveries>) {
    let d = &producer.context().0;
    d.poll_time_us
        .store(now_us(d.origin).max(1), Ordering::Relaxed);
    producer.poll(Duration::ZERO);
    d.poll_time_us.store(0, Ordering::Relaxed);
}

/// How long a waiting producer thread sleeps between polls (the queue holds far more than
/// this much of a second's records, so the sender never starves).
const IDLE_WAIT: Duration = Duration::from_micros(50);

impl Txns {
    fn start(a: &ProduceArgs, producer: &BaseProducer<ArcDeliveries>) -> Result<Option<Txns>> {
        if a.transactional_id.is_none() {
            return Ok(None);
        }
        if a.records_per_txn == 0 {
            bail!("--records-per-txn must be at least 1");
        }
        producer
            .init_transactions(TXN_CALL_TIMEOUT)
            .context("init_transactions")?;
        producer.begin_transaction().context("begin_transaction")?;
        Ok(Some(Txns {
            records_per_txn: a.records_per_txn,
            in_txn: 0,
            committed: 0,
        }))
    }

    /// After each record: commit (and begin the next) once the transaction is full.
    fn sent(&mut self, producer: &BaseProducer<ArcDeliveries>) -> Result<()> {
        self.in_txn += 1;
        if self.in_txn >= self.records_per_txn {
            self.commit(producer)?;
            producer.begin_transaction().context("begin_transaction")?;
        }
        Ok(())
    }

    /// Commits (librdkafka flushes first: the last batch goes out at once, not after
    /// linger.ms) once every delivery is acknowledged; the thread's poller serves them.
    fn commit(&mut self, producer: &BaseProducer<ArcDeliveries>) -> Result<()> {
        commit_transaction_raw(producer, TXN_CALL_TIMEOUT)?;
        self.committed += 1;
        self.in_txn = 0;
        Ok(())
    }
}

fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})"
    } else {
        "{spinner} {prefix} [{elapsed_precise}] {pos} records ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(what.to_string());
    bar
}

/// Produce (and, for `e2e`, consume concurrently and measure end-to-end latency).
fn produce(a: &ProduceArgs, e2e: bool) -> Result<Report> {
    if a.record_size < 8 {
        bail!("--record-size must be at least 8 (the send time is stamped into the payload)");
    }
    if e2e && a.rate == 0 {
        bail!("e2e needs --rate (latency at an unbounded rate measures queueing only)");
    }
    ensure_topic(&a.common, a.partitions)?;
    let origin = Instant::now();
    let ctx = Arc::new(SharedRun {
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let bar = progress(
        (a.records > 0).then_some(a.records),
        if e2e { "e2e" } else { "produce" },
    );

    // e2e: the consumer starts first, positioned at the end, and measures payload stamps.
    let consumer = if e2e {
        let c = E2eConsumer::start(&a.common, origin, ctx.clone())?;
        Some(c)
    } else {
        None
    };

    let cpu0 = cpu::Sample::take(a.common.broker_pid);
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..a.producers {
        let a = a.clone();
        let ctx = ctx.clone();
        let bar = bar.clone();
        handles.push(thread::spawn(move || {
            producer_thread(&a, i, origin, &ctx, &bar)
        }));
    }
    let mut acked = 0u64;
    let mut acked_bytes = 0u64;
    let mut failed = 0u64;
    let mut first_error = None;
    let mut hist = new_histogram();
    let mut txns = 0u64;
    let mut finished: Option<Instant> = None;
    for h in handles {
        let (d, done_at) = h
            .join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        finished = finished.max(Some(done_at));
        acked += d.acked.load(Ordering::Relaxed);
        acked_bytes += d.acked_bytes.load(Ordering::Relaxed);
        failed += d.failed.load(Ordering::Relaxed);
        txns += d.txns.load(Ordering::Relaxed);
        if let (None, Ok(mut e)) = (&first_error, d.first_error.lock()) {
            first_error = e.take();
        }
        if let Ok(l) = d.latency.lock() {
            let _ = hist.add(&*l);
        }
    }
    // Until the last thread's last delivery (not until a poller thread noticed the end).
    let elapsed = finished
        .unwrap_or_else(Instant::now)
        .duration_since(started)
        .as_secs_f64();
    let cpu1 = cpu::Sample::take(a.common.broker_pid);
    bar.finish_and_clear();

    let mut r = Report::new(if e2e { "e2e" } else { "produce" }, &a.common.label);
    r.num("records", acked as f64)
        .num("failed", failed as f64)
        .num("record_size", a.record_size as f64)
        .num("partitions", a.partitions as f64)
        .num("producers", a.producers as f64)
        .text("acks", &a.acks)
        .num("seconds", elapsed)
        .num("records_per_s", acked as f64 / elapsed)
        .num("mb_per_s", acked_bytes as f64 / elapsed / 1e6)
        .latency("ack", &hist);
    if a.transactional_id.is_some() {
        r.num("records_per_txn", a.records_per_txn as f64)
            .num("transactions", txns as f64)
            .num("transactions_per_s", txns as f64 / elapsed);
    }
    if let Some(e) = first_error {
        r.text("first_error", &e);
    }
    cpu::report(&mut r, &cpu0, &cpu1, acked_bytes);

    if let Some(c) = consumer {
        // Let the consumer catch up with the last records, then stop it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.received() < acked && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        ctx.stop.store(true, Ordering::Relaxed);
        let (received, e2e_hist) = c.finish()?;
        r.num("e2e_received", received as f64)
            .latency("e2e", &e2e_hist);
    }
    if failed > 0 && acked == 0 {
        bail!(
            "every record failed: {}",
            r.get_text("first_error").unwrap_or_default()
        );
    }
    Ok(r)
}

struct SharedRun {
    sent: AtomicU64,
    stop: AtomicBool,
}

fn producer_thread(
    a: &ProduceArgs,
    index: usize,
    origin: Instant,
    run: &SharedRun,
    bar: &ProgressBar,
) -> Result<(Arc<Deliveries>, Instant)> {
    let deliveries = Arc::new(Deliveries::new(origin));
    let mut cfg = producer_config(a);
    if let Some(id) = &a.transactional_id {
        cfg.set("transactional.id", format!("{id}-{index}"));
    }
    let producer: BaseProducer<ArcDeliveries> = cfg
        .create_with_context(ArcDeliveries(deliveries.clone()))
        .context("creating producer")?;
    let mut txns = Txns::start(a, &producer)?;
    // A transactional producer's delivery reports are served by a poller thread: librdkafka's
    // commit_transaction flushes and waits for them, and with the event API (BaseProducer) the
    // application must serve them from another thread meanwhile (librdkafka's documented
    // pattern; the Java producer's commitTransaction flushes the same way). It blocks in
    // librdkafka until an event arrives; rust-rdkafka's poll ends each slice with a sub-ms
    // busy loop, so slices are long (POLLER_SLICE) and cost at most ~1 % of a core.
    let stop_poller = AtomicBool::new(false);
    // Its end is when its last record was delivered (the flush returned), not when the
    // poller noticed.
    let done_at = thread::scope(|s| {
        if txns.is_some() {
            s.spawn(|| {
                while !stop_poller.load(Ordering::Relaxed) {
                    producer.poll(POLLER_SLICE);
                }
            });
        }
        let sent = send_loop(a, index, origin, run, bar, &producer, txns.as_mut());
        let done_at = Instant::now();
        stop_poller.store(true, Ordering::Relaxed);
        sent.map(|()| done_at)
    })?;
    if let Some(t) = txns {
        deliveries.txns.fetch_add(t.committed, Ordering::Relaxed);
    }
    Ok((deliveries, done_at))
}

/// At full rate, one clock read per this many sends (see `send_loop`).
const STAMP_EVERY: u64 = 64;

/// How long one `poll` of a transactional producer's poller lasts (see `producer_thread`).
const POLLER_SLICE: Duration = Duration::from_millis(100);

/// One producer thread's records: sent (paced if `--rate`), committed every
/// `--records-per-txn` when transactional, then flushed.
fn send_loop(
    a: &ProduceArgs,
    index: usize,
    origin: Instant,
    run: &SharedRun,
    bar: &ProgressBar,
    producer: &BaseProducer<ArcDeliveries>,
    mut txns: Option<&mut Txns>,
) -> Result<()> {
    let mut payload = vec![0u8; a.record_size];
    for (i, b) in payload.iter_mut().enumerate().skip(8) {
        *b = (i % 251) as u8;
    }
    let mut key = vec![b'k'; a.key_size];
    let per_producer_rate = a.rate as f64 / a.producers as f64;
    if per_producer_rate <= 0.0 && key.is_empty() && txns.is_none() {
        return send_batched(a, origin, run, bar, producer, &mut payload);
    }
    let paced_from = Instant::now();
    let end = paced_from + Duration::from_secs_f64(a.duration);
    let mut n: u64 = 0;
    let mut last_bar = 0u64;
    let mut stamp_us = 0u64;
    // The wall clock at `origin`, in ms since the epoch: CreateTime = this + the stamp.
    let origin_wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        - origin.elapsed().as_millis() as i64;
    loop {
        if a.records > 0 {
            // Claim the next record of the shared count.
            if run.sent.fetch_add(1, Ordering::Relaxed) >= a.records {
                break;
            }
        } else if n.is_multiple_of(1024) && Instant::now() >= end {
            break;
        }
        if per_producer_rate > 0.0 {
            // Paced from this thread's start (setup time never turns into a burst), at a
            // granularity of ~0.5 ms: send what is due, then sleep, instead of spinning.
            let due = Duration::from_secs_f64(n as f64 / per_producer_rate);
            loop {
                let now = paced_from.elapsed();
                if now >= due {
                    break;
                }
                serve_one(producer);
                thread::sleep((due - now).min(Duration::from_micros(500)));
            }
            if Instant::now() >= end && a.records == 0 {
                break;
            }
        }
        // The send stamp (and the record's CreateTime, given so librdkafka does not read the
        // wall clock per record): read per record when paced; at full rate, every
        // STAMP_EVERY records. Clock reads were 18 % of the client's CPU in a 100 B produce
        // profile, and the client's CPU is what limits that cell on 2 cores. A stamp is then
        // at most STAMP_EVERY sends old (~40 µs at 100 B), against ack latencies of ms.
        if per_producer_rate > 0.0 || n.is_multiple_of(STAMP_EVERY) {
            stamp_us = now_us(origin);
            payload[..8].copy_from_slice(&stamp_us.to_le_bytes());
        }
        if !key.is_empty() {
            let id = (n as usize).wrapping_mul(2654435761) ^ index;
            for (i, b) in key.iter_mut().enumerate().take(8) {
                *b = b'0' + ((id >> (i * 4)) & 0xf) as u8;
            }
        }
        let create_time_ms = origin_wall_ms + (stamp_us / 1000) as i64;
        let mut record = BaseRecord::to(&a.common.topic)
            .payload(&payload[..])
            .timestamp(create_time_ms);
        if !key.is_empty() {
            record = record.key(&key[..]);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match producer.send(r) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    serve_then_wait(producer);
                    record = Some(r);
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
        n += 1;
        if let Some(t) = txns.as_mut() {
            t.sent(producer)?;
        }
        if n.is_multiple_of(256) {
            serve_one(producer);
            bar.inc(n - last_bar);
            last_bar = n;
        }
    }
    bar.inc(n - last_bar);
    if let Some(t) = txns.as_mut() {
        // The last, partly filled transaction is committed too (counts as one).
        t.commit(producer)?;
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing producer")?;
    Ok(())
}

/// `send_loop` at full rate without keys or transactions: the records go to librdkafka
/// `BATCH_RECORDS_MAX` at a time (`produce_batch.rs`), one send stamp per batch (as
/// `STAMP_EVERY` does for single sends) and the batch's CreateTime from librdkafka's one
/// clock read per call.
fn send_batched(
    a: &ProduceArgs,
    origin: Instant,
    run: &SharedRun,
    bar: &ProgressBar,
    producer: &BaseProducer<ArcDeliveries>,
    payload: &mut [u8],
) -> Result<()> {
    let mut sender = BatchSender::new(producer, &a.common.topic)?;
    let end = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut n: u64 = 0;
    let mut last_bar = 0u64;
    loop {
        let count = if a.records > 0 {
            // Claim the next records of the shared count.
            let want = BATCH_RECORDS_MAX as u64;
            let from = run.sent.fetch_add(want, Ordering::Relaxed);
            if from >= a.records {
                break;
            }
            want.min(a.records - from) as usize
        } else {
            if n.is_multiple_of(1024) && Instant::now() >= end {
                break;
            }
            BATCH_RECORDS_MAX
        };
        payload[..8].copy_from_slice(&now_us(origin).to_le_bytes());
        let mut left = count;
        while left > 0 {
            match sender.send(payload, left)? {
                Sent::All => left = 0,
                Sent::QueueFull(queued) => {
                    left -= queued;
                    serve_then_wait(producer);
                }
            }
        }
        let before = n;
        n += count as u64;
        if n / 256 != before / 256 {
            serve_one(producer);
            bar.inc(n - last_bar);
            last_bar = n;
        }
    }
    bar.inc(n - last_bar);
    drop(sender);
    producer
        .flush(Duration::from_secs(60))
        .context("flushing producer")?;
    Ok(())
}

/// `ProducerContext` must be owned by the producer; this shares the counters with the thread.
struct ArcDeliveries(Arc<Deliveries>);

impl ClientContext for ArcDeliveries {}

impl ProducerContext for ArcDeliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.0.on_delivery(result);
    }
}

fn consumer_config(common: &Common) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &common.brokers)
        .set("group.id", "loadgen")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in &common.props {
        cfg.set(k, v);
    }
    cfg
}

/// Assign every partition of the topic at `offset` (no group membership: nothing to wait for).
fn assign_all(consumer: &BaseConsumer, topic: &str, offset: Offset) -> Result<usize> {
    assign_share(consumer, topic, offset, 0, 1)
}

/// Assign the partitions `p` with `p % count == index` at `offset`; returns the topic's
/// partition count.
fn assign_share(
    consumer: &BaseConsumer,
    topic: &str,
    offset: Offset,
    index: usize,
    count: usize,
) -> Result<usize> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata")?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .context("topic missing from metadata")?;
    if let Some(e) = t.error() {
        bail!("topic {topic}: {e:?}");
    }
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        if p.id() as usize % count.max(1) == index {
            tpl.add_partition_offset(topic, p.id(), offset)?;
        }
    }
    consumer.assign(&tpl)?;
    Ok(t.partitions().len())
}

fn consume(a: &ConsumeArgs) -> Result<Report> {
    let count = a.consumers.max(1);
    let mut consumers = Vec::with_capacity(count);
    let mut partitions = 0;
    for i in 0..count {
        let c: BaseConsumer = consumer_config(&a.common)
            .create()
            .context("creating consumer")?;
        partitions = assign_share(&c, &a.common.topic, Offset::Beginning, i, count)?;
        consumers.push(c);
    }
    let bar = progress(Some(a.records), "consume");
    let total = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu::Sample::take(a.common.broker_pid);
    let started = Instant::now();
    let idle = Duration::from_secs_f64(a.idle_timeout);
    let handles: Vec<_> = consumers
        .into_iter()
        .map(|consumer| {
            let (total, bar, records) = (total.clone(), bar.clone(), a.records);
            thread::spawn(move || -> Result<(u64, Instant)> {
                // Batches, not one poll per message: see batch.rs (the tool's own per-message
                // cost is then not what a consume figure measures).
                let mut batches = BatchConsumer::new(consumer, CONSUME_BATCH)?;
                let mut lens = Vec::with_capacity(CONSUME_BATCH);
                let mut last_record = Instant::now();
                let mut bytes = 0u64;
                while total.load(Ordering::Relaxed) < records {
                    batches.next_batch(Duration::from_millis(100), &mut lens)?;
                    if lens.is_empty() {
                        if last_record.elapsed() > idle {
                            break;
                        }
                        continue;
                    }
                    // The records are counted (and the clock read) once per batch; the last
                    // batch ends the measured interval.
                    last_record = Instant::now();
                    bytes += lens.iter().map(|&l| l as u64).sum::<u64>();
                    let n =
                        total.fetch_add(lens.len() as u64, Ordering::Relaxed) + lens.len() as u64;
                    bar.set_position(n.min(records));
                }
                Ok((bytes, last_record))
            })
        })
        .collect();
    let mut bytes = 0u64;
    let mut last_record = started;
    for h in handles {
        let (b, last) = h
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
        bytes += b;
        last_record = last_record.max(last);
    }
    let n = total.load(Ordering::Relaxed).min(a.records);
    let elapsed = last_record.duration_since(started).as_secs_f64().max(1e-9);
    let cpu1 = cpu::Sample::take(a.common.broker_pid);
    bar.finish_and_clear();
    let mut r = Report::new("consume", &a.common.label);
    r.num("records", n as f64)
        .num("partitions", partitions as f64)
        .num("consumers", count as f64)
        .num("seconds", elapsed)
        .num("records_per_s", n as f64 / elapsed)
        .num("mb_per_s", bytes as f64 / elapsed / 1e6);
    cpu::report(&mut r, &cpu0, &cpu1, bytes);
    if n < a.records {
        bail!(
            "only {n} of {} records arrived (idle for {:.1}s)",
            a.records,
            a.idle_timeout
        );
    }
    Ok(r)
}

/// The consuming half of `e2e`: a thread that polls from the end and records latencies.
struct E2eConsumer {
    received: Arc<AtomicU64>,
    handle: thread::JoinHandle<Result<Histogram<u64>>>,
}

impl E2eConsumer {
    fn start(common: &Common, origin: Instant, run: Arc<SharedRun>) -> Result<Self> {
        let consumer: BaseConsumer = consumer_config(common)
            .set("fetch.wait.max.ms", "500")
            .set("fetch.min.bytes", "1")
            .create()
            .context("creating consumer")?;
        assign_all(&consumer, &common.topic, Offset::End)?;
        // Wait until the assignment has resolved its start offsets, so that no record produced
        // from now on is skipped.
        let ready = Instant::now();
        while ready.elapsed() < Duration::from_secs(2) {
            let _ = consumer.poll(Duration::from_millis(50));
        }
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let handle = thread::spawn(move || {
            let mut hist = new_histogram();
            let mut timeline: Vec<u64> = Vec::new();
            while !run.stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        if let Some(sent) = m.payload().and_then(stamp) {
                            let lat = now_us(origin).saturating_sub(sent).max(1);
                            let _ = hist.record(lat);
                            let sec = (sent / 100_000) as usize;
                            if timeline.len() <= sec {
                                timeline.resize(sec + 1, 0);
                            }
                            timeline[sec] = timeline[sec].max(lat);
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) => bail!("e2e consumer: {e}"),
                    None => {}
                }
            }
            if std::env::var_os("LOADGEN_TIMELINE").is_some() {
                let t: Vec<String> = timeline.iter().map(|v| format!("{}", v / 1000)).collect();
                eprintln!(
                    "e2e: worst latency (ms) per 100 ms of send time: {}",
                    t.join(" ")
                );
            }
            Ok(hist)
        });
        Ok(E2eConsumer { received, handle })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn finish(self) -> Result<(u64, Histogram<u64>)> {
        let received = self.received();
        let hist = self
            .handle
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
        Ok((received, hist))
    }
}

fn idle(a: &IdleArgs) -> Result<Report> {
    let addr = a
        .brokers
        .split(',')
        .next()
        .context("no broker address")?
        .to_string();
    let mut conns = Vec::with_capacity(a.connections);
    let bar = progress(Some(a.connections as u64), "connect");
    for _ in 0..a.connections {
        let s = std::net::TcpStream::connect(&addr).with_context(|| format!("connect {addr}"))?;
        conns.push(s);
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Let the accept burst settle before sampling.
    thread::sleep(Duration::from_secs(1));
    let cpu0 = cpu::Sample::take(a.broker_pid);
    let started = Instant::now();
    thread::sleep(Duration::from_secs_f64(a.seconds));
    let elapsed = started.elapsed().as_secs_f64();
    let cpu1 = cpu::Sample::take(a.broker_pid);
    // Check they are all still open (a refused or closed connection reads 0 bytes).
    let mut open = 0usize;
    for s in &conns {
        s.set_nonblocking(true)?;
        let mut b = [0u8; 1];
        match std::io::Read::read(&mut &*s, &mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            _ => {}
        }
    }
    let mut r = Report::new("idle", "");
    r.num("connections", a.connections as f64)
        .num("still_open", open as f64)
        .num("seconds", elapsed);
    cpu::idle_report(&mut r, "broker_", &cpu0, &cpu1, elapsed);
    Ok(r)
}

fn partitions(a: &PartitionsArgs) -> Result<Report> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &a.brokers);
    let admin: AdminClient<DefaultClientContext> = cfg.create().context("creating admin client")?;
    let names: Vec<String> = (0..a.topics).map(|i| format!("{}-{i}", a.prefix)).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    let bar = progress(Some(a.topics as u64), "create");
    let started = Instant::now();
    for chunk in names.chunks(a.topics_per_request.max(1)) {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|n| NewTopic::new(n, a.partitions, TopicReplication::Fixed(1)))
            .collect();
        let results = futures_executor::block_on(admin.create_topics(&topics, &opts))
            .context("CreateTopics")?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("creating topic {name}: {code}"),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    let create_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let want = a.topics * a.partitions.max(0) as usize;
    // Full Metadata until every partition is listed (creation may be visible a moment later),
    // then the timed requests.
    let client = admin.inner();
    let listed = |m: &rdkafka::metadata::Metadata| -> usize {
        m.topics()
            .iter()
            .filter(|t| t.name().starts_with(&format!("{}-", a.prefix)))
            .map(|t| t.partitions().len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let m = client
            .fetch_metadata(None, Duration::from_secs(30))
            .context("Metadata")?;
        if listed(&m) >= want {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {want} partitions listed after 300 s",
                listed(&m)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    let listed_s = started.elapsed().as_secs_f64();
    let mut hist = new_histogram();
    for _ in 0..a.metadata_requests {
        let t0 = Instant::now();
        let m = client
            .fetch_metadata(None, Duration::from_secs(30))
            .context("Metadata")?;
        let us = (t0.elapsed().as_micros() as u64).max(1);
        if listed(&m) < want {
            bail!(
                "a Metadata response listed {} of {want} partitions",
                listed(&m)
            );
        }
        let _ = hist.record(us);
    }
    thread::sleep(Duration::from_secs_f64(a.settle_seconds));
    let cpu0 = cpu::Sample::take(a.broker_pid);
    let idle_started = Instant::now();
    thread::sleep(Duration::from_secs_f64(a.idle_seconds));
    let idle_s = idle_started.elapsed().as_secs_f64();
    let cpu1 = cpu::Sample::take(a.broker_pid);
    let mut r = Report::new("partitions", "");
    r.num("topics", a.topics as f64)
        .num("partitions", want as f64)
        .num("create_s", create_s)
        .num("listed_s", listed_s)
        .latency("metadata", &hist)
        .num("idle_seconds", idle_s);
    cpu::idle_report(&mut r, "idle_broker_", &cpu0, &cpu1, idle_s);
    Ok(r)
}

fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn first(a: &FirstArgs) -> Result<Report> {
    let since = a.since_unix_ns.unwrap_or_else(unix_ns);
    let ms_since = || (unix_ns().saturating_sub(since)) as f64 / 1e6;
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    let addr = a
        .brokers
        .split(',')
        .next()
        .context("no broker address")?
        .to_string();
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            bail!("{addr} did not accept a connection in {} s", a.timeout);
        }
        thread::sleep(Duration::from_millis(1));
    }
    let accepting_ms = ms_since();
    let deliveries = Arc::new(Deliveries::new(Instant::now()));
    let producer: BaseProducer<ArcDeliveries> = ClientConfig::new()
        .set("bootstrap.servers", &a.brokers)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set(
            "message.timeout.ms",
            ((a.timeout * 1000.0) as u64).to_string(),
        )
        .create_with_context(ArcDeliveries(deliveries.clone()))
        .context("creating producer")?;
    let payload = [0u8; 100];
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let failed_before = deliveries.failed.load(Ordering::Relaxed);
        producer
            .send(BaseRecord::<(), [u8]>::to(&a.topic).payload(&payload[..]))
            .map_err(|(e, _)| anyhow::anyhow!("send: {e}"))?;
        while deliveries.acked.load(Ordering::Relaxed) == 0
            && deliveries.failed.load(Ordering::Relaxed) == failed_before
        {
            if Instant::now() > deadline {
                bail!("no acknowledgement in {} s", a.timeout);
            }
            producer.poll(Duration::from_millis(1));
        }
        if deliveries.acked.load(Ordering::Relaxed) > 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("every attempt failed in {} s", a.timeout);
        }
    }
    let first_produce_ms = ms_since();
    let mut r = Report::new("first", "");
    r.num("accepting_ms", accepting_ms)
        .num("first_produce_ms", first_produce_ms)
        .num("attempts", f64::from(attempts));
    Ok(r)
}
