//! Response encoding: size prefix, response header, body, as a frame of `Bytes` chunks.
//!
//! A Fetch response is encoded into a `SegmentedBuf`: the size prefix, header and fields are
//! written inline, and every records payload of at least `SHARED_CHUNK_MIN_BYTES` becomes a
//! chunk of its own that shares the buffer the handler pread the stored batches into, or, on
//! a plain socket, a range of the segment file never read at all: the payload is encoded as a
//! stand-in of its length (`file_stand_in`) and the range takes the stand-in's place
//! (`encode_fetch_from_files`), for the connection to `sendfile`.
//! Invariant: records are never copied between the pread and the socket (the connection
//! writes the chunks with `write_vectored`); smaller payloads are copied into the inline chunk,
//! where that is cheaper than an iovec. A stand-in's bytes are never sent: a frame whose
//! stand-ins and ranges do not pair up one to one is not sent (the connection closes). Since a frozen chunk cannot be patched, the size prefix
//! is computed before encoding, and a frame whose encoded length disagrees with it is never
//! sent (the connection is closed).
//!
//! `SegmentedBuf` and `put_shared` are the only things here that only our kafka-protocol fork
//! has; without the fork, `encode_segmented` would become `encode_contiguous`.
//!
//! `Reply` (the encoded frame, or no response, close, parked) is defined here: workers make it,
//! connections write it.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{FetchResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::{ByteBufMut, SegmentedBuf};

use super::out_chunk::OutChunk;
use crate::storage::FileRange;

/// What a worker hands back to the connection for one request.
pub enum Reply {
    /// A complete response frame, size prefix included, as chunks to be written in order
    /// (a Fetch response's large records payloads are chunks of their own, never copied).
    Frame(Vec<Bytes>),
    /// A Fetch response frame some of whose records payloads are ranges of segment files,
    /// sent from the page cache (`encode_fetch_from_files`, `out_chunk.rs`).
    FetchFrame(Vec<OutChunk>),
    /// The request gets no response (Produce with acks=0).
    NoResponse,
    /// Close the connection (undecodable request); the reason is logged.
    Close(String),
    /// Write this frame `delay_ms` from now, then close (a failed SASL login); the connection
    /// reads and runs nothing more meanwhile.
    FrameThenClose { chunks: Vec<Bytes>, delay_ms: u64 },
    /// The request is handled and only waits for durability (acks=all Produce): the
    /// connection may hand its next request to a worker; this request's response follows
    /// later under the same sequence number. Appends stay in request order because the next
    /// request starts only after this one's append.
    Parked,
}

/// What a worker tells the reactor about a connection's requests.
pub enum ReplyMsg {
    /// The reply to request `seq` of connection `conn`.
    Reply { conn: usize, seq: u64, reply: Reply },
    /// The worker stopped a batch of `conn`'s requests before request `from_seq`: the one
    /// before it parked holding the connection (a long-poll Fetch, a group request) or closed
    /// it. `frames` are the requests from `from_seq` on that it did not run, in order, to be
    /// handed out again under the same sequence numbers; empty if they were dropped because the
    /// connection is closing.
    Unrun {
        conn: usize,
        from_seq: u64,
        frames: Vec<Bytes>,
    },
}

/// Records payloads shorter than this are copied into the response's inline chunk rather than
/// sent as chunks of their own. A chunk of its own costs an `iovec` in the `writev` that sends
/// the frame (their number per call is bounded), a `Vec` slot and a reference count, and it
/// ends the inline chunk being written; copying a few hundred bytes is cheaper, and it keeps a
/// response with many small or empty partitions (the common idle long-poll answer) to one or
/// two chunks.
pub const SHARED_CHUNK_MIN_BYTES: usize = 1024;

