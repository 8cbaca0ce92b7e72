#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile input against the real server, in-process on a free loopback port: garbage bodies
//! for every implemented API and version, lengths far beyond the frame, corrupt record batches,
//! decompression bombs and slowloris clients. Each must get a clear error or a closed
//! connection, never a crash or a panic in a server thread; the broker keeps serving fresh
//! connections; and memory stays bounded (peak RSS of this process, `VmHWM`, reset through
//! `/proc/self/clear_refs` before each measurement).
//!
//! Malformed framing (negative, zero or oversized size prefixes, truncated headers, unknown
//! API keys or versions) is covered by `tests/wire_errors.rs`.
//!
//! The tests in this file run one at a time (they measure the memory of the whole process).
//! `THORSTREAM_HOSTILE_SEED` / `THORSTREAM_HOSTILE_CASES` (garbage bodies per API version)
//! override the defaults.

mod common;

use common::requests::{batch, produce_request, topic_name, valid_body};
use common::server::{Fixture, start_wire};
use common::wire::{frame, read_frame, request, response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use thorstream::internals::storage::batch::rewrite_crc;
use thorstream::internals::supported_apis;

const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Harness: serial execution, panic accounting, memory, a server on a free port.

static SERIAL: Mutex<()> = Mutex::new(());
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// Runs the tests of this file one at a time and counts panics in the server's threads.
fn serial() -> MutexGuard<'static, ()> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("thorstream-"))
            {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn assert_no_server_panics() {
    assert_eq!(
        SERVER_PANICS.load(Ordering::SeqCst),
        0,
        "a server thread panicked (see the output above)"
    );
}

/// A kB figure from `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Peak RSS of this process since `reset_peak`, in bytes.
fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0); returns the new baseline in bytes.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM via /proc/self/clear_refs");
    peak_rss()
}

