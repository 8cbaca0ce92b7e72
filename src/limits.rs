//! Every fixed bound of the broker, in one table: what it bounds, why that value, and (at the
//! bottom) the relations between bounds, checked at compile time.
//!
//! Names follow the repository's rule: the quantity, its unit, then `_MAX` / `_MIN` for a bound
//! (`QUEUED_REQUEST_BYTES_MAX`); `DEFAULT_` prefixes the default of a setting that the
//! configuration may change (those settings are validated against the fixed bounds here, e.g.
//! `TopicConfig::validate` against `RECOVERY_BATCH_BYTES_MAX`).
//!
//! Invariant: a bound that a reader enforces (recovery, the metadata decoder) is never below
//! what the corresponding writer may write, or an acknowledged write is cut as damage at the
//! next start. Where the writer's size is configurable, the configuration is refused instead.
//!
//! Not here: protocol and file-format constants (header sizes in `storage::batch`, index entry
//! widths), and the vendored `kafka-protocol` fork's own bounds (`DECOMPRESSED_BYTES_MAX`,
//! `SHARED_CHUNK_MIN_BYTES`), which belong to the fork.

// ---- Storage ---------------------------------------------------------------------------------

/// Largest batch the crash-recovery scan (`storage::recovery`) buffers; a batch claiming more is
/// treated as a torn write and the segment is truncated before it. 256 MiB: far above any
/// batch a Kafka client sends (its `max.request.size` defaults to 1 MiB), small enough to
/// buffer once at startup. Therefore also the largest `max.message.bytes` the configuration
/// accepts (broker default or per topic): a larger accepted batch would be cut at the next
/// unclean start.
pub const RECOVERY_BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Default largest record batch a topic accepts (Kafka's `max.message.bytes` default,
/// 1048588): 1 MiB plus the 12-byte log overhead (base offset and length).
pub const DEFAULT_MESSAGE_BYTES_MAX: u32 = 1024 * 1024 + 12;

/// Least time between two attempts to heal a poisoned log (each one rescans its tail).
pub const HEAL_RETRY_MS: i64 = 1000;

/// Memory of the log cleaner's key → offset map (Kafka's `log.cleaner.dedupe.buffer.size`,
/// 128 MiB shared by its threads; we run one). 24 bytes a key: about 630,000 keys per pass
/// at a 0.9 load factor; a dirty section with more keys is cleaned in several passes.
pub const CLEANER_DEDUPE_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// The most map memory `log.cleaner.dedupe.buffer.size` takes effect with (Kafka caps it at
/// `Int.MaxValue` bytes per cleaner thread); a larger value is accepted and capped.
pub const CLEANER_DEDUPE_BUFFER_BYTES_MAX: usize = i32::MAX as usize;

/// The cleaner's read chunk and write buffer (Kafka's `log.cleaner.io.buffer.size`, 512 KiB).
/// A batch larger than this is read alone (at most `RECOVERY_BATCH_BYTES_MAX`).
pub const CLEANER_IO_BUFFER_BYTES: usize = 512 * 1024;

// ---- Broker metadata -------------------------------------------------------------------------

/// Records the transaction coordinator's state log (`__transactions.meta`) may hold before it
/// is compacted to one record per live transactional id (also at least twice the live ids,
/// so a compaction always halves it). At ~100 bytes a record: about 1 MiB.
pub const TXN_LOG_COMPACT_RECORDS_MIN: usize = 10_000;

/// Longest an EndTxn or InitProducerId request (and the embedded producer's
/// `commit_transaction`) waits for a transaction's markers to become durable before it is
/// answered anyway (the broker's produce timeout if shorter). 10 s: well inside a client's
/// request timeout (Java's 30 s), so a stalled partition never makes the client retry.
pub const TXN_COMPLETION_WAIT_MS_MAX: u64 = 10_000;

/// Longest transactional id the coordinator accepts, in bytes: `i16::MAX`, the most a
/// non-flexible Kafka string can carry (a flexible request could carry more); the state log
/// record stores it with a `u16` length. A longer one is refused with INVALID_REQUEST.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Least time between two attempts to write a transaction marker that failed (a poisoned or
/// full partition log); the decision stays `Prepare*` until every marker is written.
pub const TXN_MARKER_RETRY_MS: i64 = 1000;

/// Largest record of the broker's metadata files (`__topics.meta`, `__consumer_offsets.meta`,
/// `broker::record_log`); a larger length field is treated as corruption. 16 MiB: a topic
/// record is a few hundred bytes (name ≤ `TOPIC_NAME_BYTES_MAX` plus a fixed-size config).
pub const METADATA_RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Largest committed-offset metadata string of one partition, in bytes (Kafka's
/// `offset.metadata.max.bytes` default, 4096). OffsetCommit answers a partition whose metadata
/// is longer with OFFSET_METADATA_TOO_LARGE and writes nothing for it, as Kafka does; this keeps
/// each offset record far below `METADATA_RECORD_BYTES_MAX` (checked below).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Longest group id an offset commit accepts, in bytes: `i16::MAX`, the most a classic
/// (non-compact) protocol string carries. Kafka sets no limit of its own, but a compact string
/// can be far longer, and every offset record repeats the group id, so it is bounded for the
/// record-size relation below; a longer id is refused with INVALID_GROUP_ID.
pub const GROUP_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Bytes of an offset record besides its group id, topic name and metadata: the frame header
/// (8), the record version byte, bincode's enum tag (4), three `u64` string lengths and the
/// `Option` tag (25), partition, offset, leader epoch and commit timestamp (24). Rounded up.
pub const OFFSET_RECORD_OVERHEAD_BYTES: usize = 128;

/// How long an OffsetCommit waits for its records to be fsynced (Kafka's
/// `offsets.commit.timeout.ms` default); then the wire answer is COORDINATOR_NOT_AVAILABLE
/// (retriable, as Kafka maps a timed-out offsets append) and the embedded call fails with
/// `Error::Timeout`.
pub const OFFSET_COMMIT_TIMEOUT_MS: u64 = 5_000;

/// Kafka's limit on topic name length. Also keeps a partition directory name
/// (`<topic>-<partition>`) within a file name's 255 bytes (checked below).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Largest partition count of one topic (CreateTopics, CreatePartitions, auto-creation).
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;

/// Default of `BrokerConfig::max_partitions`, all topics together: a partition keeps one open
/// file per segment (its `.log`; see `storage::segment`), so 16,384 partitions of one segment
/// fit a 20,000 open-files limit with room for connections; partitions of many segments need
/// the limit raised along with it.
pub const DEFAULT_PARTITIONS_MAX: u32 = 16_384;

/// Longest wait between two passes over group offsets for expiry.
pub const OFFSETS_EXPIRY_CHECK_INTERVAL_MS: i64 = 60_000;

/// How often housekeeping looks for expired idempotent producers, at most (Kafka: every 10
/// minutes); a tenth of the expiration when that is shorter.
pub const PRODUCER_EXPIRY_CHECK_INTERVAL_MS: i64 = 60_000;

// ---- Consumer groups -------------------------------------------------------------------------

/// Smallest rebalance timeout honoured (clients sending less get this).
pub const REBALANCE_TIMEOUT_MIN_MS: i32 = 1_000;

/// Shortest wait the coordinator's `poll` suggests, so a waiter never spins on a deadline that
/// just passed.
pub const POLL_AGAIN_MIN_MS: i64 = 10;

/// Calls one embedded-consumer membership `step` may make before it yields (bounds work after
/// repeated retriable errors).
pub const STEP_CALLS_MAX: usize = 8;

/// Wait of an embedded consumer before rejoining after a retriable error.
pub const RETRY_BACKOFF_MS: i64 = 100;

// ---- Network ---------------------------------------------------------------------------------

/// Default largest request frame (`ServerConfig::request_bytes_max`, Kafka's
/// `socket.request.max.bytes`, 100 MiB). The frame decoder refuses a larger size prefix.
pub const DEFAULT_REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;

/// Default budget of request bytes queued to workers, all connections together
/// (`ServerConfig::job_queue_bytes_max`, Kafka's `queued.max.request.bytes`); over it the
/// reactor stops handing out requests.
pub const DEFAULT_JOB_QUEUE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Default number of requests waiting for a worker (`ServerConfig::job_queue_len_max`).
pub const DEFAULT_JOB_QUEUE_LEN_MAX: usize = 1024;

/// One connection stops being read once this many bytes of complete-but-unhandled requests
/// are queued on it (backpressure by not reading): 4 MiB holds a pipeline of default-sized
/// produce requests without letting one client hold much of the job queue budget.
pub const QUEUED_REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Most requests of one connection handed to workers and not yet answered (the one being
/// processed plus Produce requests parked until durable). Also bounds, per connection, the
/// reply and retry channels, which are unbounded channels for that reason.
pub const PIPELINED_MAX: u64 = 128;

/// Most requests of one connection handed to a worker as one job, run back to back in order
/// (`Job::Requests`). A client that pipelines small requests (the Java producer: 16 KiB
/// batches, 5 in flight) then costs one hand-off reactor → worker → reactor per job instead of
/// per request, which on a small VM costs more than the request's own work.
pub const JOB_REQUESTS_MAX: usize = 16;

/// Most bytes of requests in one job beyond its first request (a job always takes at least
/// one, whatever its size): one worker runs them in sequence while the connection's later
/// requests wait, so a job is kept short.
pub const JOB_BYTES_MAX: usize = 1024 * 1024;

/// Most chunks handed to one `write_vectored` call (Linux accepts up to `IOV_MAX` = 1024 per
/// `writev`; a few dozen already cover a socket buffer's worth of Fetch chunks).
pub const WRITE_SLICES_MAX: usize = 64;

/// Most bytes of encrypted TLS records one connection's rustls buffers before the socket has
/// taken them; plaintext is handed to rustls only below it (`server/transport.rs`), so a large
/// Fetch response over TLS costs this much beside its shared chunks, not a second copy of
/// itself. 256 KiB: 16 full records, a few `writev` calls per MiB; far below a loopback or
/// LAN socket's send buffer, so the socket, not this bound, decides the pace.
pub const TLS_SEND_BUFFER_BYTES: usize = 256 * 1024;

/// How long shutdown waits for in-flight requests to finish.
pub const SHUTDOWN_DRAIN_MS: u64 = 10_000;

/// How soon a failed `accept` (out of descriptors) is retried if no connection closes first.
pub const ACCEPT_RETRY_MS: u64 = 100;

// ---- Security (SASL) -------------------------------------------------------------------------

/// Fewest PBKDF2 iterations a SCRAM credential may have (Kafka's `ScramMechanism.minIterations`,
/// 4096 for SHA-256 and SHA-512, RFC 7677's minimum); fewer is refused when stored.
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;

/// Most iterations a SCRAM credential may have (Kafka's `ScramControlManager.MAX_ITERATIONS`):
/// every PLAIN login on a SCRAM credential runs them on a worker.
pub const SCRAM_ITERATIONS_MAX: u32 = 16_384;

/// Iterations of a credential `thorstream users add` creates (Kafka's `kafka-configs` and
/// `kafka-storage --add-scram` default).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

/// Bytes of a salt the broker draws (Kafka's `ScramFormatter` draws 32 random bytes' worth).
pub const SCRAM_SALT_BYTES: usize = 32;

/// Largest salt or salted password accepted from AlterUserScramCredentials (a SHA-512 output
/// is 64 bytes; Kafka bounds neither, but a credential record must stay small).
pub const SCRAM_CREDENTIAL_FIELD_BYTES_MAX: usize = 1024;

/// Longest user name a credential may have, in bytes (a record field's `u16` length).
pub const SCRAM_USERNAME_BYTES_MAX: usize = u16::MAX as usize;

// ---- Operating-system bounds the ones above are checked against -------------------------------

/// Linux's `IOV_MAX`: most buffers one `writev` takes.
const IOV_MAX: usize = 1024;
/// Linux's `NAME_MAX`: longest file name, in bytes.
const FILE_NAME_BYTES_MAX: usize = 255;

const fn decimal_digits(mut n: u32) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

// ---- Relations -------------------------------------------------------------------------------

// A batch the broker accepts by default fits in a request the server accepts by default.
const _: () = assert!(DEFAULT_MESSAGE_BYTES_MAX as usize <= DEFAULT_REQUEST_BYTES_MAX);
// The default `max.message.bytes` passes `TopicConfig::validate` (a batch that large survives
// crash recovery).
const _: () = assert!(DEFAULT_MESSAGE_BYTES_MAX as usize <= RECOVERY_BATCH_BYTES_MAX);
// Every `max.message.bytes` validation accepts is representable: the config field is a u32 and
// a batch's length field an i32.
const _: () = assert!(RECOVERY_BATCH_BYTES_MAX <= i32::MAX as usize);

// A credential `thorstream users add` makes is one the store accepts.
const _: () = assert!(
    SCRAM_ITERATIONS_MIN <= DEFAULT_SCRAM_ITERATIONS
        && DEFAULT_SCRAM_ITERATIONS <= SCRAM_ITERATIONS_MAX
);
// One request of the largest default size fits in the default job-queue budget, so the
// budget bounds queued memory as documented (a single larger request is still admitted alone).
const _: () = assert!(DEFAULT_REQUEST_BYTES_MAX <= DEFAULT_JOB_QUEUE_BYTES_MAX);
// One connection's queue cannot take the whole job-queue budget by itself.
const _: () = assert!(QUEUED_REQUEST_BYTES_MAX < DEFAULT_JOB_QUEUE_BYTES_MAX);
// A connection can have its one request in progress at all.
const _: () = assert!(PIPELINED_MAX >= 1);
// A job takes at least one request.
const _: () = assert!(JOB_REQUESTS_MAX >= 1);
// `write_vectored` never passes more buffers than `writev` takes.
const _: () = assert!(WRITE_SLICES_MAX >= 1 && WRITE_SLICES_MAX <= IOV_MAX);
// rustls can always buffer at least one full TLS record (16 KiB of plaintext and its overhead).
const _: () = assert!(TLS_SEND_BUFFER_BYTES >= 17 * 1024);
// A partition directory `<topic>-<partition>` of the longest name and highest index is a
// valid file name.
const _: () = assert!(
    TOPIC_NAME_BYTES_MAX + 1 + decimal_digits(PARTITIONS_PER_TOPIC_MAX - 1) <= FILE_NAME_BYTES_MAX
);
// Partition indexes are i32 on the wire; the broker's default total admits a topic of at
// least one partition.
const _: () = assert!(PARTITIONS_PER_TOPIC_MAX <= i32::MAX as u32 && DEFAULT_PARTITIONS_MAX >= 1);
// The largest offset record an OffsetCommit can write (longest group id, topic name and
// metadata) is one the metadata reader accepts, so no acknowledged commit is cut at restart.
const _: () = assert!(
    GROUP_ID_BYTES_MAX
        + TOPIC_NAME_BYTES_MAX
        + OFFSET_METADATA_BYTES_MAX
        + OFFSET_RECORD_OVERHEAD_BYTES
        < METADATA_RECORD_BYTES_MAX
);
// An embedded step makes at least one call.
const _: () = assert!(STEP_CALLS_MAX >= 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_counts_digits() {
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(9_999), 4);
        assert_eq!(decimal_digits(u32::MAX), 10);
    }
}