/// Encodes a response frame: size prefix, response header, body. A Fetch response keeps its
/// records payloads as chunks of their own (`encode_segmented`); any other is one chunk.
pub fn encode_reply(
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Reply {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    match body {
        ResponseKind::Fetch(fetch) => encode_segmented(&header, header_version, fetch, version),
        _ => encode_contiguous(&header, header_version, body, version),
    }
}

fn encode_contiguous(
    header: &ResponseHeader,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Reply {
    const FIELDS: usize = 256;
    let mut buf = BytesMut::with_capacity(FIELDS);
    buf.put_i32(0);
    if let Err(e) = header.encode(&mut buf, header_version) {
        return Reply::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = body.encode(&mut buf, version) {
        return Reply::Close(format!("cannot encode response: {e}"));
    }
    let Ok(len) = i32::try_from(buf.len() - 4) else {
        return Reply::Close(format!("response of {} bytes is too large", buf.len()));
    };
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Frame(vec![buf.freeze()])
}

/// The smallest records payload sent from its file (`sendfile`) rather than read: below it a
/// copy is as cheap as the syscall of its own a range needs, and small payloads stay in the
/// response's vectored writes. A judgement: the A/B once quoted for it ran a read_committed
/// consumer, which then always took the read path (BENCHMARKS.md "Zero-copy Fetch", its
/// correction). A tailing consumer's payloads are mostly below it, and 1 KiB gave it a lower
/// e2e p99 there; a response of many small partitions (a `sendfile` each) is not measured yet.
pub const FILE_RANGE_MIN_BYTES: usize = 64 * 1024;
const _: () = assert!(FILE_RANGE_MIN_BYTES >= SHARED_CHUNK_MIN_BYTES);

/// The largest records payload a stand-in can stand for (a larger file range is read; the
/// clients' default `max.partition.fetch.bytes` is 1 MiB).
pub const FILE_STAND_IN_BYTES_MAX: usize = 16 << 20;

/// The memory stand-ins are slices of: zeroed when allocated and never written or read after.
/// `init_file_stand_ins` allocates it when the server starts, while the allocator still hands
/// out fresh pages that need no zeroing, so its pages are never touched (no RSS: measured in
/// BENCHMARKS.md's idle and loaded RSS).
static STAND_IN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();

fn stand_in_base() -> &'static Bytes {
    STAND_IN.get_or_init(|| Bytes::from(vec![0u8; FILE_STAND_IN_BYTES_MAX]))
}

/// Allocates the stand-ins' memory now (see `STAND_IN`).
pub fn init_file_stand_ins() {
    stand_in_base();
}

/// A records payload of `len` bytes that stands in for a file range while a Fetch response is
/// encoded (the encoder only needs its length, and keeps it as a chunk of its own since it is
/// at least `FILE_RANGE_MIN_BYTES` ≥ `SHARED_CHUNK_MIN_BYTES`); `encode_fetch_from_files` swaps the range in. `None`
/// above `FILE_STAND_IN_BYTES_MAX`.
pub fn file_stand_in(len: usize) -> Option<Bytes> {
    (len <= FILE_STAND_IN_BYTES_MAX).then(|| stand_in_base().slice(..len))
}

fn is_stand_in(chunk: &Bytes) -> bool {
    STAND_IN.get().is_some_and(|base| {
        let start = base.as_ptr() as usize;
        let at = chunk.as_ptr() as usize;
        (start..start + base.len()).contains(&at)
    })
}

/// Encodes a Fetch response whose records payloads include stand-ins (`file_stand_in`) for
/// `files`, in response order, and puts each range in its stand-in's place. Should the
/// stand-ins and the ranges not pair up one to one with equal lengths, nothing is sent and
/// the connection closes.
pub fn encode_fetch_from_files(
    correlation_id: i32,
    header_version: i16,
    body: &FetchResponse,
    version: i16,
    files: Vec<FileRange>,
) -> Reply {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let chunks = match encode_segmented(&header, header_version, body, version) {
        Reply::Frame(chunks) => chunks,
        other => return other,
    };
    let mut files = files.into_iter();
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        if !is_stand_in(&chunk) {
            out.push(OutChunk::Mem(chunk));
            continue;
        }
        match files.next() {
            Some(range) if range.len == chunk.len() => out.push(OutChunk::File(range)),
            _ => return Reply::Close("Fetch response's file ranges do not match it".into()),
        }
    }
    if files.next().is_some() {
        return Reply::Close("Fetch response has more file ranges than stand-ins".into());
    }
    Reply::FetchFrame(out)
}

/// Encodes a Fetch response frame into chunks: the records payloads of at least
/// `SHARED_CHUNK_MIN_BYTES` are shared, not copied. The size prefix is computed up front (the
/// chunk holding it is frozen before the end is known); should encoding produce a different
/// length, the frame is not sent and the connection closes.
pub fn encode_segmented(
    header: &ResponseHeader,
    header_version: i16,
    body: &FetchResponse,
    version: i16,
) -> Reply {
    let size = match (
        header.compute_size(header_version),
        body.compute_size(version),
    ) {
        (Ok(h), Ok(b)) => h.saturating_add(b),
        (Err(e), _) | (_, Err(e)) => {
            return Reply::Close(format!("cannot size Fetch v{version} response: {e}"));
        }
    };
    let Ok(prefix) = i32::try_from(size) else {
        return Reply::Close(format!("Fetch response of {size} bytes is too large"));
    };
    let mut buf = SegmentedBuf::with_capacity(inline_bytes(body, size + 4), SHARED_CHUNK_MIN_BYTES);
    buf.put_i32(prefix);
    if let Err(e) = header.encode(&mut buf, header_version) {
        return Reply::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = body.encode(&mut buf, version) {
        return Reply::Close(format!("cannot encode Fetch v{version} response: {e}"));
    }
    if buf.offset() != size + 4 {
        return Reply::Close(format!(
            "Fetch v{version} response encoded to {} bytes, sized at {size}",
            buf.offset() - 4
        ));
    }
    Reply::Frame(buf.into_chunks())
}

/// Bytes of a Fetch response frame of `frame_len` bytes written inline, i.e. not in shared
/// chunks: the exact capacity its inline chunks need.
fn inline_bytes(body: &FetchResponse, frame_len: usize) -> usize {
    let shared: usize = body
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .filter(|&n| n >= SHARED_CHUNK_MIN_BYTES)
        .sum();
    frame_len.saturating_sub(shared)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::server::handlers;
    use crate::server::handlers::table::supported_range;
    use bytes::Bytes;
    use kafka_protocol::messages::ApiKey;

    /// The frame as the unpatched path built it: everything copied into one `BytesMut`.
    fn contiguous(correlation_id: i32, body: &FetchResponse, version: i16) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        buf
    }

    fn frame_chunks(reply: Reply) -> Vec<Bytes> {
        match reply {
            Reply::Frame(chunks) => chunks,
            Reply::Close(why) => panic!("closed: {why}"),
            _ => panic!("not a frame"),
        }
    }

    /// `None`, empty, small (copied) and large (shared) records payloads.
    fn records() -> impl Strategy<Value = Option<Bytes>> {
        prop_oneof![
            Just(None),
            Just(Some(Bytes::new())),
            proptest::collection::vec(any::<u8>(), 1..SHARED_CHUNK_MIN_BYTES)
                .prop_map(|v| Some(Bytes::from(v))),
            (
                SHARED_CHUNK_MIN_BYTES..SHARED_CHUNK_MIN_BYTES * 20,
                any::<u8>()
            )
                .prop_map(|(n, b)| Some(Bytes::from(vec![b; n]))),
        ]
    }

    fn fetch_response() -> impl Strategy<Value = FetchResponse> {
        let partition = (any::<i32>(), any::<i64>(), records()).prop_map(|(i, hw, records)| {
            PartitionData::default()
                .with_partition_index(i)
                .with_high_watermark(hw)
                .with_aborted_transactions(Some(Vec::new()))
                .with_records(records)
        });
        let topic = ("[a-z]{1,20}", proptest::collection::vec(partition, 0..5)).prop_map(
            |(name, partitions)| {
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            },
        );
        proptest::collection::vec(topic, 0..4)
            .prop_map(|responses| FetchResponse::default().with_responses(responses))
    }

    proptest! {
        #[test]
        fn segmented_fetch_frame_is_the_contiguous_one(
            body in fetch_response(),
            correlation_id in any::<i32>(),
        ) {
            let (min, max) = supported_range(ApiKey::Fetch).expect("Fetch is supported");
            let shared: Vec<&Bytes> = body
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .filter_map(|p| p.records.as_ref())
                .filter(|r| r.len() >= SHARED_CHUNK_MIN_BYTES)
                .collect();
            for version in min..=max {
                let expected = contiguous(correlation_id, &body, version);
                let reply = encode_reply(
                    correlation_id,
                    ApiKey::Fetch.response_header_version(version),
                    &ResponseKind::Fetch(body.clone()),
                    version,
                );
                let chunks = frame_chunks(reply);
                prop_assert!(chunks.iter().all(|c| !c.is_empty()));
                prop_assert_eq!(chunks.concat(), expected.to_vec(), "Fetch v{}", version);
                // Every large payload is a chunk of its own, sharing the handler's buffer.
                for r in &shared {
                    prop_assert!(
                        chunks.iter().any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len()),
                        "a {}-byte payload was copied (v{})", r.len(), version
                    );
                }
                prop_assert!(chunks.len() <= 2 * shared.len() + 1);
            }
        }
    }

    #[test]
    fn other_responses_are_one_chunk() {
        let body = ResponseKind::ApiVersions(handlers::api_versions::response(
            crate::error::NO_ERROR_CODE,
            handlers::table::supported_apis(),
        ));
        let chunks = frame_chunks(encode_reply(7, 0, &body, 3));
        assert_eq!(chunks.len(), 1);
        let len = i32::from_be_bytes(chunks[0][..4].try_into().expect("prefix"));
        assert_eq!(len as usize, chunks[0].len() - 4);
    }

    #[test]
    fn fetch_field_not_in_the_version_closes_instead_of_sending() {
        // v4 has no session id: both sizing and encoding refuse it; nothing is sent.
        let body = FetchResponse::default().with_session_id(5);
        let reply = encode_reply(1, 0, &ResponseKind::Fetch(body), 4);
        assert!(matches!(reply, Reply::Close(_)));
    }

    /// Gaps and seeks reaching behind a shared chunk are never used by message encoding, but
    /// they stay correct (the chunks are copied back) rather than panicking.
    #[test]
    fn segmented_buf_gap_behind_a_shared_chunk_is_filled_correctly() {
        let large = Bytes::from(vec![9u8; SHARED_CHUNK_MIN_BYTES]);
        let mut seg = SegmentedBuf::new(SHARED_CHUNK_MIN_BYTES);
        let mut plain = BytesMut::new();
        seg.put_slice(b"head");
        plain.put_slice(b"head");
        let gap = seg.put_gap(4);
        let plain_gap = plain.put_gap(4);
        seg.put_shared(&large);
        plain.put_shared(&large);
        seg.put_slice(b"tail");
        plain.put_slice(b"tail");
        seg.gap_buf(gap).copy_from_slice(&[1, 2, 3, 4]);
        plain.gap_buf(plain_gap).copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(seg.offset(), plain.len());
        assert_eq!(seg.range(2..6), &plain[2..6]);
        seg.seek(6);
        plain.seek(6);
        seg.put_shared(&large);
        plain.put_shared(&large);
        let chunks = seg.into_chunks();
        assert_eq!(chunks.concat(), plain.to_vec());
        assert_eq!(chunks.last().map(|c| c.as_ptr()), Some(large.as_ptr()));
    }

    /// The frame's bytes: memory chunks as they are, file ranges read from their files.
    fn flatten(chunks: &[OutChunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                OutChunk::Mem(b) => out.extend_from_slice(b),
                OutChunk::File(r) => out.extend_from_slice(&r.read_to_vec().expect("read range")),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Large records payloads stored in a file and answered as stand-ins + file ranges
        /// make exactly the frame the payloads themselves would have.
        #[test]
        fn a_frame_from_files_is_the_contiguous_one(
            body in fetch_response(),
            correlation_id in any::<i32>(),
        ) {
            use std::io::Write;
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("00000000000000000000.log");
            let mut log = std::fs::File::create(&path).expect("create");
            log.write_all(b"some bytes before").expect("write");
            let mut position = 17u64;
            let file = std::sync::Arc::new(std::fs::File::open(&path).expect("open"));
            let mut files = Vec::new();
            let mut with_stand_ins = body.clone();
            for t in &mut with_stand_ins.responses {
                for p in &mut t.partitions {
                    let Some(records) = p.records.as_ref().filter(|r| r.len() >= SHARED_CHUNK_MIN_BYTES) else {
                        continue;
                    };
                    log.write_all(records).expect("write");
                    files.push(FileRange {
                        file: file.clone(),
                        path: path.clone(),
                        position,
                        len: records.len(),
                    });
                    position += records.len() as u64;
                    p.records = file_stand_in(records.len());
                }
            }
            let version = 12;
            let header_version = ApiKey::Fetch.response_header_version(version);
            let reply = encode_fetch_from_files(correlation_id, header_version, &with_stand_ins, version, files.clone());
            let Reply::FetchFrame(chunks) = reply else {
                panic!("not a frame from files");
            };
            let ranges = chunks.iter().filter(|c| matches!(c, OutChunk::File(_))).count();
            prop_assert_eq!(ranges, files.len());
            prop_assert_eq!(flatten(&chunks), contiguous(correlation_id, &body, version).to_vec());

            // One range fewer than stand-ins, or a length that differs: nothing is sent.
            if let Some(last) = files.last().cloned() {
                let fewer = files[..files.len() - 1].to_vec();
                let reply = encode_fetch_from_files(correlation_id, header_version, &with_stand_ins, version, fewer);
                prop_assert!(matches!(reply, Reply::Close(_)));
                let mut longer = files.clone();
                let n = longer.len() - 1;
                longer[n] = FileRange { len: last.len + 1, ..last };
                let reply = encode_fetch_from_files(correlation_id, header_version, &with_stand_ins, version, longer);
                prop_assert!(matches!(reply, Reply::Close(_)));
            }
        }
    }
}