fn connect(f: &Fixture) -> TcpStream {
    let s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// ApiVersions over a fresh connection is answered promptly: the broker still serves others.
fn assert_serving(f: &Fixture, context: &dyn std::fmt::Display) {
    let started = Instant::now();
    let mut s = connect(f);
    s.write_all(&request(
        ApiKey::ApiVersions,
        3,
        7,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let mut b = read_frame(&mut s).unwrap_or_else(|| panic!("not serving after {context}"));
    let header = ResponseHeader::decode(&mut b, 0).unwrap();
    let resp = ApiVersionsResponse::decode(&mut b, 3).unwrap();
    assert_eq!(
        (header.correlation_id, resp.error_code),
        (7, 0),
        "{context}"
    );
    // A liveness bound, not a speed target: generous, because a metadata fsync on a loaded
    // machine can wait seconds behind other files' writeback (ext4 journal commit).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "slow to serve after {context}"
    );
}

/// Sends `bytes` on a fresh connection and waits up to `wait` for a response frame or the
/// close. Returns what happened, for the statistics.
fn probe(f: &Fixture, bytes: &[u8], wait: Duration) -> Outcome {
    let mut s = connect(f);
    s.set_read_timeout(Some(wait)).unwrap();
    if s.write_all(bytes).is_err() {
        return Outcome::Closed;
    }
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => Outcome::Answered,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Outcome::Pending
        }
        Err(_) => Outcome::Closed,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Answered,
    Closed,
    /// No answer within the wait (a parked request, e.g. a long-poll Fetch or a JoinGroup).
    Pending,
}

/// SplitMix64: a tiny seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Mutations of the well-formed requests in `common::requests`.

/// One hostile body for `api`/`version`, by a randomly chosen strategy.
fn hostile_body(rng: &mut Rng, valid: Option<&[u8]>) -> Vec<u8> {
    let Some(valid) = valid.filter(|v| !v.is_empty()) else {
        let n = if rng.below(2) == 0 { 64 } else { 2048 };
        let len = rng.below(n) as usize;
        return rng.bytes(len);
    };
    let mut b = valid.to_vec();
    let len = b.len() as u64;
    match rng.below(7) {
        0 => {
            let len = rng.below(64) as usize;
            rng.bytes(len)
        }
        1 => {
            // Flip 1..8 random bytes.
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(len) as usize;
                b[i] ^= 1 + rng.below(255) as u8;
            }
            b
        }
        2 => {
            b.truncate(rng.below(len) as usize);
            b
        }
        3 => {
            let extra = rng.below(64) as usize;
            b.extend(rng.bytes(extra));
            b
        }
        4 => {
            // An extreme 32-bit value (lengths, counts, ids, timeouts) at a random position.
            let v: [i32; 5] = [i32::MAX, -1, i32::MIN, 0x0100_0000, -2];
            let at = rng.below(len.saturating_sub(3).max(1)) as usize;
            let bytes = v[rng.below(5) as usize].to_be_bytes();
            for (k, x) in bytes.iter().enumerate() {
                if let Some(slot) = b.get_mut(at + k) {
                    *slot = *x;
                }
            }
            b
        }
        5 => {
            // An extreme 64-bit value (offsets, timestamps, retention) at a random position.
            let v: [i64; 4] = [i64::MAX, i64::MIN, -1, -3];
            let at = rng.below(len.saturating_sub(7).max(1)) as usize;
            let bytes = v[rng.below(4) as usize].to_be_bytes();
            for (k, x) in bytes.iter().enumerate() {
                if let Some(slot) = b.get_mut(at + k) {
                    *slot = *x;
                }
            }
            b
        }
        _ => {
            // A maximal unsigned varint (compact lengths of flexible versions) spliced in.
            let at = rng.below(len) as usize;
            b.splice(at..at, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            b
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn garbage_bodies_for_every_api_and_version_never_take_the_broker_down() {
    let _serial = serial();
    let f = start_wire(64 * 1024, |_| {});
    let seed = env_u64("THORSTREAM_HOSTILE_SEED", 0x6057_11e5);
    let cases = env_u64("THORSTREAM_HOSTILE_CASES", 48);
    let mut rng = Rng(seed);
    let mut outcomes = std::collections::BTreeMap::new();
    let mut sent = 0u64;
    for (api, min, max) in supported_apis() {
        for version in min..=max {
            let valid = valid_body(api, version);
            for case in 0..cases {
                let body = hostile_body(&mut rng, valid.as_deref());
                let bytes = frame(api, version, case as i32, &body);
                let outcome = probe(&f, &bytes, Duration::from_millis(100));
                *outcomes.entry(outcome).or_insert(0u64) += 1;
                sent += 1;
                assert_serving(
                    &f,
                    &format!("{api:?} v{version} case {case} (seed {seed}): {body:02x?}"),
                );
            }
        }
    }
    assert_no_server_panics();
    eprintln!(
        "seed {seed}: {sent} hostile requests over {} APIs: {outcomes:?}",
        supported_apis().count()
    );
}

#[test]
fn lengths_far_beyond_the_frame_allocate_nothing_by_the_count() {
    let _serial = serial();
    let f = start_wire(64 * 1024, |_| {});
    let baseline = reset_peak();
    let mut sent = 0;
    for (api, min, max) in supported_apis() {
        for version in min..=max {
            let mut bodies: Vec<Vec<u8>> = vec![
                // Array / string / bytes lengths of 2^31-1 (classic encodings).
                [0x7f, 0xff, 0xff, 0xff].repeat(16),
                // i16 string lengths of 32767 with nothing behind them.
                [0x7f, 0xff].repeat(16),
                // Unsigned varints of 2^32-1 (compact encodings of flexible versions).
                [0xff, 0xff, 0xff, 0xff, 0x0f].repeat(16),
            ];
            // Every 4-byte window of a well-formed body replaced by 2^31-1 in turn: one of
            // them is each length field the request has.
            if let Some(valid) = valid_body(api, version) {
                for at in 0..valid.len().saturating_sub(3) {
                    let mut b = valid.clone();
                    b[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
                    bodies.push(b);
                }
            }
            for body in bodies {
                probe(
                    &f,
                    &frame(api, version, 1, &body),
                    Duration::from_millis(100),
                );
                sent += 1;
            }
            assert_serving(&f, &format!("{api:?} v{version}"));
        }
    }
    let grown = peak_rss().saturating_sub(baseline);
    eprintln!(
        "{sent} requests with lengths beyond their frame: peak RSS +{} KiB",
        grown / 1024
    );
    assert!(grown < 64 * MIB, "peak RSS grew by {} MiB", grown / MIB);
    assert_no_server_panics();
}

// ---------------------------------------------------------------------------------------------
// Record batches.

fn produce_code(s: &mut TcpStream, records: Option<Bytes>) -> i16 {
    s.write_all(&request(
        ApiKey::Produce,
        7,
        3,
        &produce_request("t", 0, records, 1),
    ))
    .unwrap();
    let (_, resp): (i32, ProduceResponse) = response(s, 0, 7);
    resp.responses[0].partition_responses[0].error_code
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn fix_crc(mut b: Vec<u8>) -> Vec<u8> {
    let total = b.len();
    rewrite_crc(&mut b, total);
    b
}

#[test]
fn corrupt_record_batches_are_refused_and_nothing_is_stored() {
    let _serial = serial();
    let f = start_wire(64 * 1024, |_| {});
    let good = batch(&[b"one", b"two", b"three"]);
    let n = good.len();
    let mut cases: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
    let mut b = good.clone();
    b[n - 1] ^= 0x40;
    cases.push(("flipped byte under the CRC", Some(b)));
    let mut b = good.clone();
    b[18] ^= 0x01;
    cases.push(("wrong CRC field", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 8, (n - 12 + 100) as i32);
    cases.push(("length beyond the data", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 8, 10);
    cases.push(("length shorter than a header", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 8, -5);
    cases.push(("negative length", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 8, (n - 12 - 5) as i32);
    cases.push(("length cutting into the last record", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 8, i32::MAX);
    cases.push(("length i32::MAX", Some(b)));
    let mut b = good.clone();
    set_i32(&mut b, 57, 0);
    cases.push(("record count 0", Some(fix_crc(b))));
    let mut b = good.clone();
    set_i32(&mut b, 57, 4);
    cases.push(("record count != last offset delta + 1", Some(fix_crc(b))));
    let mut b = good.clone();
    set_i32(&mut b, 57, 4);
    set_i32(&mut b, 23, 3);
    cases.push((
        "count 4, header consistent, 3 records in the body",
        Some(fix_crc(b)),
    ));
    let mut b = good.clone();
    set_i32(&mut b, 57, 2);
    set_i32(&mut b, 23, 1);
    cases.push((
        "count 2, header consistent, 3 records in the body",
        Some(fix_crc(b)),
    ));
    let mut b = good.clone();
    set_i32(&mut b, 57, i32::MAX);
    set_i32(&mut b, 23, i32::MAX - 1);
    cases.push(("count i32::MAX", Some(fix_crc(b))));
    let mut b = good.clone();
    set_i32(&mut b, 23, -1);
    cases.push(("negative last offset delta", Some(fix_crc(b))));
    let mut b = good.clone();
    b[61] = 0x01; // first record's length varint: zigzag -1
    cases.push(("negative record length", Some(fix_crc(b))));
    for magic in [0u8, 1, 3, 0xff] {
        let mut b = good.clone();
        b[16] = magic;
        cases.push((
            ["magic 0", "magic 1", "magic 3", "magic -1"][usize::from(magic.min(3))],
            Some(b),
        ));
    }
    let mut b = good.clone();
    b.extend_from_slice(&good[..30]);
    cases.push(("valid batch then a torn one", Some(b)));
    let mut b = good.clone();
    let mut second = good.clone();
    second[n - 1] ^= 0x40;
    b.extend(second);
    cases.push(("valid batch then a corrupt one", Some(b)));
    cases.push(("empty records", Some(Vec::new())));
    cases.push(("null records", None));
    cases.push(("a bare header", Some(good[..61].to_vec())));

    let mut s = connect(&f);
    for (what, bytes) in cases {
        let code = produce_code(&mut s, bytes.map(Bytes::from));
        assert_ne!(code, 0, "{what}: accepted");
        let o = f.broker.offsets("t", 0).unwrap();
        assert_eq!(o.log_end_offset, 0, "{what}: something was stored");
    }
    // The same connection still works.
    assert_eq!(produce_code(&mut s, Some(Bytes::from(good))), 0);
    assert_eq!(f.broker.offsets("t", 0).unwrap().log_end_offset, 3);
    assert_no_server_panics();
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs.

/// A batch of one record whose records section is `payload` compressed with `codec`
/// (1 gzip, 4 zstd), with a correct CRC.
fn compressed_batch(codec: i16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 61];
    b[16] = 2; // magic
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[23..27].copy_from_slice(&0i32.to_be_bytes()); // last offset delta
    b[27..35].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b[35..43].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&1i32.to_be_bytes()); // record count
    b.extend_from_slice(payload);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(b)
}

/// A zstd frame of 8192 RLE blocks of 128 KiB of zeros: 32 KiB that decompress to 1 GiB.
fn zstd_bomb() -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // magic, no FCS, 128 KiB window
    for i in 0..8192u32 {
        let header = (131_072u32 << 3) | (1 << 1) | u32::from(i == 8191);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// Deflate bits, least significant first (RFC 1951 §3.1.1).
struct Bits {
    out: Vec<u8>,
    acc: u8,
    n: u8,
}

impl Bits {
    fn bit(&mut self, b: u32) {
        self.acc |= ((b & 1) as u8) << self.n;
        self.n += 1;
        if self.n == 8 {
            self.out.push(self.acc);
            (self.acc, self.n) = (0, 0);
        }
    }
    /// A number, least significant bit first.
    fn num(&mut self, v: u32, n: u32) {
        (0..n).for_each(|i| self.bit(v >> i));
    }
    /// A Huffman code, most significant bit first.
    fn code(&mut self, c: u32, n: u32) {
        (0..n).rev().for_each(|i| self.bit(c >> i));
    }
    fn zeros(&mut self, mut n: u64) {
        while n > 0 && self.n != 0 {
            self.bit(0);
            n -= 1;
        }
        self.out.resize(self.out.len() + (n / 8) as usize, 0);
        (0..n % 8).for_each(|_| self.bit(0));
    }
}

/// A gzip member holding one dynamic-Huffman deflate block that decodes to 1 GiB of zeros:
/// codes of 1 bit for "length 258" and "distance 1", so each 258 bytes cost 2 bits (~1 MiB).
fn gzip_bomb() -> Vec<u8> {
    const TOTAL: u64 = 1 << 30;
    let matches = (TOTAL - 1) / 258;
    let tail_literals = TOTAL - 1 - 258 * matches;
    let mut w = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    w.num(1, 1); // final block
    w.num(2, 2); // dynamic Huffman
    w.num(29, 5); // 286 literal/length codes
    w.num(0, 5); // 1 distance code
    w.num(14, 4); // 18 code-length code lengths
    // Code-length alphabet: 18 → "0", 1 → "10", 2 → "11" (order 16,17,18,0,8,...,2,14,1).
    for len in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] {
        w.num(len, 3);
    }
    // Literal/length lengths: 0 → 2, 1..=255 → 0, 256 → 2, 257..=284 → 0, 285 → 1; distance 0 → 1.
    // Resulting codes: 285 → "0", literal 0 → "10", end of block → "11"; distance 1 → "0".
    w.code(3, 2);
    w.code(0, 1);
    w.num(127, 7); // 138 zeros
    w.code(0, 1);
    w.num(106, 7); // 117 zeros
    w.code(3, 2);
    w.code(0, 1);
    w.num(17, 7); // 28 zeros
    w.code(2, 2);
    w.code(2, 2);
    w.code(2, 2); // literal 0
    w.zeros(2 * matches); // (length 258, distance 1) repeated
    (0..tail_literals).for_each(|_| w.code(2, 2));
    w.code(3, 2); // end of block
    if w.n > 0 {
        w.out.push(w.acc);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&vec![0u8; 1 << 20]);
    for _ in 0..10 {
        let copy = crc.clone();
        crc.combine(&copy);
    }
    let mut out = w.out;
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(TOTAL as u32).to_le_bytes());
    out
}

/// A zstd stream of well-framed 4 KiB records (so counting has to inflate all of it) that
/// inflates to `mib` MiB: past the 128 MiB bound the count is refused.
fn framed_zstd_bomb(mib: usize) -> Vec<u8> {
    let mut one = vec![0x80, 0x40]; // zigzag varint of 4096
    one.extend(std::iter::repeat_n(0u8, 4096));
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    for _ in 0..mib * 1024 * 1024 / one.len() {
        enc.write_all(&one).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn decompression_bombs_are_refused_without_inflating_into_memory() {
    let _serial = serial();
    let f = start_wire(4 * 1024 * 1024, |c| c.request_bytes_max = 8 * 1024 * 1024);
    let bombs = [
        ("zstd", compressed_batch(4, &zstd_bomb())),
        ("gzip", compressed_batch(1, &gzip_bomb())),
        ("framed zstd", compressed_batch(4, &framed_zstd_bomb(200))),
    ];
    let baseline = reset_peak();
    let mut s = connect(&f);
    let mut stored = 0;
    for (codec, bomb) in &bombs {
        for _ in 0..3 {
            let code = produce_code(&mut s, Some(Bytes::from(bomb.clone())));
            eprintln!(
                "{codec} bomb of {} KiB: produce error code {code}",
                bomb.len() / 1024
            );
            // Counting its records inflates it as a stream: refused as corrupt (2), either
            // at its first malformed record or at the 128 MiB bound.
            assert_eq!(code, 2, "{codec} bomb");
            stored += usize::from(code == 0);
        }
    }
    let after_produce = peak_rss().saturating_sub(baseline);
    // Fetch returns the stored bytes as they are: nothing is inflated on the way out.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(64 << 20),
                ]),
        ]);
    s.write_all(&request(ApiKey::Fetch, 11, 4, &fetch)).unwrap();
    let (_, resp): (i32, FetchResponse) = response(&mut s, 0, 11);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    if stored > 0 {
        let fetched = p.records.clone().unwrap_or_default();
        let first = &bombs[0].1;
        assert!(
            fetched.len() >= first.len() && fetched[8..first.len()] == first[8..],
            "fetch returns the stored bytes (base offset aside)"
        );
    }
    // ListOffsets by timestamp makes the broker itself decode the first batch at or after the
    // timestamp: bounded decompression turns the bomb into an error for that partition.
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(0),
                ]),
        ]);
    s.write_all(&request(ApiKey::ListOffsets, 5, 5, &list))
        .unwrap();
    let (_, resp): (i32, ListOffsetsResponse) = response(&mut s, 0, 5);
    let code = resp.topics[0].partitions[0].error_code;
    eprintln!("ListOffsets by timestamp over the bombs: error code {code}");
    // The embedded consumer decodes too: an error, not 1 GiB.
    let embedded = f.broker.read_records("t", 0, 0, 1 << 20);
    eprintln!(
        "embedded read of the bombs: {:?}",
        embedded
            .as_ref()
            .map(|r| r.0.len())
            .map_err(ToString::to_string)
    );
    let grown = peak_rss().saturating_sub(baseline);
    eprintln!(
        "{stored} of 9 bombs stored; peak RSS +{} MiB after produce, +{} MiB after fetch, \
         ListOffsets and an embedded read",
        after_produce / MIB,
        grown / MIB
    );
    assert!(
        after_produce < 64 * MIB,
        "produce inflated: +{} MiB",
        after_produce / MIB
    );
    assert!(grown < 512 * MIB, "decoding inflated: +{} MiB", grown / MIB);
    assert!(embedded.is_err() || stored == 0);
    assert_serving(&f, &"the bombs");
    assert_no_server_panics();
}

#[test]
fn compressed_batches_must_hold_the_records_their_header_counts() {
    let _serial = serial();
    let f = start_wire(1024 * 1024, |_| {});
    let mut s = connect(&f);
    // Three well-formed records (length prefix + 7 minimal bytes each), compressed.
    let mut records = Vec::new();
    for _ in 0..3 {
        records.push(14); // zigzag varint of 7
        records.extend_from_slice(&[0, 0, 0, 0, 1, 1, 0]);
    }
    for (codec, body) in [
        ("gzip", {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&records).unwrap();
            e.finish().unwrap()
        }),
        ("zstd", zstd::encode_all(&records[..], 1).unwrap()),
    ] {
        let codec_id = if codec == "gzip" { 1 } else { 4 };
        // The header (CRC correct) claims one record: refused, nothing stored.
        let lying = compressed_batch(codec_id, &body);
        assert_eq!(produce_code(&mut s, Some(Bytes::from(lying))), 2, "{codec}");
        // The same batch claiming three is stored.
        let mut honest = compressed_batch(codec_id, &body);
        honest[23..27].copy_from_slice(&2i32.to_be_bytes());
        honest[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(
            produce_code(&mut s, Some(Bytes::from(fix_crc(honest)))),
            0,
            "{codec}"
        );
    }
    let end = f.broker.offsets("t", 0).unwrap().log_end_offset;
    assert_eq!(end, 6, "only the two honest batches took offsets");
    assert_serving(&f, &"lying compressed batches");
    assert_no_server_panics();
}

// ---------------------------------------------------------------------------------------------
// Slowloris.

#[test]
fn slowloris_clients_neither_block_others_nor_reserve_memory() {
    let _serial = serial();
    let f = start_wire(64 * 1024, |c| {
        c.request_bytes_max = 100 * 1024 * 1024;
        c.connection_idle_ms = 1500;
    });
    let baseline = reset_peak();
    let mut slow = Vec::new();
    // 200 clients announce a 100 MiB request (the limit) and send 1 KiB of it; 50 send two
    // bytes of a size prefix; 50 send a header and half a Produce body.
    for _ in 0..200 {
        let mut s = connect(&f);
        s.write_all(&(100 * 1024 * 1024 - 1i32).to_be_bytes())
            .unwrap();
        s.write_all(&[0u8; 1024]).unwrap();
        slow.push(s);
    }
    for _ in 0..50 {
        let mut s = connect(&f);
        s.write_all(&[0, 0]).unwrap();
        slow.push(s);
    }
    let produce = request(
        ApiKey::Produce,
        7,
        9,
        &produce_request("t", 1, Some(Bytes::from(batch(&[b"slow"]))), 1),
    );
    for _ in 0..50 {
        let mut s = connect(&f);
        s.write_all(&produce[..produce.len() / 2]).unwrap();
        slow.push(s);
    }
    // Everyone else is served meanwhile, promptly.
    let started = Instant::now();
    for i in 0..20 {
        assert_serving(&f, &format!("slowloris, round {i}"));
    }
    let mut p = connect(&f);
    assert_eq!(
        produce_code(&mut p, Some(Bytes::from(batch(&[b"fast"])))),
        0
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let grown = peak_rss().saturating_sub(baseline);
    eprintln!(
        "{} slow connections (200 announcing 100 MiB requests): peak RSS +{} KiB",
        slow.len(),
        grown / 1024
    );
    assert!(grown < 64 * MIB, "slow clients cost {} MiB", grown / MIB);
    // Idle half-frames are cut after the idle timeout (1.5 s): each read ends at the close.
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in &mut slow {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 8];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("slow connection still open after the idle timeout: {other:?}"),
        }
    }
    assert_serving(&f, &"the idle timeout");
    assert_no_server_panics();
}
